//! The slow-query log (`router.slow_query_ms`): every statement that took
//! at least the threshold is logged (a `WARN` line, target
//! `tributary::slow_query`), counted (`tributary_router_slow_queries_total`)
//! and kept in a bounded ring that the `tributary_slow_queries` view shows.
//!
//! A statement's time is split where it can go: waiting for its read
//! consistency (the replica catching up), the log append (until the record
//! is durable), the ack wait (replicas applying it, by ack mode), and
//! execution, which is the rest (SQLite, speculation, row-lock waits).
//! Statements are normalized (literals become `?`) so the view groups;
//! parameters are shown only with `router.slow_query_params = true`.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

use rusqlite::Connection;
use rusqlite::types::Value as SqlValue;
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::tokenizer::{Token, Tokenizer};

use crate::error::{Error, Result};

/// Where one statement's time went, outside execution.
#[derive(Debug, Default, Clone, Copy)]
pub struct Stages {
    pub consistency_wait: Duration,
    pub append: Duration,
    pub ack_wait: Duration,
}

/// One slow statement, as the view shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct SlowQuery {
    /// Wall-clock milliseconds when it finished.
    pub at_ms: u64,
    pub session: u64,
    pub statement: String,
    /// `$1 = 42, $2 = 'x'`, when parameters are shown.
    pub params: Option<String>,
    pub total_ms: f64,
    pub consistency_wait_ms: f64,
    pub execution_ms: f64,
    pub append_ms: f64,
    pub ack_wait_ms: f64,
    pub rows: Option<u64>,
    pub ok: bool,
    pub replica: String,
    pub ack: &'static str,
    pub read: &'static str,
}

/// What the session knows about a finished statement.
pub struct Finished<'a> {
    pub session: u64,
    pub sql: &'a str,
    pub params: Option<&'a [SqlValue]>,
    pub total: Duration,
    pub stages: Stages,
    pub rows: Option<u64>,
    pub ok: bool,
    pub ack: &'static str,
    pub read: &'static str,
    /// The replica a read ran on, when not the router's own.
    pub replica: Option<&'a str>,
}

/// The router's slow-query settings and ring.
pub struct SlowLog {
    threshold: Option<Duration>,
    show_params: bool,
    keep: usize,
    router: String,
    replica: String,
    ring: Mutex<VecDeque<SlowQuery>>,
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

impl SlowLog {
    /// `threshold_ms` 0 turns the log off.
    pub fn new(
        threshold_ms: u64,
        show_params: bool,
        keep: usize,
        router: &str,
        replica: &str,
    ) -> SlowLog {
        SlowLog {
            threshold: (threshold_ms > 0).then(|| Duration::from_millis(threshold_ms)),
            show_params,
            keep: keep.max(1),
            router: router.to_owned(),
            replica: replica.to_owned(),
            ring: Mutex::new(VecDeque::new()),
        }
    }

    /// Whether a statement's parameters must be kept until it finishes.
    pub fn wants_params(&self) -> bool {
        self.threshold.is_some() && self.show_params
    }

    /// Records `f` if it took at least the threshold.
    pub fn observe(&self, f: Finished<'_>) {
        let Some(threshold) = self.threshold else {
            return;
        };
        if f.total < threshold {
            return;
        }
        let s = f.stages;
        let outside = s.consistency_wait + s.append + s.ack_wait;
        let entry = SlowQuery {
            at_ms: wal_bus::now_ms(),
            session: f.session,
            statement: normalize(f.sql),
            params: f.params.filter(|_| self.show_params).map(show_params),
            total_ms: ms(f.total),
            consistency_wait_ms: ms(s.consistency_wait),
            execution_ms: ms(f.total.saturating_sub(outside)),
            append_ms: ms(s.append),
            ack_wait_ms: ms(s.ack_wait),
            rows: f.rows,
            ok: f.ok,
            replica: f
                .replica
                .map_or_else(|| self.replica.clone(), str::to_owned),
            ack: f.ack,
            read: f.read,
        };
        tracing::warn!(target: "tributary::slow_query",
            router = %self.router, replica = %entry.replica, session = entry.session,
            total_ms = format!("{:.1}", entry.total_ms),
            consistency_wait_ms = format!("{:.1}", entry.consistency_wait_ms),
            execution_ms = format!("{:.1}", entry.execution_ms),
            append_ms = format!("{:.1}", entry.append_ms),
            ack_wait_ms = format!("{:.1}", entry.ack_wait_ms),
            rows = ?entry.rows, ok = entry.ok, ack = entry.ack, read = entry.read,
            params = entry.params.as_deref().unwrap_or(""),
            statement = %entry.statement, "slow query");
        metrics::counter!("tributary_router_slow_queries_total", "router" => self.router.clone())
            .increment(1);
        let mut ring = self.ring.lock().unwrap_or_else(|p| p.into_inner());
        if ring.len() >= self.keep {
            ring.pop_front();
        }
        ring.push_back(entry);
    }

    /// The ring, oldest first.
    pub fn snapshot(&self) -> Vec<SlowQuery> {
        let ring = self.ring.lock().unwrap_or_else(|p| p.into_inner());
        ring.iter().cloned().collect()
    }
}

/// `sql` with its literals replaced by `?` and its white space collapsed,
/// so statements that differ only in values read alike.
pub fn normalize(sql: &str) -> String {
    let Ok(tokens) = Tokenizer::new(&PostgreSqlDialect {}, sql).tokenize() else {
        return sql.split_whitespace().collect::<Vec<_>>().join(" ");
    };
    let mut out = String::with_capacity(sql.len());
    let mut space = false;
    for t in tokens {
        match t {
            Token::Whitespace(_) => space = true,
            Token::Number(..)
            | Token::SingleQuotedString(_)
            | Token::EscapedStringLiteral(_)
            | Token::NationalStringLiteral(_)
            | Token::HexStringLiteral(_)
            | Token::DollarQuotedString(_) => {
                if space && !out.is_empty() {
                    out.push(' ');
                }
                out.push('?');
                space = false;
            }
            other => {
                if space && !out.is_empty() {
                    out.push(' ');
                }
                out.push_str(&other.to_string());
                space = false;
            }
        }
    }
    out.trim_end_matches(';').trim_end().to_owned()
}

fn show_params(params: &[SqlValue]) -> String {
    params
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let v = match v {
                SqlValue::Null => "NULL".to_owned(),
                SqlValue::Integer(n) => n.to_string(),
                SqlValue::Real(f) => f.to_string(),
                SqlValue::Text(t) => format!("'{}'", t.replace('\'', "''")),
                SqlValue::Blob(b) => format!("<{} bytes>", b.len()),
            };
            format!("${} = {v}", i + 1)
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Whether a query names `tributary_slow_queries`.
pub fn names_view(sql: &str) -> bool {
    crate::status::mentions(sql, "tributary_slow_queries")
}

/// Replaces the connection's `tributary_slow_queries` rows with `rows`.
pub fn refresh_view(conn: &Connection, rows: &[SlowQuery]) -> Result<()> {
    let sq = |e| Error::sqlite("refreshing tributary_slow_queries", e);
    conn.execute_batch(
        "CREATE TEMP TABLE IF NOT EXISTS tributary_slow_queries (
            at_ms INTEGER, session INTEGER, statement TEXT, params TEXT,
            total_ms REAL, consistency_wait_ms REAL, execution_ms REAL,
            append_ms REAL, ack_wait_ms REAL, rows INTEGER, ok BOOLEAN,
            replica TEXT, ack TEXT, read TEXT);
         DELETE FROM temp.tributary_slow_queries;",
    )
    .map_err(sq)?;
    let mut ins = conn
        .prepare_cached(
            "INSERT INTO temp.tributary_slow_queries
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
        )
        .map_err(sq)?;
    for r in rows {
        ins.execute(rusqlite::params![
            r.at_ms as i64,
            r.session as i64,
            r.statement,
            r.params,
            r.total_ms,
            r.consistency_wait_ms,
            r.execution_ms,
            r.append_ms,
            r.ack_wait_ms,
            r.rows.map(|n| n as i64),
            r.ok,
            r.replica,
            r.ack,
            r.read
        ])
        .map_err(sq)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_literals_and_space() {
        assert_eq!(
            normalize("SELECT  balance FROM accounts\n WHERE id = 42 AND name = 'o''x';"),
            "SELECT balance FROM accounts WHERE id = ? AND name = ?"
        );
        assert_eq!(
            normalize("UPDATE t SET v = v + $1 WHERE id = $2"),
            "UPDATE t SET v = v + $1 WHERE id = $2"
        );
    }

    #[test]
    fn keeps_the_newest_over_the_threshold() {
        let log = SlowLog::new(10, true, 2, "r1", "replica1");
        let params = [SqlValue::Integer(7), SqlValue::Text("a'b".into())];
        let finished = |sql, total_ms, wait_ms| Finished {
            session: 1,
            sql,
            params: Some(&params[..]),
            total: Duration::from_millis(total_ms),
            stages: Stages {
                consistency_wait: Duration::from_millis(wait_ms),
                ..Stages::default()
            },
            rows: Some(1),
            ok: true,
            ack: "async",
            read: "strong",
            replica: None,
        };
        log.observe(finished("SELECT 1", 5, 0));
        log.observe(finished("SELECT 2", 20, 15));
        log.observe(finished("SELECT 3", 30, 0));
        log.observe(finished("SELECT 4", 40, 0));
        let kept = log.snapshot();
        assert_eq!(kept.len(), 2);
        assert_eq!(kept[0].statement, "SELECT ?");
        assert_eq!(kept[0].total_ms, 30.0);
        assert_eq!(kept[1].params.as_deref(), Some("$1 = 7, $2 = 'a''b'"));
        let off = SlowLog::new(0, false, 10, "r1", "replica1");
        off.observe(finished("SELECT 1", 1_000, 0));
        assert!(off.snapshot().is_empty());
        let hidden = SlowLog::new(1, false, 10, "r1", "replica1");
        hidden.observe(finished("SELECT 1", 20, 15));
        let entry = &hidden.snapshot()[0];
        assert_eq!(entry.params, None);
        assert_eq!((entry.consistency_wait_ms, entry.execution_ms), (15.0, 5.0));
    }
}
