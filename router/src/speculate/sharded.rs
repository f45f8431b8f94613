//! Speculation under a sharded placement: no replica file holds every
//! row, so a write runs on one replica of each shard group it may touch.
//! Each group's run replays the overlay and the block through the group's
//! apply filter (so it sees exactly the rows its replicas will hold), and
//! keeps only the changes of rows whose home is that group; full tables'
//! changes are kept from the first run. The kept changes of every run make
//! the statement's changes, which COMMIT appends as one record: a
//! cross-shard transaction is atomic and ordered by the log alone.

use std::collections::BTreeSet;
use std::sync::Arc;

use replica::placement::{GroupFilter, group_of_key};
use rusqlite::Connection;
use rusqlite::types::Value as SqlValue;
use wal_bus::{Change, Op, Placement, Row};

use super::{Prior, SpecOutcome, speculate_after};
use crate::error::{Error, Result};
use crate::exec::ResultSet;
use crate::write_order::Replay;

/// One group's speculation connection and the overlay its replica has not
/// applied yet.
pub struct GroupRun<'a> {
    pub group: usize,
    pub conn: &'a Connection,
    pub overlay: Vec<Replay>,
}

/// The overlay as the group's replicas will apply it.
pub fn filter_replays(replays: &[Replay], f: &GroupFilter) -> Vec<Replay> {
    replays
        .iter()
        .map(|r| match r {
            Replay::Rows(changes) => {
                Replay::Rows(changes.iter().filter(|c| f.keeps(c)).cloned().collect())
            }
            Replay::Ddl(sql) => Replay::Ddl(sql.clone()),
            Replay::Block(steps) => Replay::Block(filter_replays(steps, f).into()),
        })
        .collect()
}

/// The key an update moves its row to.
fn new_key(c: &Change) -> Option<Row> {
    let after = c.after.as_ref()?;
    let mut key = Row::with_capacity(c.key.len());
    for (k, _) in c.key.iter() {
        key.insert(k.clone(), after.get(k)?.clone());
    }
    Some(key)
}

/// Runs a write on the groups in `targets` (every group when `None`),
/// then on any group a change turned out to belong to that did not run (an
/// INSERT pinned by a value the router read differently from SQLite).
/// Returns the outcome and the groups it ran on.
#[allow(clippy::too_many_arguments)]
pub fn speculate_sharded(
    runs: &[GroupRun<'_>],
    targets: Option<&BTreeSet<usize>>,
    placement: &Arc<Placement>,
    prior: &Prior,
    sql: &str,
    params: &[SqlValue],
    keys: Option<&crate::keys::Keys>,
    max_record_bytes: usize,
    remote: &mut dyn FnMut(usize) -> Result<SpecOutcome>,
) -> Result<(SpecOutcome, BTreeSet<usize>)> {
    let mut out = SpecOutcome::default();
    let mut result: Option<ResultSet> = None;
    let mut ran: BTreeSet<usize> = BTreeSet::new();
    let mut todo: Vec<usize> = (0..placement.groups.len())
        .filter(|g| targets.is_none_or(|t| t.contains(g)))
        .collect();
    while !todo.is_empty() {
        let mut missing = BTreeSet::new();
        for g in std::mem::take(&mut todo) {
            let first = ran.is_empty();
            ran.insert(g);
            let spec = match runs.iter().find(|r| r.group == g) {
                // A group with no replica here runs on a peer.
                None => remote(g)?,
                Some(run) => {
                    let filter = GroupFilter {
                        placement: placement.clone(),
                        group: Some(g),
                    };
                    let overlay = filter_replays(&run.overlay, &filter);
                    let prior = prior.filtered(|c| filter.keeps(c));
                    speculate_after(
                        run.conn,
                        &overlay,
                        &prior,
                        sql,
                        params,
                        keys,
                        max_record_bytes,
                    )?
                }
            };
            let mut kept = 0usize;
            let mut dropped = 0usize;
            for c in spec.changes {
                let home = group_of_key(placement, &c.table, &c.key);
                if c.op == Op::Update
                    && let Some(to) = new_key(&c)
                    && group_of_key(placement, &c.table, &to) != home
                {
                    return Err(Error::Unsupported {
                        what: format!("an UPDATE that moves a row of {} to another shard", c.table),
                        why: "the shard key is part of the primary key: delete the row and insert it with the new key".into(),
                    });
                }
                let keep = match home {
                    Some(h) => h == g,
                    None => first,
                };
                if keep {
                    kept += 1;
                    out.changes.push(c);
                } else {
                    dropped += 1;
                    if let Some(h) = home
                        && !ran.contains(&h)
                    {
                        missing.insert(h);
                    }
                }
            }
            out.affected += spec.affected.saturating_sub(dropped);
            out.locks.extend(spec.locks);
            if let Some(rows) = spec.result {
                // A run's RETURNING rows are its kept rows when it kept all
                // or none of its changes; a mix cannot be told apart.
                if dropped > 0 && kept > 0 {
                    return Err(Error::Unsupported {
                        what: "RETURNING from a statement whose rows go to several shard groups"
                            .into(),
                        why: "write the rows of each shard key in its own statement, or leave out RETURNING".into(),
                    });
                }
                // (A full table's statement runs on one group only.)
                let take = dropped == 0;
                match &mut result {
                    None => {
                        let mut rows = rows;
                        if !take {
                            rows.rows.clear();
                        }
                        result = Some(rows);
                    }
                    Some(acc) if take => acc.rows.extend(rows.rows),
                    Some(_) => {}
                }
            }
        }
        // A group that ran later in this round already kept its rows.
        todo = missing.into_iter().filter(|g| !ran.contains(g)).collect();
    }
    out.result = result;
    Ok((out, ran))
}

pub fn no_local_replica(group: usize) -> Error {
    Error::Unsupported {
        what: format!(
            "a write to shard group {} from a node with none of its replicas",
            group + 1
        ),
        why: "no replica of it runs in this process and [router.peers] names no router for one"
            .into(),
    }
}
