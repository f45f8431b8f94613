//! Folding a transaction together: its changesets into one net changeset
//! (replayed before each later statement) and its row changes into one net
//! change per row (what COMMIT appends).

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

/// Folds a statement's row changes into the transaction's net changes:
/// the before-image of a row's first change, the after-image of its last.
pub fn compose(net: &mut Vec<Change>, next: Vec<Change>) {
    for c in next {
        let Some(i) = net
            .iter()
            .position(|p| p.table == c.table && p.key == c.key)
        else {
            net.push(c);
            continue;
        };
        let p = &net[i];
        let merged = match (p.op, c.op) {
            (Op::Insert, Op::Update) => Some(Change {
                after: c.after,
                ..p.clone()
            }),
            (Op::Insert, Op::Delete) => None,
            (Op::Update, Op::Update) => Some(Change {
                after: c.after,
                ..p.clone()
            }),
            (Op::Update, Op::Delete) => Some(Change {
                op: Op::Delete,
                after: None,
                ..p.clone()
            }),
            (Op::Delete, Op::Insert) => Some(Change {
                op: Op::Update,
                after: c.after,
                ..p.clone()
            }),
            _ => Some(c),
        };
        match merged {
            Some(m) => net[i] = m,
            None => {
                net.remove(i);
            }
        }
    }
}
