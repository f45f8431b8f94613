//! Client authentication: SCRAM-SHA-256 against PostgreSQL-format verifiers
//! from `[[router.auth.users]]`, or none (`method = "trust"`).
//!
//! The config never holds a password, only the verifier PostgreSQL itself
//! stores (`SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>`,
//! what `tributary passwd` prints and `pg_authid.rolpassword` holds), so a
//! leaked config does not reveal passwords.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use futures::Sink;
use pgwire::api::ClientInfo;
use pgwire::api::METADATA_USER;
use pgwire::api::auth::sasl::SASLAuthStartupHandler;
use pgwire::api::auth::sasl::scram::{ScramAuth, ScramSecret, gen_salted_password};
use pgwire::api::auth::{
    AuthSource, DefaultServerParameterProvider, LoginInfo, Password, StartupHandler,
    finish_authentication, protocol_negotiation, save_startup_parameters_to_metadata,
};
use pgwire::api::{PidSecretKeyGenerator, RandomPidSecretKeyGenerator};
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use pgwire::messages::{PgWireBackendMessage, PgWireFrontendMessage};
use ring::{digest, hmac};

use crate::config::{AuthConfig, AuthMethod, ConfigError};

/// Iterations `tributary passwd` uses (PostgreSQL's default).
pub const DEFAULT_ITERATIONS: usize = 4096;

/// A PostgreSQL SCRAM-SHA-256 verifier.
#[derive(Clone, PartialEq, Eq)]
pub struct Verifier {
    pub iterations: usize,
    pub salt: Vec<u8>,
    pub stored_key: Vec<u8>,
    pub server_key: Vec<u8>,
}

impl fmt::Debug for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Verifier")
            .field("iterations", &self.iterations)
            .finish_non_exhaustive()
    }
}

impl fmt::Display for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "SCRAM-SHA-256${}:{}${}:{}",
            self.iterations,
            STANDARD.encode(&self.salt),
            STANDARD.encode(&self.stored_key),
            STANDARD.encode(&self.server_key)
        )
    }
}

impl FromStr for Verifier {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let shape = "expected SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey> (make one with `tributary passwd NAME`)";
        let rest = s
            .strip_prefix("SCRAM-SHA-256$")
            .ok_or_else(|| shape.to_owned())?;
        let (params, keys) = rest.split_once('$').ok_or_else(|| shape.to_owned())?;
        let (iterations, salt) = params.split_once(':').ok_or_else(|| shape.to_owned())?;
        let (stored, server) = keys.split_once(':').ok_or_else(|| shape.to_owned())?;
        let iterations: usize = iterations
            .parse()
            .map_err(|_| format!("iteration count {iterations:?} is not a number; {shape}"))?;
        if iterations == 0 {
            return Err(format!("iteration count must be positive; {shape}"));
        }
        let b64 = |what: &str, v: &str| {
            STANDARD
                .decode(v)
                .map_err(|e| format!("{what} is not base64 ({e}); {shape}"))
        };
        let v = Verifier {
            iterations,
            salt: b64("salt", salt)?,
            stored_key: b64("StoredKey", stored)?,
            server_key: b64("ServerKey", server)?,
        };
        if v.stored_key.len() != 32 || v.server_key.len() != 32 {
            return Err(format!("keys must be 32 bytes (SHA-256); {shape}"));
        }
        Ok(v)
    }
}

impl Verifier {
    /// The verifier of `password` with `salt`.
    pub fn derive(password: &str, salt: &[u8], iterations: usize) -> Verifier {
        // RFC 5802: StoredKey = H(HMAC(SaltedPassword, "Client Key")),
        // ServerKey = HMAC(SaltedPassword, "Server Key").
        let salted = gen_salted_password(password, salt, iterations);
        let key = hmac::Key::new(hmac::HMAC_SHA256, &salted);
        let client_key = hmac::sign(&key, b"Client Key");
        Verifier {
            iterations,
            salt: salt.to_vec(),
            stored_key: digest::digest(&digest::SHA256, client_key.as_ref())
                .as_ref()
                .to_vec(),
            server_key: hmac::sign(&key, b"Server Key").as_ref().to_vec(),
        }
    }

    /// A verifier of a random password with a random salt.
    pub fn generate(password: &str) -> Verifier {
        let salt: [u8; 16] = rand::random();
        Verifier::derive(password, &salt, DEFAULT_ITERATIONS)
    }

    fn secret(&self) -> ScramSecret {
        ScramSecret::Verifier {
            salt: self.salt.clone(),
            iterations: self.iterations,
            stored_key: self.stored_key.clone(),
            server_key: self.server_key.clone(),
        }
    }
}

/// The configured users.
#[derive(Debug)]
struct Users {
    by_name: HashMap<String, Verifier>,
    /// Answers for unknown users, so a client cannot tell a wrong name from a
    /// wrong password (PostgreSQL does the same mock exchange).
    decoy: Verifier,
}

#[async_trait]
impl AuthSource for Users {
    async fn get_password(&self, login: &LoginInfo) -> PgWireResult<Password> {
        Err(PgWireError::InvalidPassword(
            login.user().unwrap_or_default().to_owned(),
        ))
    }

    async fn get_scram_secret(&self, login: &LoginInfo) -> PgWireResult<(ScramSecret, Option<()>)> {
        let user = login.user().unwrap_or_default();
        let verifier = self.by_name.get(user).unwrap_or(&self.decoy);
        Ok((verifier.secret(), None))
    }
}

/// The parameters a client is told at startup (`ParameterStatus`):
/// pgwire's defaults with Tributary's `server_version`, the one `SHOW
/// server_version` and `version()` report too.
fn server_parameters() -> DefaultServerParameterProvider {
    let mut p = DefaultServerParameterProvider::default();
    p.server_version = crate::SERVER_VERSION.to_owned();
    p
}

/// Startup without authentication.
pub struct Trust {
    params: DefaultServerParameterProvider,
    pids: RandomPidSecretKeyGenerator,
}

impl Trust {
    async fn on_startup<C>(
        &self,
        client: &mut C,
        message: PgWireFrontendMessage,
    ) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: fmt::Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        // pgwire's no-authentication flow, with our parameters.
        if let PgWireFrontendMessage::Startup(ref startup) = message {
            protocol_negotiation(client, startup).await?;
            save_startup_parameters_to_metadata(client, startup);
            let (pid, key) = self.pids.generate(&*client);
            client.set_pid_and_secret_key(pid, key);
            finish_authentication(client, &self.params).await?;
        }
        Ok(())
    }
}

/// The startup (authentication) handler of a router.
pub enum Startup {
    Trust(Box<Trust>),
    Scram(Box<SASLAuthStartupHandler<DefaultServerParameterProvider>>),
}

impl Startup {
    /// Builds the handler the config asks for (validated beforehand).
    pub fn from_config(config: &AuthConfig) -> Result<Startup, ConfigError> {
        match config.method {
            AuthMethod::Trust => Ok(Startup::Trust(Box::new(Trust {
                params: server_parameters(),
                pids: RandomPidSecretKeyGenerator::default(),
            }))),
            AuthMethod::ScramSha256 => {
                let mut by_name = HashMap::new();
                for u in &config.users {
                    let v: Verifier = u.password.parse().map_err(|e| ConfigError {
                        key: "router.auth.users.password",
                        reason: format!("user {:?}: {e}", u.name),
                    })?;
                    by_name.insert(u.name.clone(), v);
                }
                let decoy_password: [u8; 16] = rand::random();
                let users = Users {
                    by_name,
                    decoy: Verifier::generate(&STANDARD.encode(decoy_password)),
                };
                let scram = ScramAuth::new(Arc::new(users));
                let handler =
                    SASLAuthStartupHandler::new(Arc::new(server_parameters())).with_scram(scram);
                Ok(Startup::Scram(Box::new(handler)))
            }
        }
    }
}

#[async_trait]
impl StartupHandler for Startup {
    async fn on_startup<C>(
        &self,
        client: &mut C,
        message: PgWireFrontendMessage,
    ) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: fmt::Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        match self {
            Startup::Trust(h) => h.on_startup(client, message).await,
            Startup::Scram(h) => {
                let user = client
                    .metadata()
                    .get(METADATA_USER)
                    .cloned()
                    .unwrap_or_default();
                match h.on_startup(client, message).await {
                    // PostgreSQL's wording, with the user (pgwire leaves it empty).
                    Err(PgWireError::InvalidPassword(_)) => {
                        tracing::info!(%user, peer = %client.socket_addr(), "authentication failed");
                        metrics::counter!("tributary_router_auth_failures_total").increment(1);
                        Err(PgWireError::UserError(Box::new(ErrorInfo::new(
                            "FATAL".to_owned(),
                            "28P01".to_owned(),
                            format!("password authentication failed for user \"{user}\""),
                        ))))
                    }
                    other => other,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verifier_round_trips_through_its_text_form() {
        // RFC 7677's example salt; real clients are checked end to end
        // (psql and tokio-postgres against a router with auth on).
        let salt = STANDARD.decode("W22ZaJ0SNY7soEsUEjb6gQ==").expect("b64");
        let v = Verifier::derive("pencil", &salt, 4096);
        let text = v.to_string();
        assert!(text.starts_with("SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$"));
        assert_eq!(text.parse::<Verifier>(), Ok(v.clone()));
        assert_eq!(v.stored_key.len(), 32);
        assert_eq!(v.server_key.len(), 32);
        assert_ne!(Verifier::derive("pencil2", &salt, 4096), v);
    }

    #[test]
    fn malformed_verifiers_say_what_is_expected() {
        for bad in [
            "md5abc",
            "SCRAM-SHA-256$x:AAAA$AAAA:AAAA",
            "SCRAM-SHA-256$4096:AAAA",
            "SCRAM-SHA-256$4096:!!!$AAAA:AAAA",
            "SCRAM-SHA-256$4096:AAAA$AAAA:AAAA",
        ] {
            let err = bad.parse::<Verifier>().expect_err(bad);
            assert!(err.contains("tributary passwd"), "{bad}: {err}");
        }
    }
}
