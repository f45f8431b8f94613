//! Reading a large `txn` record without holding all of its changes.
//!
//! A decoded change costs several times its JSON size (each row is a map of
//! owned strings), so a 200,000-row transaction decoded whole takes hundreds
//! of MB on every replica that reads it. Here the header is read first with
//! the changes skipped (no allocation), then the changes are parsed one at a
//! time and handed to the caller, which applies each before the next is
//! parsed. The bytes are the same record `Record::decode` reads; nothing in
//! the format changes.

use std::fmt;

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};

use crate::error::{Error, Result};
use crate::hlc::Hlc;
use crate::record::{Change, Record, RecordBody, check_version};

/// Every field but the body's, so reading it skips the changes.
#[derive(Deserialize)]
struct WireHead {
    v: Option<serde_json::Value>,
    #[serde(rename = "type")]
    kind: Option<String>,
    id: String,
    origin: String,
    hlc: Hlc,
    ts_ms: u64,
    idempotency: Option<crate::record::Idempotency>,
}

/// The header of a `txn` record, as a `Record` with no changes, or `None`
/// when the bytes are another record type (decode those whole). Errors are
/// those `Record::decode` gives for the same bytes' header.
pub fn txn_head(bytes: &[u8]) -> Result<Option<Record>> {
    let head: WireHead = match serde_json::from_slice(bytes) {
        Ok(h) => h,
        // Let the whole decoder produce its precise error.
        Err(_) => return Record::decode(bytes).map(|_| None),
    };
    check_version(head.v.as_ref())?;
    if head.kind.as_deref() != Some("txn") {
        return Ok(None);
    }
    Ok(Some(Record {
        id: head.id,
        origin: head.origin,
        hlc: head.hlc,
        ts_ms: head.ts_ms,
        body: RecordBody::Txn {
            changes: Vec::new(),
        },
        idempotency: head.idempotency,
    }))
}

/// Why a streamed read stopped early.
#[derive(Debug)]
pub enum Stopped<E> {
    /// The caller's function returned an error for a change.
    Caller(E),
    /// The record is malformed at or after some change.
    Decode(Error),
}

/// Parses the `changes` of a `txn` record in order, calling `f` with each
/// one before parsing the next. Stops at the first error `f` returns.
pub fn for_each_change<E>(
    bytes: &[u8],
    f: impl FnMut(Change) -> std::result::Result<(), E>,
) -> std::result::Result<(), Stopped<E>> {
    let mut state = Feed {
        f,
        failed: None,
        saw_changes: false,
    };
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let parsed = (&mut de)
        .deserialize_map(RecordVisitor { feed: &mut state })
        .and_then(|()| de.end());
    if let Some(e) = state.failed {
        return Err(Stopped::Caller(e));
    }
    parsed.map_err(|e| Stopped::Decode(Error::Decode(e.to_string())))?;
    if !state.saw_changes {
        return Err(Stopped::Decode(Error::Decode(
            "txn record without field changes".into(),
        )));
    }
    Ok(())
}

struct Feed<F, E> {
    f: F,
    /// The caller's error, kept here while serde unwinds with a custom one.
    failed: Option<E>,
    saw_changes: bool,
}

struct RecordVisitor<'a, F, E> {
    feed: &'a mut Feed<F, E>,
}

impl<'de, F, E> Visitor<'de> for RecordVisitor<'_, F, E>
where
    F: FnMut(Change) -> std::result::Result<(), E>,
{
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a record object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<(), A::Error> {
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            if key == "changes" {
                self.feed.saw_changes = true;
                map.next_value_seed(ChangesSeed {
                    feed: &mut *self.feed,
                })?;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(())
    }
}

struct ChangesSeed<'a, F, E> {
    feed: &'a mut Feed<F, E>,
}

impl<'de, F, E> DeserializeSeed<'de> for ChangesSeed<'_, F, E>
where
    F: FnMut(Change) -> std::result::Result<(), E>,
{
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> std::result::Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de, F, E> Visitor<'de> for ChangesSeed<'_, F, E>
where
    F: FnMut(Change) -> std::result::Result<(), E>,
{
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of row changes")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<(), A::Error> {
        while let Some(change) = seq.next_element::<Change>()? {
            if let Err(e) = (self.feed.f)(change) {
                self.feed.failed = Some(e);
                return Err(de::Error::custom("stopped by the caller"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{Op, Row};
    use crate::value::Value;

    fn txn(n: i64) -> Record {
        let changes = (0..n)
            .map(|i| Change {
                table: "t".into(),
                op: Op::Insert,
                key: Row::from([("id".into(), Value::Integer(i))]),
                before: None,
                after: Some(Row::from([
                    ("id".into(), Value::Integer(i)),
                    ("v".into(), Value::Text(format!("v\"{i}"))),
                ])),
            })
            .collect();
        Record::new(
            "r1-1-1".into(),
            "r1",
            Hlc::new(5, 1),
            RecordBody::Txn { changes },
        )
    }

    #[test]
    fn streams_the_same_changes_whole_decoding_gives() {
        let rec = txn(50);
        let bytes = rec.encode();
        let head = txn_head(&bytes).expect("head").expect("a txn");
        assert_eq!((head.id.as_str(), head.hlc), ("r1-1-1", rec.hlc));
        let mut seen = Vec::new();
        for_each_change::<()>(&bytes, |c| {
            seen.push(c);
            Ok(())
        })
        .expect("stream");
        let RecordBody::Txn { changes } = Record::decode(&bytes).expect("decode").body else {
            panic!("not a txn")
        };
        assert_eq!(seen, changes);
    }

    #[test]
    fn the_callers_error_stops_the_stream() {
        let bytes = txn(10).encode();
        let mut n = 0;
        let r = for_each_change(&bytes, |_| {
            n += 1;
            if n == 3 { Err("enough") } else { Ok(()) }
        });
        assert!(matches!(r, Err(Stopped::Caller("enough"))), "{r:?}");
        assert_eq!(n, 3);
    }

    #[test]
    fn other_types_and_bad_input_are_told_apart() {
        let ddl = Record::new(
            "d".into(),
            "r1",
            Hlc::new(1, 0),
            RecordBody::Ddl {
                sql: "CREATE TABLE t (id INTEGER PRIMARY KEY)".into(),
            },
        );
        assert_eq!(txn_head(&ddl.encode()).expect("head"), None);
        assert!(txn_head(b"{not json").is_err());
        let newer = br#"{"v":9,"type":"txn","changes":[],"id":"x","origin":"o","hlc":"01763763950302000000.0000000000","ts_ms":1}"#;
        assert!(matches!(
            txn_head(newer),
            Err(Error::UnsupportedVersion { found: 9, .. })
        ));
        // Truncated in the middle of the changes: the first ones are
        // delivered, then a decode error.
        let bytes = txn(5).encode();
        let cut = &bytes[..bytes.len() / 2];
        let mut n = 0;
        let r = for_each_change::<()>(cut, |_| {
            n += 1;
            Ok(())
        });
        assert!(matches!(r, Err(Stopped::Decode(_))), "{r:?}");
        let missing = br#"{"v":1,"type":"txn","id":"x","origin":"o","hlc":"01763763950302000000.0000000000","ts_ms":1}"#;
        assert!(matches!(
            for_each_change::<()>(missing, |_| Ok(())),
            Err(Stopped::Decode(_))
        ));
    }
}
