//! The versioned record: one per committed transaction, DDL statement or
//! policy change. This JSON shape is the contract with log consumers
//! (docs/record-format.md); decoding never panics and refuses versions it
//! does not know.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::hlc::Hlc;

/// The record format version this build writes and the newest it reads.
pub const RECORD_VERSION: u64 = 1;

pub use crate::row::Row;

/// One log record.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// Unique per origin transaction; retries of the same transaction reuse it.
    pub id: String,
    /// The node (router) where the transaction was accepted.
    pub origin: String,
    /// Origin HLC timestamp; `(hlc, origin)` totally orders concurrent writes.
    pub hlc: Hlc,
    /// Origin wall-clock time in milliseconds since the Unix epoch.
    pub ts_ms: u64,
    pub body: RecordBody,
    /// Set when the client tagged the transaction with an idempotency key
    /// (`txn` and `block` records only).
    pub idempotency: Option<Idempotency>,
}

/// A transaction's idempotency key: replicas apply the first record in
/// log order carrying a key and skip later ones with the same key while it
/// is remembered, and a retry gets `results` back instead of running again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Idempotency {
    pub key: String,
    /// How long the key is remembered after this record's `ts_ms`.
    pub window_ms: u64,
    /// What each write statement of the transaction answered, in order.
    #[serde(default)]
    pub results: Vec<StatementResult>,
}

/// One write statement's answer, kept for retries: its command tag and
/// RETURNING rows (unless they were over the size kept).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StatementResult {
    pub tag: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub columns: Vec<String>,
    /// Declared SQLite type of each column (how the router types it).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub types: Vec<Option<String>>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rows: Vec<Vec<crate::Value>>,
    /// The RETURNING rows were too large to keep.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub rows_omitted: bool,
}

/// What a record carries, by `type`. (Decoding goes through `WireIn`.)
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum RecordBody {
    /// Row changes of one transaction, applied atomically.
    Txn { changes: Vec<Change> },
    /// A schema statement, applied in log order on every replica.
    Ddl { sql: String },
    /// A new conflict-policy version; every replica switches at this offset.
    Policy { version: u64, policy: String },
    /// Reserves the next `count` generated keys of `table` for the record's
    /// origin. Every replica computes the same range at this offset (see
    /// docs/record-format.md); no row changes.
    Ids { table: String, count: u64 },
    /// A transaction block that mixed schema statements and row changes:
    /// its steps in statement order, applied atomically.
    Block { steps: Vec<Step> },
    /// A new table placement version; every replica switches at this
    /// offset, keeping only its shard group's rows of sharded tables.
    Placement {
        version: u64,
        placement: crate::Placement,
    },
}

/// One step of a `block` record: `{"sql": …}` or `{"changes": […]}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Step {
    /// A schema statement, as in a `ddl` record.
    Ddl { sql: String },
    /// Net row changes since the previous schema statement, as in a `txn`
    /// record.
    Rows { changes: Vec<Change> },
}

/// Kind of row change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Op {
    Insert,
    Update,
    Delete,
}

/// One row change with full before and after images.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Change {
    pub table: String,
    pub op: Op,
    /// Primary-key columns of the row.
    pub key: Row,
    /// The row before the change (update, delete).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<Row>,
    /// The row after the change (insert, update).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<Row>,
}

#[derive(Serialize)]
struct WireOut<'a> {
    v: u64,
    #[serde(flatten)]
    body: &'a RecordBody,
    id: &'a str,
    origin: &'a str,
    hlc: Hlc,
    ts_ms: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    idempotency: Option<&'a Idempotency>,
}

/// Every field any record type has, so one pass of serde_json's struct
/// deserializer reads a record (a flattened, internally tagged enum would
/// buffer the whole object first, several times slower).
#[derive(Deserialize)]
struct WireIn {
    v: Option<serde_json::Value>,
    #[serde(rename = "type")]
    kind: Option<String>,
    id: String,
    origin: String,
    hlc: Hlc,
    ts_ms: u64,
    changes: Option<Vec<Change>>,
    sql: Option<String>,
    version: Option<u64>,
    policy: Option<String>,
    table: Option<String>,
    count: Option<u64>,
    steps: Option<Vec<Step>>,
    placement: Option<crate::Placement>,
    idempotency: Option<Idempotency>,
}

#[derive(Deserialize)]
struct VersionProbe {
    v: Option<serde_json::Value>,
}

pub(crate) fn check_version(v: Option<&serde_json::Value>) -> Result<()> {
    match v {
        Some(serde_json::Value::Number(n)) => match n.as_u64() {
            Some(RECORD_VERSION) => Ok(()),
            Some(found) if found > RECORD_VERSION => Err(Error::UnsupportedVersion {
                found,
                supported: RECORD_VERSION,
            }),
            _ => Err(Error::Decode(format!("unknown record version {n}"))),
        },
        Some(other) => Err(Error::Decode(format!(
            "field v must be a number, got {other}"
        ))),
        None => Err(Error::Decode("missing field v (record version)".into())),
    }
}

impl Record {
    /// A record stamped `hlc` by `origin` (its wall time becomes `ts_ms`).
    pub fn new(id: String, origin: &str, hlc: Hlc, body: RecordBody) -> Record {
        Record {
            id,
            origin: origin.to_owned(),
            hlc,
            ts_ms: hlc.wall_ms(),
            body,
            idempotency: None,
        }
    }
    /// JSON bytes of this record, as appended to the log.
    pub fn encode(&self) -> Vec<u8> {
        let wire = WireOut {
            v: RECORD_VERSION,
            body: &self.body,
            id: &self.id,
            origin: &self.origin,
            hlc: self.hlc,
            ts_ms: self.ts_ms,
            idempotency: self.idempotency.as_ref(),
        };
        // Serializing owned, finite-checked values into a Vec cannot fail.
        serde_json::to_vec(&wire).unwrap_or_default()
    }

    /// Parses a record, refusing unknown versions and malformed input.
    pub fn decode(bytes: &[u8]) -> Result<Record> {
        let wire: WireIn = match serde_json::from_slice(bytes) {
            Ok(w) => w,
            Err(e) => {
                // A newer version may have another shape: say so rather
                // than report a field error.
                let probe: VersionProbe = serde_json::from_slice(bytes)
                    .map_err(|_| Error::Decode(format!("not a record object: {e}")))?;
                check_version(probe.v.as_ref())?;
                return Err(Error::Decode(e.to_string()));
            }
        };
        check_version(wire.v.as_ref())?;
        let missing =
            |field: &str, kind: &str| Error::Decode(format!("{kind} record without field {field}"));
        let body = match wire.kind.as_deref() {
            Some("txn") => RecordBody::Txn {
                changes: wire.changes.ok_or_else(|| missing("changes", "txn"))?,
            },
            Some("ddl") => RecordBody::Ddl {
                sql: wire.sql.ok_or_else(|| missing("sql", "ddl"))?,
            },
            Some("policy") => RecordBody::Policy {
                version: wire.version.ok_or_else(|| missing("version", "policy"))?,
                policy: wire.policy.ok_or_else(|| missing("policy", "policy"))?,
            },
            Some("ids") => RecordBody::Ids {
                table: wire.table.ok_or_else(|| missing("table", "ids"))?,
                count: wire.count.ok_or_else(|| missing("count", "ids"))?,
            },
            Some("block") => RecordBody::Block {
                steps: wire.steps.ok_or_else(|| missing("steps", "block"))?,
            },
            Some("placement") => RecordBody::Placement {
                version: wire
                    .version
                    .ok_or_else(|| missing("version", "placement"))?,
                placement: wire
                    .placement
                    .ok_or_else(|| missing("placement", "placement"))?,
            },
            Some(other) => {
                return Err(Error::Decode(format!(
                    "unknown record type {other:?}; expected txn, ddl, policy, ids, block or placement"
                )));
            }
            None => return Err(Error::Decode("missing field type".into())),
        };
        Ok(Record {
            id: wire.id,
            origin: wire.origin,
            hlc: wire.hlc,
            ts_ms: wire.ts_ms,
            body,
            idempotency: wire.idempotency,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Value;
    use proptest::prelude::*;

    fn value() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(Value::Null),
            any::<i64>().prop_map(Value::Integer),
            (-1e300f64..1e300).prop_map(Value::Real),
            ".*".prop_map(Value::Text),
            proptest::collection::vec(any::<u8>(), 0..40).prop_map(Value::Blob),
        ]
    }

    fn row() -> impl Strategy<Value = Row> {
        proptest::collection::btree_map("[a-z_\"$]{1,8}", value(), 0..5)
            .prop_map(|m| m.into_iter().collect())
    }

    fn change() -> impl Strategy<Value = Change> {
        (
            "[a-z]{1,10}",
            prop_oneof![Just(Op::Insert), Just(Op::Update), Just(Op::Delete)],
            row(),
            proptest::option::of(row()),
            proptest::option::of(row()),
        )
            .prop_map(|(table, op, key, before, after)| Change {
                table,
                op,
                key,
                before,
                after,
            })
    }

    fn body() -> impl Strategy<Value = RecordBody> {
        prop_oneof![
            proptest::collection::vec(change(), 0..4)
                .prop_map(|changes| RecordBody::Txn { changes }),
            ".*".prop_map(|sql| RecordBody::Ddl { sql }),
            (any::<u64>(), ".*")
                .prop_map(|(version, policy)| RecordBody::Policy { version, policy }),
            (".*", any::<u64>()).prop_map(|(table, count)| RecordBody::Ids { table, count }),
            proptest::collection::vec(
                prop_oneof![
                    ".*".prop_map(|sql| Step::Ddl { sql }),
                    proptest::collection::vec(change(), 0..3)
                        .prop_map(|changes| Step::Rows { changes }),
                ],
                0..4
            )
            .prop_map(|steps| RecordBody::Block { steps }),
            (any::<u64>(), 0u32..5, "[a-z]{1,8}", "[a-z]{1,8}", 1u32..64).prop_map(
                |(version, groups, table, column, shards)| {
                    let mut placement = crate::Placement {
                        groups: (0..groups).map(|g| vec![format!("replica{g}")]).collect(),
                        ..Default::default()
                    };
                    placement.tables.insert(
                        table,
                        crate::TablePlacement {
                            column,
                            method: crate::Method::Hash { shards },
                        },
                    );
                    RecordBody::Placement { version, placement }
                }
            ),
        ]
    }

    proptest! {
        #[test]
        fn records_round_trip(id in ".*", origin in ".*", wall in any::<u64>(), count in any::<u32>(),
                              ts_ms in any::<u64>(), body in body()) {
            let idempotency = (count % 3 == 0).then(|| Idempotency {
                key: format!("k{wall}"),
                window_ms: ts_ms,
                results: vec![StatementResult {
                    tag: "INSERT 0 1".into(),
                    columns: vec!["id".into()],
                    types: vec![Some("INTEGER".into()), None],
                    rows: vec![vec![Value::Integer(count.into())]],
                    rows_omitted: count % 2 == 0,
                }],
            });
            let rec = Record { id, origin, hlc: Hlc::new(wall, count), ts_ms, body, idempotency };
            let decoded = Record::decode(&rec.encode());
            prop_assert_eq!(decoded.ok(), Some(rec));
        }

        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = Record::decode(&bytes);
        }
    }

    #[test]
    fn matches_design_example() -> Result<()> {
        let text = br#"{"v":1,"type":"txn","id":"r1-8f3a-42","origin":"r1","hlc":"00000001763763950302.0000000000","ts_ms":1763763950302,
 "changes":[{"table":"accounts","op":"update","key":{"id":1},
             "before":{"id":1,"balance":100},"after":{"id":1,"balance":120}}]}"#;
        let rec = Record::decode(text)?;
        assert_eq!(rec.origin, "r1");
        let RecordBody::Txn { changes } = &rec.body else {
            panic!("expected txn");
        };
        assert_eq!(changes.len(), 1);
        assert_eq!(
            changes[0].after.as_ref().and_then(|a| a.get("balance")),
            Some(&Value::Integer(120))
        );
        Ok(())
    }

    #[test]
    fn rejects_newer_and_missing_versions() {
        let newer =
            br#"{"v":2,"type":"txn","id":"a","origin":"o","hlc":"1.0","ts_ms":1,"changes":[]}"#;
        assert!(matches!(
            Record::decode(newer),
            Err(Error::UnsupportedVersion { found: 2, .. })
        ));
        let missing = br#"{"type":"txn","id":"a","origin":"o","hlc":"1.0","ts_ms":1,"changes":[]}"#;
        assert!(matches!(Record::decode(missing), Err(Error::Decode(_))));
        assert!(Record::decode(b"\xff\x00garbage").is_err());
    }

    #[test]
    fn blob_encoding() {
        let v = Value::Blob(vec![0, 1, 2, 255]);
        let json = serde_json::to_string(&v).unwrap_or_default();
        assert_eq!(json, r#"{"$blob":"AAEC/w=="}"#);
    }
}
