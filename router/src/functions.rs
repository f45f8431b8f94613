//! PostgreSQL functions drivers and ORMs call, as SQLite user functions on
//! every router connection (reads and speculation). Functions whose value
//! differs per call (`now()`, `gen_random_uuid()`) are safe in writes: a
//! write's record carries the values speculation produced, and replicas
//! never evaluate them again.
//!
//! | function | value |
//! |---|---|
//! | `version()` | `PostgreSQL 15.0 (Tributary) …` |
//! | `current_database()`, `current_catalog()` | `tributary` |
//! | `current_schema()` | `public` |
//! | `now()`, `transaction_timestamp()`, `statement_timestamp()`, `clock_timestamp()` | the time of the call, UTC text `YYYY-MM-DD HH:MM:SS.ffffff+00` (PostgreSQL's `now()` is the transaction's start) |
//! | `gen_random_uuid()` | a random (v4) UUID, lowercase text |
//! | `tributary_regex(text, pattern, flags)` | what `~`, `~*`, `!~`, `!~*` become (Rust's regex syntax, close to PostgreSQL's for ordinary patterns; an invalid one is 2201B) |
//! | `pg_advisory_unlock_all()` | NULL (void): no advisory lock can be held, `pg_advisory_lock` is not provided |
//! | `repeat`, `lpad`, `rpad`, `left`, `right`, `split_part`, `strpos` | as in PostgreSQL (`text_functions`) |
//! | `set_config(name, value, is_local)` | `value`; the setting has no effect here, like `SET` of a PostgreSQL parameter; `tributary.*` names are refused (use `SET`) |

use rusqlite::functions::{Context, FunctionFlags};
use rusqlite::{Connection, Error as SqlError};

fn text_fn(
    conn: &Connection,
    name: &str,
    args: i32,
    deterministic: bool,
    f: impl Fn(&Context<'_>) -> rusqlite::Result<String> + Send + 'static,
) -> rusqlite::Result<()> {
    let mut flags = FunctionFlags::SQLITE_UTF8;
    if deterministic {
        flags |= FunctionFlags::SQLITE_DETERMINISTIC;
    }
    conn.create_scalar_function(name, args, flags, f)
}

fn now_text() -> String {
    chrono::Utc::now()
        .format("%Y-%m-%d %H:%M:%S%.6f+00")
        .to_string()
}

fn uuid_v4() -> String {
    let mut b: [u8; 16] = rand::random();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    crate::params::uuid_bytes(&b)
}

/// The SQLite function PostgreSQL's `~` operators become: (text, pattern,
/// flags) → whether it matches; `i` in flags ignores case.
pub const REGEX: &str = "tributary_regex";

thread_local! {
    /// Compiled patterns, by pattern and flags (catalog queries repeat them).
    static PATTERNS: std::cell::RefCell<std::collections::HashMap<(String, bool), regex::Regex>> =
        std::cell::RefCell::new(Default::default());
}

fn regex_match(text: &str, pattern: &str, ignore_case: bool) -> rusqlite::Result<bool> {
    PATTERNS.with(|p| {
        let mut p = p.borrow_mut();
        let key = (pattern.to_owned(), ignore_case);
        if !p.contains_key(&key) {
            let re = regex::RegexBuilder::new(pattern)
                .case_insensitive(ignore_case)
                .build()
                .map_err(|e| {
                    SqlError::UserFunctionError(
                        format!("SQLSTATE 2201B: invalid regular expression: {e}").into(),
                    )
                })?;
            if p.len() > 256 {
                p.clear();
            }
            p.insert(key.clone(), re);
        }
        Ok(p.get(&key).is_some_and(|re| re.is_match(text)))
    })
}

/// A server-wide setting as `SHOW` and `current_setting()` give it
/// (lowercase name); session settings (`tributary.*`) are `SHOW`'s.
pub fn server_setting(name: &str) -> Option<&'static str> {
    Some(match name {
        "server_version" => crate::SERVER_VERSION,
        "server_version_num" => crate::SERVER_VERSION_NUM,
        "transaction_isolation"
        | "default_transaction_isolation"
        | "transaction.isolation.level" => "read committed",
        "client_encoding" | "server_encoding" => "UTF8",
        "standard_conforming_strings" | "integer_datetimes" => "on",
        "transaction_read_only" | "default_transaction_read_only" => "off",
        // Stored timestamps are UTC text (docs/types.md).
        "timezone" => "UTC",
        "datestyle" => "ISO, MDY",
        "intervalstyle" => "postgres",
        "search_path" => "public",
        "max_identifier_length" => "63",
        "default_table_access_method" => "heap",
        "max_index_keys" => "32",
        "block_size" => "8192",
        // asyncpg's type introspection asks; there is no JIT.
        "jit" => "off",
        _ => return None,
    })
}

/// The settings [`server_setting`] answers, as `pg_settings` lists them.
pub const SERVER_SETTINGS: &[&str] = &[
    "server_version",
    "server_version_num",
    "default_transaction_isolation",
    "client_encoding",
    "server_encoding",
    "standard_conforming_strings",
    "integer_datetimes",
    "default_transaction_read_only",
    "timezone",
    "datestyle",
    "intervalstyle",
    "search_path",
    "max_identifier_length",
    "default_table_access_method",
    "max_index_keys",
    "block_size",
    "jit",
];

/// The database's name, whatever the client connected to: one cluster is
/// one database.
pub const DATABASE: &str = "tributary";

/// Registers every function above on `conn`, and `tributary_cast`.
pub fn register(conn: &Connection) -> rusqlite::Result<()> {
    crate::casts::register(conn)?;
    crate::interval::register(conn)?;
    crate::text_functions::register(conn)?;
    crate::extremes::register(conn)?;
    crate::date_functions::register(conn)?;
    crate::json_functions::register(conn)?;
    crate::sleep::register(conn)?;
    // Statements with generated keys are described on any connection; only
    // the speculation connection hands keys out (`Keys::arm` replaces this).
    conn.create_scalar_function(
        crate::keys::NEXT_ID,
        1,
        rusqlite::functions::FunctionFlags::SQLITE_UTF8,
        |_| -> rusqlite::Result<i64> {
            Err(rusqlite::Error::UserFunctionError(
                "generated keys are handed out only by a write".into(),
            ))
        },
    )?;
    let version = format!(
        "PostgreSQL {} on {}-linux, Tributary {}",
        crate::SERVER_VERSION,
        std::env::consts::ARCH,
        env!("CARGO_PKG_VERSION")
    );
    text_fn(conn, "version", 0, true, move |_| Ok(version.clone()))?;
    for args in [1, 2] {
        conn.create_scalar_function("current_setting", args, FunctionFlags::SQLITE_UTF8, |ctx| {
            let name: String = ctx.get(0)?;
            let missing_ok = ctx.len() > 1 && ctx.get::<Option<bool>>(1)?.unwrap_or(false);
            match server_setting(&name.to_ascii_lowercase()) {
                Some(v) => Ok(Some(v.to_owned())),
                None if missing_ok => Ok(None),
                None => Err(rusqlite::Error::UserFunctionError(
                    format!(
                        "SQLSTATE 0A000: current_setting('{name}') is not supported: it answers server settings; SHOW gives this session's"
                    )
                    .into(),
                )),
            }
        })?;
    }
    for name in ["current_database", "current_catalog"] {
        text_fn(conn, name, 0, true, |_| Ok(DATABASE.to_owned()))?;
    }
    text_fn(conn, "current_schema", 0, true, |_| Ok("public".to_owned()))?;
    for name in [
        "now",
        "transaction_timestamp",
        "statement_timestamp",
        "clock_timestamp",
    ] {
        text_fn(conn, name, 0, false, |_| Ok(now_text()))?;
    }
    text_fn(conn, "gen_random_uuid", 0, false, |_| Ok(uuid_v4()))?;
    conn.create_scalar_function(
        REGEX,
        3,
        FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC,
        |ctx| {
            let text: Option<String> = ctx.get(0)?;
            let pattern: Option<String> = ctx.get(1)?;
            let flags: String = ctx.get(2)?;
            match (text, pattern) {
                (Some(t), Some(p)) => regex_match(&t, &p, flags.contains('i')).map(Some),
                _ => Ok(None),
            }
        },
    )?;
    // No advisory lock can be taken (pg_advisory_lock is not provided), so
    // releasing them all has nothing to do; pools call it on release.
    conn.create_scalar_function(
        "pg_advisory_unlock_all",
        0,
        FunctionFlags::SQLITE_UTF8,
        |_| Ok(rusqlite::types::Null),
    )?;
    text_fn(conn, "set_config", 3, false, |ctx| {
        let name: String = ctx.get(0)?;
        let value: String = ctx.get(1)?;
        if name.to_ascii_lowercase().starts_with("tributary.") {
            return Err(SqlError::UserFunctionError(
                format!("set_config cannot change {name}; use SET {name} = …").into(),
            ));
        }
        Ok(value)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(conn: &Connection, sql: &str) -> rusqlite::Result<String> {
        conn.query_row(sql, [], |r| r.get(0))
    }

    #[test]
    fn functions_answer_like_postgresql() -> rusqlite::Result<()> {
        let conn = Connection::open_in_memory()?;
        register(&conn)?;
        assert!(one(&conn, "SELECT version()")?.starts_with("PostgreSQL 15.0"));
        assert_eq!(one(&conn, "SELECT current_database()")?, "tributary");
        assert_eq!(one(&conn, "SELECT current_schema()")?, "public");
        let now = one(&conn, "SELECT now()")?;
        assert!(now.ends_with("+00") && now.len() == 29, "{now}");
        let a = one(&conn, "SELECT gen_random_uuid()")?;
        let b = one(&conn, "SELECT gen_random_uuid()")?;
        assert_ne!(a, b);
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "4");
        assert_eq!(
            one(&conn, "SELECT set_config('TimeZone', 'UTC', false)")?,
            "UTC"
        );
        assert!(one(&conn, "SELECT set_config('tributary.ack', 'sync', false)").is_err());
        Ok(())
    }
}
