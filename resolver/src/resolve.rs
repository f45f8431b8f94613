//! Row-level resolution: given the policy, the replica's row (with per-column
//! stamps and CRDT states) and an incoming change, decide what the row
//! becomes. Pure and deterministic: every replica that asks with the same
//! inputs gets the same answer.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};

use wal_bus::{Op, Row, Value};

use crate::cell::{Cell, CellState, merge_max, merge_min};
use crate::error::{Error, Result};
use crate::policy::{ColumnRule, DeletePolicy, Policy, Strategy};
use crate::stamp::{ConflictKind, Stamp};

/// The replica's current state of the row.
#[derive(Debug, Clone, PartialEq)]
pub enum LocalRow {
    Present {
        cells: BTreeMap<String, Cell>,
        states: BTreeMap<String, CellState>,
    },
    /// Deleted by the write with this stamp.
    Deleted(Stamp),
    /// Never seen.
    Absent,
}

/// The change being applied.
#[derive(Debug, Clone, Copy)]
pub struct Incoming<'a> {
    pub op: Op,
    pub before: Option<&'a Row>,
    pub after: Option<&'a Row>,
    pub stamp: &'a Stamp,
}

/// What the replica does with the row.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Store this whole row; `stamped` columns take the incoming stamp;
    /// `states` are the new CRDT states of counter/set cells.
    Write {
        row: Row,
        stamped: BTreeSet<String>,
        states: BTreeMap<String, CellState>,
    },
    Delete,
    Keep,
    /// First-writer-wins: the whole transaction is rejected.
    Reject,
}

/// A decision and how it was reached (for the conflict audit).
#[derive(Debug, Clone, PartialEq)]
pub struct Resolution {
    pub action: Action,
    /// `applied`, `merged`, `kept_local`, `resurrected`, `deleted`, `rejected`, …
    pub outcome: &'static str,
    /// The strategies/rules that decided, comma-separated.
    pub strategy: String,
    /// Columns the decision concerned.
    pub columns: Vec<String>,
}

/// Decides the row's fate. `kind` is `None` when the change applies cleanly
/// (it still passes through here for tables with counter or set columns).
pub fn resolve(
    policy: &Policy,
    table: &str,
    kind: Option<ConflictKind>,
    local: &LocalRow,
    inc: Incoming<'_>,
) -> Result<Resolution> {
    let strategy = policy.strategy_of(table);
    if kind.is_some() && strategy == Strategy::FirstWriterWins {
        return Ok(Resolution {
            action: Action::Reject,
            outcome: "rejected",
            strategy: strategy.as_str().to_owned(),
            columns: Vec::new(),
        });
    }
    let deletes = policy.deletes_of(table);
    match (inc.op, local) {
        (Op::Delete, LocalRow::Present { cells, .. }) => {
            let delete = match (kind, deletes) {
                (None, _) | (_, DeletePolicy::DeleteWins) => true,
                (_, DeletePolicy::UpdateWins) => false,
                (_, DeletePolicy::Lww) => cells
                    .values()
                    .all(|c| inc.stamp.wins_over(c.stamp.as_ref())),
            };
            Ok(Resolution {
                action: if delete { Action::Delete } else { Action::Keep },
                outcome: if delete { "deleted" } else { "kept_local" },
                strategy: format!("deletes={}", deletes.as_str()),
                columns: Vec::new(),
            })
        }
        (Op::Delete, _) => Ok(Resolution {
            action: Action::Keep,
            outcome: "already_deleted",
            strategy: format!("deletes={}", deletes.as_str()),
            columns: Vec::new(),
        }),
        (Op::Insert | Op::Update, LocalRow::Present { cells, states }) => {
            merge_into(policy, table, kind, cells, states, inc)
        }
        (Op::Insert | Op::Update, LocalRow::Deleted(tomb))
            if inc.op == Op::Update || kind.is_some() =>
        {
            let resurrect = match deletes {
                DeletePolicy::DeleteWins => false,
                DeletePolicy::UpdateWins => true,
                DeletePolicy::Lww => inc.stamp > tomb,
            };
            if resurrect {
                Ok(fresh_row(
                    inc,
                    "resurrected",
                    format!("deletes={}", deletes.as_str()),
                ))
            } else {
                Ok(Resolution {
                    action: Action::Keep,
                    outcome: "kept_deleted",
                    strategy: format!("deletes={}", deletes.as_str()),
                    columns: Vec::new(),
                })
            }
        }
        (Op::Insert | Op::Update, _) => {
            let outcome = if kind.is_some() {
                "inserted"
            } else {
                "applied"
            };
            Ok(fresh_row(inc, outcome, strategy.as_str().to_owned()))
        }
    }
}

/// The strategy named in a rejection caused by a counter leaving the 64-bit
/// range (the router answers it with SQLSTATE 22003).
pub const COUNTER_OVERFLOW: &str = "counter (out of range)";

/// The incoming after-image as a new row (CRDT cells start from it).
fn fresh_row(inc: Incoming<'_>, outcome: &'static str, strategy: String) -> Resolution {
    let row = inc.after.cloned().unwrap_or_default();
    Resolution {
        action: Action::Write {
            stamped: row.keys().cloned().collect(),
            states: BTreeMap::new(),
            row,
        },
        outcome,
        strategy,
        columns: Vec::new(),
    }
}

fn merge_into(
    policy: &Policy,
    table: &str,
    kind: Option<ConflictKind>,
    cells: &BTreeMap<String, Cell>,
    states: &BTreeMap<String, CellState>,
    inc: Incoming<'_>,
) -> Result<Resolution> {
    let after = inc.after.cloned().unwrap_or_default();
    let null = Value::Null;
    let mut row: Row = cells
        .iter()
        .map(|(c, cell)| (c.clone(), cell.value.clone()))
        .collect();
    let mut stamped = BTreeSet::new();
    let mut new_states = BTreeMap::new();
    let mut rules = BTreeSet::new();
    let mut columns = Vec::new();
    let mut took_all = true;
    let mut took_any = false;
    for (col, new) in &after {
        let old = inc.before.and_then(|b| b.get(col));
        if inc.op == Op::Update && old == Some(new) {
            continue; // this change did not touch the column
        }
        let local = cells.get(col);
        let local_value = local.map_or(&null, |c| &c.value);
        let local_stamp = local.and_then(|c| c.stamp.as_ref());
        let rule = policy.rule_of(table, col);
        let take = |row: &mut Row, stamped: &mut BTreeSet<String>, v: Value| {
            row.insert(col.clone(), v);
            stamped.insert(col.clone());
        };
        let mut taken = false;
        match (rule, kind) {
            (ColumnRule::Counter, k) if k != Some(ConflictKind::InsertExists) => {
                let merged = (|| {
                    let state = if inc.op == Op::Insert {
                        CellState::counter_from(new)?
                    } else {
                        let mut st = match states.get(col) {
                            Some(st) => st.clone(),
                            None => CellState::counter_from(local_value)?,
                        };
                        st.apply_change(&inc.stamp.origin, old.unwrap_or(&null), new)?;
                        st
                    };
                    let value = state.value()?;
                    Ok::<_, Error>((state, value))
                })();
                match merged {
                    Ok((state, value)) => {
                        take(&mut row, &mut stamped, value);
                        new_states.insert(col.clone(), state);
                        taken = true;
                    }
                    // Past the 64-bit range (or not an integer): the whole
                    // transaction is refused on every replica, and the
                    // counter keeps every count it had (never reset).
                    Err(Error::Overflow(_)) => {
                        return Ok(Resolution {
                            action: Action::Reject,
                            outcome: "rejected",
                            strategy: COUNTER_OVERFLOW.to_owned(),
                            columns: vec![col.clone()],
                        });
                    }
                    Err(e) => return Err(e),
                }
            }
            (ColumnRule::Set, _) => {
                let mut state = match (inc.op, kind) {
                    (Op::Insert, None) => CellState::set_from(&null),
                    _ => states
                        .get(col)
                        .cloned()
                        .unwrap_or_else(|| CellState::set_from(local_value)),
                };
                let from = if inc.op == Op::Insert {
                    &null
                } else {
                    old.unwrap_or(&null)
                };
                state.apply_change(&inc.stamp.origin, from, new)?;
                take(&mut row, &mut stamped, state.value()?);
                new_states.insert(col.clone(), state);
                taken = true;
            }
            (_, None) => {
                take(&mut row, &mut stamped, new.clone());
                taken = true;
            }
            (ColumnRule::Lww | ColumnRule::Counter, Some(_)) => {
                if inc.stamp.wins_over(local_stamp) {
                    take(&mut row, &mut stamped, new.clone());
                    if rule == ColumnRule::Counter {
                        // Overwritten, not added to: the counter restarts
                        // here (a value that is no integer keeps no state).
                        if let Ok(st) = CellState::counter_from(new) {
                            new_states.insert(col.clone(), st);
                        }
                    }
                    taken = true;
                }
            }
            (ColumnRule::Priority, Some(_)) => {
                let mine = policy.rank(table, &inc.stamp.origin);
                let theirs = local_stamp.map_or(usize::MAX, |s| policy.rank(table, &s.origin));
                let wins = match mine.cmp(&theirs) {
                    Ordering::Less => true,
                    Ordering::Greater => false,
                    Ordering::Equal => inc.stamp.wins_over(local_stamp),
                };
                if wins {
                    take(&mut row, &mut stamped, new.clone());
                    taken = true;
                }
            }
            (ColumnRule::Max | ColumnRule::Min, Some(_)) => {
                let merged = if rule == ColumnRule::Max {
                    merge_max(local_value, new)
                } else {
                    merge_min(local_value, new)
                };
                taken = merged == *new && merged != *local_value;
                if taken {
                    take(&mut row, &mut stamped, merged);
                }
            }
            (ColumnRule::KeepLocal, Some(_)) => {}
            (ColumnRule::PreferNonNull, Some(_)) => {
                let wins = match (local_value, new) {
                    (_, Value::Null) => false,
                    (Value::Null, _) => true,
                    _ => inc.stamp.wins_over(local_stamp),
                };
                if wins {
                    take(&mut row, &mut stamped, new.clone());
                    taken = true;
                }
            }
        }
        rules.insert(rule.as_str());
        columns.push(col.clone());
        took_all &= taken;
        took_any |= taken;
    }
    let outcome = match (kind, took_any, took_all) {
        (None, _, _) => "applied",
        (Some(_), _, true) => "applied",
        (Some(_), true, false) => "merged",
        (Some(_), false, _) => "kept_local",
    };
    Ok(Resolution {
        action: Action::Write {
            row,
            stamped,
            states: new_states,
        },
        outcome,
        strategy: rules.into_iter().collect::<Vec<_>>().join(","),
        columns,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use wal_bus::Hlc;

    fn row(v: &str) -> Row {
        [
            ("id".to_owned(), Value::Integer(1)),
            ("v".to_owned(), Value::Text(v.to_owned())),
        ]
        .into_iter()
        .collect()
    }

    /// `(origin, wall clock, id)` of one concurrent write.
    type Write = (String, u64, u32);

    /// Applies concurrent updates (all computed against `init`) in the
    /// given order. A write is `(origin, wall clock, id)`: its value and
    /// stamp depend on the write, not on its place in the order.
    fn fold(policy: &Policy, writes: &[Write]) -> Result<(Option<String>, usize)> {
        let init = row("init");
        let mut cells: BTreeMap<String, Cell> = init
            .iter()
            .map(|(c, v)| {
                (
                    c.clone(),
                    Cell {
                        value: v.clone(),
                        stamp: None,
                    },
                )
            })
            .collect();
        let mut rejected = 0;
        for (origin, wall, id) in writes {
            let after = row(&format!("{origin}-{id}"));
            let stamp = Stamp::new(Hlc::new(*wall, *id), origin.clone());
            let local = LocalRow::Present {
                cells: cells.clone(),
                states: BTreeMap::new(),
            };
            let kind = if cells["v"].value == Value::Text("init".into()) {
                None
            } else {
                Some(ConflictKind::UpdateBeforeMismatch)
            };
            let inc = Incoming {
                op: Op::Update,
                before: Some(&init),
                after: Some(&after),
                stamp: &stamp,
            };
            match resolve(policy, "t", kind, &local, inc)?.action {
                Action::Write { row, stamped, .. } => {
                    for (c, v) in row {
                        let stamp = if stamped.contains(&c) {
                            Some(stamp.clone())
                        } else {
                            cells[&c].stamp.clone()
                        };
                        cells.insert(c, Cell { value: v, stamp });
                    }
                }
                Action::Reject => rejected += 1,
                _ => {}
            }
        }
        let v = match &cells["v"].value {
            Value::Text(t) => Some(t.clone()),
            _ => None,
        };
        Ok((v, rejected))
    }

    /// Writes, and the same writes in another order (the order a replica
    /// might see if the log ordered them differently).
    fn writes() -> impl proptest::strategy::Strategy<Value = (Vec<Write>, Vec<Write>)> {
        use proptest::strategy::Strategy as S;
        S::prop_flat_map(
            proptest::collection::vec(("r[123]", 0u64..100), 1..8),
            |ws| {
                let ws: Vec<Write> = ws
                    .into_iter()
                    .enumerate()
                    .map(|(i, (o, w))| (o, w, i as u32))
                    .collect();
                (Just(ws.clone()), S::prop_shuffle(Just(ws)))
            },
        )
    }

    proptest! {
        #[test]
        fn priority_keeps_the_highest_ranked_origin_in_any_order((ws, shuffled) in writes()) {
            let policy = Policy::parse("default = \"priority\"\npriority = [\"r1\", \"r2\", \"r3\"]\n", "p").expect("policy");
            let (v, _) = fold(&policy, &ws).expect("fold");
            let best = ws.iter().map(|(o, _, _)| o.clone()).min().expect("non-empty");
            prop_assert!(v.as_deref().is_some_and(|v| v.starts_with(&best)), "{v:?} should come from {best}");
            // Among the best origin's writes, the newest stamp, whatever
            // order they were applied in.
            let newest = ws
                .iter()
                .filter(|(o, _, _)| *o == best)
                .max_by_key(|(_, w, id)| (*w, *id))
                .map(|(o, _, id)| format!("{o}-{id}"));
            prop_assert_eq!(&v, &newest);
            prop_assert_eq!(fold(&policy, &shuffled).expect("fold").0, v);
        }

        #[test]
        fn first_writer_wins_keeps_whichever_comes_first((ws, shuffled) in writes()) {
            // The log decides who is first; every order keeps its own first
            // write and rejects all the others.
            let policy = Policy::parse("default = \"first-writer-wins\"\n", "p").expect("policy");
            for order in [&ws, &shuffled] {
                let (v, rejected) = fold(&policy, order).expect("fold");
                prop_assert_eq!(v, Some(format!("{}-{}", order[0].0, order[0].2)));
                prop_assert_eq!(rejected, order.len() - 1);
            }
        }
    }
}
