//! Folding a transaction together: its changesets into one net changeset
//! (replayed before each later statement) and its row changes into one net
//! change per row (what COMMIT appends).

use std::collections::HashMap;

use wal_bus::{Change, Op};

use crate::error::Result;
use crate::exec::sq;

/// Concatenates two changesets into one net changeset.
pub(super) fn combine(first: &[u8], second: &[u8]) -> Result<Vec<u8>> {
    let mut group = rusqlite::session::Changegroup::new().map_err(sq("combining changesets"))?;
    group
        .add_stream(&mut &first[..])
        .map_err(sq("combining changesets"))?;
    group
        .add_stream(&mut &second[..])
        .map_err(sq("combining changesets"))?;
    let mut out = Vec::new();
    group
        .output_strm(&mut out)
        .map_err(sq("combining changesets"))?;
    Ok(out)
}

/// A transaction's net row changes so far: one per row, in first-change
/// order, found by (table, key) in constant time (a long transaction, or a
/// COPY of many rows, would otherwise compare every new change with every
/// earlier one).
#[derive(Debug, Clone, Default)]
pub struct NetChanges {
    /// `None` where a row's changes cancelled out (insert, then delete).
    slots: Vec<Option<Change>>,
    index: HashMap<(String, String), usize>,
    live: usize,
}

fn row_key(c: &Change) -> (String, String) {
    // Keys are BTreeMaps, so the JSON text is canonical.
    (
        c.table.clone(),
        serde_json::to_string(&c.key).unwrap_or_default(),
    )
}

impl NetChanges {
    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    pub fn len(&self) -> usize {
        self.live
    }

    pub fn iter(&self) -> impl Iterator<Item = &Change> {
        self.slots.iter().flatten()
    }

    pub fn into_changes(self) -> Vec<Change> {
        self.slots.into_iter().flatten().collect()
    }

    /// Folds a statement's row changes in: the before-image of a row's
    /// first change, the after-image of its last.
    pub fn compose(&mut self, next: Vec<Change>) {
        for c in next {
            let key = row_key(&c);
            let Some(&i) = self.index.get(&key) else {
                self.index.insert(key, self.slots.len());
                self.slots.push(Some(c));
                self.live += 1;
                continue;
            };
            let Some(p) = self.slots[i].take() else {
                self.slots[i] = Some(c);
                self.live += 1;
                continue;
            };
            match merge(p, c) {
                Some(m) => self.slots[i] = Some(m),
                None => self.live -= 1,
            }
        }
    }
}

/// One row's earlier net change followed by its next change.
fn merge(p: Change, c: Change) -> Option<Change> {
    match (p.op, c.op) {
        (Op::Insert, Op::Update) | (Op::Update, Op::Update) => Some(Change {
            after: c.after,
            ..p
        }),
        (Op::Insert, Op::Delete) => None,
        (Op::Update, Op::Delete) => Some(Change {
            op: Op::Delete,
            after: None,
            ..p
        }),
        (Op::Delete, Op::Insert) => Some(Change {
            op: Op::Update,
            after: c.after,
            ..p
        }),
        _ => Some(c),
    }
}
