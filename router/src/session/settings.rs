//! Session settings: `SET tributary.…` / `SHOW`, and the log offset a read
//! must see at the session's consistency level.

use wal_bus::{Offset, now_ms};

use super::Session;
use crate::config::{AckMode, ReadConsistency};
use crate::error::{Error, Result};

const SETTINGS: &str = "tributary.ack, tributary.read_consistency, tributary.max_staleness_ms, tributary.min_offset, tributary.idempotency_key";

impl Session {
    pub(super) fn set(&mut self, name: &str, value: &str) -> Result<()> {
        let invalid = |allowed: &str| Error::InvalidSetting {
            name: format!("tributary.{name}"),
            value: value.to_owned(),
            allowed: allowed.to_owned(),
        };
        match name {
            "ack" => self.ack = value.parse().map_err(|()| invalid(AckMode::ALLOWED))?,
            "read_consistency" => {
                self.read = value
                    .parse()
                    .map_err(|()| invalid(ReadConsistency::ALLOWED))?
            }
            "max_staleness_ms" => {
                self.max_staleness_ms = value
                    .parse()
                    .map_err(|_| invalid("a whole number of milliseconds"))?
            }
            "min_offset" => {
                self.min_offset = value
                    .parse()
                    .map_err(|_| invalid("a log offset (whole number)"))?
            }
            "idempotency_key" => {
                let allowed = "a non-empty key of at most 256 bytes, set before the transaction's first write";
                if value.is_empty() || value.len() > super::idempotent::MAX_KEY_BYTES {
                    return Err(invalid(allowed));
                }
                if self
                    .txn
                    .as_ref()
                    .is_some_and(|t| t.keyed.is_some() || !t.block.is_empty())
                {
                    return Err(invalid(allowed));
                }
                self.idem_key = Some(value.to_owned());
            }
            _ => {
                return Err(Error::UnknownSetting {
                    name: format!("tributary.{name}"),
                    allowed: SETTINGS.into(),
                });
            }
        }
        Ok(())
    }

    /// `RESET name` / `RESET ALL` (`None`): Tributary's settings go back to
    /// the router's defaults; other names have no session value here.
    pub(super) fn reset(&mut self, name: Option<&str>) {
        let defaults = (
            self.shared.replication.ack,
            self.shared.config.read_consistency,
            self.shared.config.max_staleness_ms,
        );
        let all = name.is_none();
        let is = |n: &str| name == Some(n);
        if all || is("tributary.ack") {
            self.ack = defaults.0;
        }
        if all || is("tributary.read_consistency") {
            self.read = defaults.1;
        }
        if all || is("tributary.max_staleness_ms") {
            self.max_staleness_ms = defaults.2;
        }
        if all || is("tributary.min_offset") {
            self.min_offset = 0;
        }
        if all || is("tributary.idempotency_key") {
            self.idem_key = None;
        }
        if all || is("lock_timeout") {
            self.lock_timeout_ms = self.shared.config.lock_timeout_ms;
        }
    }

    pub(super) fn show(&self, name: &str) -> Result<String> {
        Ok(match name {
            "tributary.ack" => self.ack.to_string(),
            "tributary.read_consistency" => self.read.as_str().to_owned(),
            "tributary.max_staleness_ms" => self.max_staleness_ms.to_string(),
            "tributary.min_offset" => self.min_offset.to_string(),
            "tributary.idempotency_key" => self.idem_key.clone().unwrap_or_default(),
            "lock_timeout" => show_duration_ms(self.lock_timeout_ms),
            "tributary.offset" => self.last_write.to_string(),
            "tributary.node" => self.shared.name.clone(),
            "tributary.replica" => self.shared.replica.name.clone(),
            "tributary.policy_version" => self.shared.replica.policy().0.to_string(),
            other if let Some(v) = crate::functions::server_setting(other) => v.to_owned(),
            _ => {
                return Err(Error::UnknownSetting {
                    name: name.to_owned(),
                    allowed: format!(
                        "{SETTINGS}, tributary.offset, tributary.node, tributary.replica, \
                         tributary.policy_version, server_version, server_version_num, \
                         TimeZone, DateStyle, IntervalStyle, search_path, client_encoding, \
                         server_encoding, transaction_isolation, standard_conforming_strings, \
                         lock_timeout"
                    ),
                });
            }
        })
    }

    /// The offset a read must see, by consistency level.
    pub(super) fn read_target(&self) -> Offset {
        let level = match self.read {
            ReadConsistency::Eventual => 0,
            ReadConsistency::Session => self.last_write,
            ReadConsistency::Bounded => self
                .shared
                .log
                .end_as_of(now_ms().saturating_sub(self.max_staleness_ms))
                .max(self.last_write),
            ReadConsistency::Strong => self.shared.log.end(),
        };
        level.max(self.min_offset)
    }
}

/// A PostgreSQL duration setting in milliseconds: a bare number is
/// milliseconds; `ms`, `s`, `min`, `h` and `d` are units (`'2s'`, `500ms`).
pub(super) fn parse_duration_ms(value: &str) -> Option<u64> {
    let v = value.trim().trim_matches('\'').trim();
    let split = v
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(v.len());
    let (number, unit) = v.split_at(split);
    let number: f64 = number.parse().ok()?;
    let scale = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "ms" => 1.0,
        "s" => 1_000.0,
        "min" => 60_000.0,
        "h" => 3_600_000.0,
        "d" => 86_400_000.0,
        _ => return None,
    };
    let ms = (number * scale).round();
    (ms.is_finite() && ms >= 0.0 && ms <= u64::MAX as f64).then_some(ms as u64)
}

/// A duration in milliseconds as PostgreSQL shows it (`0`, `2s`, `150ms`).
fn show_duration_ms(ms: u64) -> String {
    match ms {
        0 => "0".into(),
        ms if ms % 1_000 == 0 => format!("{}s", ms / 1_000),
        ms => format!("{ms}ms"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_as_postgresql_reads_them() {
        assert_eq!(parse_duration_ms("0"), Some(0));
        assert_eq!(parse_duration_ms("250"), Some(250));
        assert_eq!(parse_duration_ms("'2s'"), Some(2_000));
        assert_eq!(parse_duration_ms("1.5 min"), Some(90_000));
        assert_eq!(parse_duration_ms("10 fortnights"), None);
        assert_eq!(parse_duration_ms("-1"), None);
        assert_eq!(show_duration_ms(2_000), "2s");
        assert_eq!(show_duration_ms(150), "150ms");
    }
}
