//! The per-row change-event view of the log in Debezium's envelope, for
//! consumers that already speak Debezium: `tributary log tail --format
//! debezium` and the per-table topics `<prefix>.<table>`.
//!
//! ```json
//! {"before": {...} | null, "after": {...} | null,
//!  "source": {"name": "tributary", "node": "r1", "table": "accounts",
//!             "ts_ms": 1763763950302, "txId": "r1-3-17", "offset": 42},
//!  "op": "c" | "u" | "d", "ts_ms": 1763763950310}
//! ```

use serde_json::{Value as Json, json};
use wal_bus::{Offset, Op, Record, RecordBody, Row};

/// One change event: the table, its key (as JSON, the Kafka message key),
/// and the envelope.
#[derive(Debug, Clone, PartialEq)]
pub struct ChangeEvent {
    pub table: String,
    pub key: String,
    pub envelope: Json,
}

fn row_json(row: Option<&Row>) -> Json {
    row.and_then(|r| serde_json::to_value(r).ok())
        .unwrap_or(Json::Null)
}

/// Idempotency keys seen, so a retry that raced its original (a later
/// record with the same key, which no replica applies) yields no events.
/// Kept in memory from where the reader started: a reader started between
/// an original and its retry (appended milliseconds apart) would miss it.
#[derive(Debug, Default)]
pub struct Retries {
    /// Key → record time until which it is remembered.
    seen: std::collections::HashMap<String, u64>,
    pruned_at: usize,
}

impl Retries {
    /// Whether `record` is a retry replicas skip; remembers its key if not.
    pub fn skip(&mut self, record: &Record) -> bool {
        let Some(idem) = &record.idempotency else {
            return false;
        };
        if !matches!(
            record.body,
            RecordBody::Txn { .. } | RecordBody::Block { .. }
        ) {
            return false;
        }
        if self
            .seen
            .get(&idem.key)
            .is_some_and(|until| *until >= record.ts_ms)
        {
            return true;
        }
        self.seen.insert(
            idem.key.clone(),
            record.ts_ms.saturating_add(idem.window_ms),
        );
        if self.seen.len() > 2 * self.pruned_at.max(1024) {
            self.seen.retain(|_, until| *until >= record.ts_ms);
            self.pruned_at = self.seen.len();
        }
        false
    }
}

/// The change events of one record: its row changes (a block's in order;
/// none for ddl, ids and policy records).
pub fn events(record: &Record, offset: Offset, now_ms: u64) -> Vec<ChangeEvent> {
    let changes: Vec<&wal_bus::Change> = match &record.body {
        RecordBody::Txn { changes } => changes.iter().collect(),
        RecordBody::Block { steps } => steps
            .iter()
            .flat_map(|s| match s {
                wal_bus::Step::Rows { changes } => changes.iter().collect(),
                wal_bus::Step::Ddl { .. } => Vec::new(),
            })
            .collect(),
        _ => return Vec::new(),
    };
    changes
        .into_iter()
        .map(|c| {
            let op = match c.op {
                Op::Insert => "c",
                Op::Update => "u",
                Op::Delete => "d",
            };
            ChangeEvent {
                table: c.table.clone(),
                key: serde_json::to_string(&c.key).unwrap_or_default(),
                envelope: json!({
                    "before": row_json(c.before.as_ref()),
                    "after": row_json(c.after.as_ref()),
                    "source": {
                        "name": "tributary",
                        "node": record.origin,
                        "table": c.table,
                        "ts_ms": record.ts_ms,
                        "txId": record.id,
                        "offset": offset,
                    },
                    "op": op,
                    "ts_ms": now_ms,
                }),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_raced_retry_yields_no_events_until_its_key_expires() {
        let keyed = |ts_ms: u64| {
            let mut r = Record::new(
                "x".into(),
                "r1",
                wal_bus::Hlc::new(ts_ms * 1_000_000, 0),
                RecordBody::Txn {
                    changes: Vec::new(),
                },
            );
            r.idempotency = Some(wal_bus::Idempotency {
                key: "k".into(),
                window_ms: 1000,
                results: Vec::new(),
            });
            r
        };
        let mut retries = Retries::default();
        assert!(!retries.skip(&keyed(10)));
        assert!(retries.skip(&keyed(20)));
        assert!(retries.skip(&keyed(1010)));
        assert!(!retries.skip(&keyed(1011)));
    }
    use wal_bus::{Change, Hlc, Value};

    #[test]
    fn envelope_shape() {
        let key: Row = [("id".to_owned(), Value::Integer(1))].into_iter().collect();
        let mut after = key.clone();
        after.insert("v".into(), Value::Text("x".into()));
        let rec = Record {
            id: "r1-1-0".into(),
            origin: "r1".into(),
            hlc: Hlc::new(1, 0),
            ts_ms: 5,
            idempotency: None,
            body: RecordBody::Txn {
                changes: vec![
                    Change {
                        table: "t".into(),
                        op: Op::Insert,
                        key: key.clone(),
                        before: None,
                        after: Some(after.clone()),
                    },
                    Change {
                        table: "t".into(),
                        op: Op::Delete,
                        key,
                        before: Some(after),
                        after: None,
                    },
                ],
            },
        };
        let ev = events(&rec, 7, 9);
        assert_eq!(ev.len(), 2);
        assert_eq!(ev[0].key, r#"{"id":1}"#);
        assert_eq!(ev[0].envelope["op"], "c");
        assert_eq!(ev[0].envelope["after"]["v"], "x");
        assert_eq!(ev[0].envelope["before"], Json::Null);
        assert_eq!(ev[0].envelope["source"]["offset"], 7);
        assert_eq!(ev[0].envelope["source"]["txId"], "r1-1-0");
        assert_eq!(ev[1].envelope["op"], "d");
        assert_eq!(ev[1].envelope["after"], Json::Null);
    }
}
