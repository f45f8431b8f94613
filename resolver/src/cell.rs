//! Cells (one column of one row) and how two versions of a cell merge.
//!
//! `lww`, `max` and `min` merge plain values; `counter` and `set` cells keep a
//! CRDT state in the replica's metadata — a PN-counter and an observed-remove
//! set from the `crdts` crate — so concurrent changes compose instead of
//! overwriting each other.

use std::cmp::Ordering;

use crdts::{CmRDT, Orswot, PNCounter};
use serde::{Deserialize, Serialize};
use wal_bus::Value;

use crate::error::{Error, Result};
use crate::stamp::Stamp;

/// One column of a row as a replica holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct Cell {
    pub value: Value,
    /// The write that last set this cell (None: before metadata existed).
    pub stamp: Option<Stamp>,
}

/// CRDT state of a `counter` or `set` cell.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum CellState {
    Counter { base: i64, pn: PNCounter<String> },
    Set(Orswot<String, String>),
}

/// SQLite's ordering of values: NULL < numbers < text < blob.
pub fn cmp_values(a: &Value, b: &Value) -> Ordering {
    fn class(v: &Value) -> u8 {
        match v {
            Value::Null => 0,
            Value::Integer(_) | Value::Real(_) => 1,
            Value::Text(_) => 2,
            Value::Blob(_) => 3,
        }
    }
    match (a, b) {
        (Value::Integer(x), Value::Integer(y)) => x.cmp(y),
        (Value::Integer(x), Value::Real(y)) => (*x as f64).total_cmp(y),
        (Value::Real(x), Value::Integer(y)) => x.total_cmp(&(*y as f64)),
        (Value::Real(x), Value::Real(y)) => x.total_cmp(y),
        (Value::Text(x), Value::Text(y)) => x.cmp(y),
        (Value::Blob(x), Value::Blob(y)) => x.cmp(y),
        _ => class(a).cmp(&class(b)),
    }
}

pub fn merge_max(a: &Value, b: &Value) -> Value {
    if cmp_values(b, a) == Ordering::Greater {
        b.clone()
    } else {
        a.clone()
    }
}

pub fn merge_min(a: &Value, b: &Value) -> Value {
    if cmp_values(b, a) == Ordering::Less {
        b.clone()
    } else {
        a.clone()
    }
}

/// A counter cell's integer; NULL counts as 0 (a counter that was never
/// set). Anything else that is not a 64-bit integer is an error, never 0.
fn as_i64(v: &Value) -> Result<i64> {
    let bad = || Error::Overflow(format!("a counter holds {v}, not a 64-bit integer"));
    match v {
        Value::Null => Ok(0),
        Value::Integer(i) => Ok(*i),
        Value::Real(f)
            if f.fract() == 0.0
                && *f >= -9.223_372_036_854_776e18
                && *f < 9.223_372_036_854_776e18 =>
        {
            Ok(*f as i64)
        }
        Value::Text(t) => t.trim().parse().map_err(|_| bad()),
        _ => Err(bad()),
    }
}

/// Parses a JSON-array cell into canonical member strings.
pub fn set_members(v: &Value) -> Result<Vec<String>, String> {
    let text = match v {
        Value::Null => return Ok(Vec::new()),
        Value::Text(t) => t,
        other => return Err(format!("a set column holds a JSON array, not {other}")),
    };
    match serde_json::from_str::<serde_json::Value>(text) {
        Ok(serde_json::Value::Array(items)) => {
            let mut m: Vec<String> = items.iter().map(|i| i.to_string()).collect();
            m.sort();
            m.dedup();
            Ok(m)
        }
        _ => Err(format!("a set column holds a JSON array, not {text:?}")),
    }
}

fn set_value(members: &[String]) -> Value {
    let items: Vec<serde_json::Value> = members
        .iter()
        .filter_map(|m| serde_json::from_str(m).ok())
        .collect();
    Value::Text(serde_json::Value::Array(items).to_string())
}

impl CellState {
    /// The state a cell starts from when it has none yet: its current value.
    pub fn counter_from(value: &Value) -> Result<CellState> {
        Ok(CellState::Counter {
            base: as_i64(value)?,
            pn: PNCounter::new(),
        })
    }

    pub fn set_from(value: &Value) -> CellState {
        let mut s: Orswot<String, String> = Orswot::new();
        if let Ok(members) = set_members(value) {
            for m in members {
                let ctx = s.read_ctx().derive_add_ctx("_base".to_owned());
                let op = s.add(m, ctx);
                s.apply(op);
            }
        }
        CellState::Set(s)
    }

    /// Applies one origin's change of the cell from `before` to `after`.
    pub fn apply_change(&mut self, origin: &str, before: &Value, after: &Value) -> Result<()> {
        match self {
            CellState::Counter { pn, .. } => {
                let delta = as_i64(after)?.checked_sub(as_i64(before)?).ok_or_else(|| {
                    Error::Overflow(format!("a counter change from {before} to {after}"))
                })?;
                if delta > 0 {
                    let op = pn.inc_many(origin.to_owned(), delta as u64);
                    pn.apply(op);
                } else if delta < 0 {
                    let op = pn.dec_many(origin.to_owned(), delta.unsigned_abs());
                    pn.apply(op);
                }
            }
            CellState::Set(s) => {
                let b = set_members(before).map_err(Error::State)?;
                let a = set_members(after).map_err(Error::State)?;
                for m in a.iter().filter(|m| !b.contains(m)) {
                    let ctx = s.read_ctx().derive_add_ctx(origin.to_owned());
                    let op = s.add(m.clone(), ctx);
                    s.apply(op);
                }
                for m in b.iter().filter(|m| !a.contains(m)) {
                    let ctx = s.contains(m).derive_rm_ctx();
                    let op = s.rm(m.clone(), ctx);
                    s.apply(op);
                }
            }
        }
        Ok(())
    }

    /// The cell's value; a counter past the range of a 64-bit integer is
    /// an error (the state keeps every count; nothing is reset).
    pub fn value(&self) -> Result<Value> {
        match self {
            CellState::Counter { base, pn } => {
                let total = pn.read();
                let out_of_range = || {
                    Error::Overflow(format!(
                        "a counter of {base} plus {total} leaves the range of a 64-bit integer"
                    ))
                };
                let n: i64 = total.to_string().parse().map_err(|_| out_of_range())?;
                base.checked_add(n)
                    .map(Value::Integer)
                    .ok_or_else(out_of_range)
            }
            CellState::Set(s) => {
                let mut m: Vec<String> = s.read().val.into_iter().collect();
                m.sort();
                Ok(set_value(&m))
            }
        }
    }

    pub fn encode(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    pub fn decode(text: &str) -> Result<CellState> {
        serde_json::from_str(text).map_err(|e| Error::State(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn value() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(Value::Null),
            (-50i64..50).prop_map(Value::Integer),
            (-50.0f64..50.0).prop_map(Value::Real),
            "[a-c]{0,3}".prop_map(Value::Text),
        ]
    }

    proptest! {
        #[test]
        fn max_min_are_semilattices(a in value(), b in value(), c in value()) {
            for f in [merge_max as fn(&Value, &Value) -> Value, merge_min] {
                prop_assert_eq!(cmp_values(&f(&a, &b), &f(&b, &a)), Ordering::Equal);
                prop_assert_eq!(cmp_values(&f(&f(&a, &b), &c), &f(&a, &f(&b, &c))), Ordering::Equal);
                prop_assert_eq!(cmp_values(&f(&a, &a), &a), Ordering::Equal);
            }
        }

        /// Concurrent set changes (each a before → after on the same
        /// base, what replicas apply) give one result in any order.
        #[test]
        fn set_changes_commute(changes in proptest::collection::vec(("[abc]", proptest::collection::vec(0u8..5, 0..4)), 0..6), seed in any::<u64>()) {
            let base = Value::Text("[1,2]".into());
            let j = |v: &[u8]| Value::Text(serde_json::to_string(v).unwrap_or_default());
            let run = |cs: &[(String, Vec<u8>)]| {
                let mut s = CellState::set_from(&base);
                for (actor, after) in cs {
                    let _ = s.apply_change(actor, &base, &j(after));
                }
                s.value().ok()
            };
            let mut shuffled = changes.clone();
            if !shuffled.is_empty() {
                let n = shuffled.len();
                shuffled.rotate_left((seed as usize) % n);
                shuffled.reverse();
            }
            prop_assert_eq!(run(&changes), run(&shuffled));
        }

        #[test]
        fn counter_deltas_commute(deltas in proptest::collection::vec(("[abc]", -20i64..20), 0..8), seed in any::<u64>()) {
            let run = |ds: &[(String, i64)]| {
                let mut s = CellState::counter_from(&Value::Integer(100)).expect("counter");
                for (actor, d) in ds {
                    let _ = s.apply_change(actor, &Value::Integer(100), &Value::Integer(100 + d));
                }
                s.value().ok()
            };
            let mut shuffled = deltas.clone();
            if !shuffled.is_empty() {
                let n = shuffled.len();
                shuffled.rotate_left((seed as usize) % n);
            }
            let total: i64 = deltas.iter().map(|(_, d)| d).sum();
            prop_assert_eq!(run(&deltas), Some(Value::Integer(100 + total)));
            prop_assert_eq!(run(&deltas), run(&shuffled));
        }
    }

    #[test]
    fn a_counter_past_the_64_bit_range_is_an_error_and_keeps_its_count() -> Result<()> {
        let base = Value::Integer(i64::MAX - 10);
        let mut s = CellState::counter_from(&base)?;
        s.apply_change("r1", &base, &Value::Integer(i64::MAX - 7))?;
        s.apply_change("r2", &base, &Value::Integer(i64::MAX - 6))?;
        assert_eq!(s.value().ok(), Some(Value::Integer(i64::MAX - 3)));
        s.apply_change("r3", &Value::Integer(0), &Value::Integer(10))?;
        assert!(matches!(s.value(), Err(Error::Overflow(_))));
        // The count is kept: taking the increment back brings the value back.
        s.apply_change("r3", &Value::Integer(10), &Value::Integer(0))?;
        assert_eq!(s.value().ok(), Some(Value::Integer(i64::MAX - 3)));
        assert!(CellState::counter_from(&Value::Real(1.5)).is_err());
        assert!(CellState::counter_from(&Value::Text("x".into())).is_err());
        Ok(())
    }

    #[test]
    fn concurrent_increments_add_up() -> Result<()> {
        let mut s = CellState::counter_from(&Value::Integer(100)).expect("counter");
        s.apply_change("r1", &Value::Integer(100), &Value::Integer(105))?;
        s.apply_change("r2", &Value::Integer(100), &Value::Integer(103))?;
        assert_eq!(s.value().ok(), Some(Value::Integer(108)));
        Ok(())
    }

    #[test]
    fn set_adds_and_removes() -> Result<()> {
        let mut s = CellState::set_from(&Value::Text("[\"a\",\"b\"]".into()));
        s.apply_change(
            "r1",
            &Value::Text("[\"a\",\"b\"]".into()),
            &Value::Text("[\"a\",\"b\",\"c\"]".into()),
        )?;
        s.apply_change(
            "r2",
            &Value::Text("[\"a\",\"b\"]".into()),
            &Value::Text("[\"b\",\"d\"]".into()),
        )?;
        assert_eq!(
            s.value().ok(),
            Some(Value::Text("[\"b\",\"c\",\"d\"]".into()))
        );
        let round = CellState::decode(&s.encode())?;
        assert_eq!(round.value().ok(), s.value().ok());
        Ok(())
    }
}
