//! Who wrote a row version and when (`Stamp`), ordered by `(hlc, origin)`
//! for last-writer-wins, the default strategy; and the kinds of conflict.
//!
//! The write with the later hybrid-logical-clock timestamp wins; equal
//! timestamps (possible only across different origins) are broken by the
//! origin id in byte order, so the outcome never depends on arrival order.

use std::cmp::Ordering;
use std::fmt;

use wal_bus::Hlc;

/// Who wrote a row version, and when.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Stamp {
    pub hlc: Hlc,
    pub origin: String,
}

impl Stamp {
    pub fn new(hlc: Hlc, origin: impl Into<String>) -> Self {
        Stamp {
            hlc,
            origin: origin.into(),
        }
    }
}

impl Ord for Stamp {
    fn cmp(&self, other: &Self) -> Ordering {
        self.hlc
            .cmp(&other.hlc)
            .then_with(|| self.origin.as_bytes().cmp(other.origin.as_bytes()))
    }
}

impl Stamp {
    /// Whether a write stamped `self` replaces the last write the replica
    /// kept for that row (or column), stamped `local`; a delete's tombstone
    /// counts as a write, and no local stamp means the incoming write wins.
    pub fn wins_over(&self, local: Option<&Stamp>) -> bool {
        local.is_none_or(|l| self > l)
    }
}

impl PartialOrd for Stamp {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// The ways an incoming change can disagree with the replica's row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConflictKind {
    /// An insert met a row that already has the key.
    InsertExists,
    /// An update whose before-image is not the row the replica holds.
    UpdateBeforeMismatch,
    /// An update of a row the replica never had.
    UpdateMissing,
    /// An update of a row the replica deleted (tombstone present).
    UpdateVsDelete,
    /// A delete of a row the replica does not have.
    DeleteMissing,
    /// A delete whose before-image is not the row the replica holds (it was updated).
    DeleteVsUpdate,
}

impl ConflictKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            ConflictKind::InsertExists => "insert_exists",
            ConflictKind::UpdateBeforeMismatch => "update_before_mismatch",
            ConflictKind::UpdateMissing => "update_missing",
            ConflictKind::UpdateVsDelete => "update_vs_delete",
            ConflictKind::DeleteMissing => "delete_missing",
            ConflictKind::DeleteVsUpdate => "delete_vs_update",
        }
    }
}

impl fmt::Display for ConflictKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn stamp() -> impl Strategy<Value = Stamp> {
        (0u64..5, 0u32..3, "[ab]").prop_map(|(w, c, o)| Stamp::new(Hlc::new(w, c), o))
    }

    #[test]
    fn newer_wins_ties_by_origin() {
        let old = Stamp::new(Hlc::new(1, 0), "z");
        let new = Stamp::new(Hlc::new(2, 0), "a");
        assert!(new.wins_over(Some(&old)));
        assert!(!old.wins_over(Some(&new)));
        let a = Stamp::new(Hlc::new(2, 0), "a");
        let b = Stamp::new(Hlc::new(2, 0), "b");
        assert!(b.wins_over(Some(&a)));
        assert!(!a.wins_over(Some(&a)));
        assert!(a.wins_over(None));
    }

    proptest! {
        /// Applying the same set of stamped writes in any order leaves the same winner.
        #[test]
        fn winner_is_order_independent(mut writes in proptest::collection::vec(stamp(), 1..8), seed in any::<u64>()) {
            let winner = |ws: &[Stamp]| {
                let mut kept: Option<Stamp> = None;
                for w in ws {
                    if w.wins_over(kept.as_ref()) {
                        kept = Some(w.clone());
                    }
                }
                kept
            };
            let first = winner(&writes);
            let n = writes.len();
            writes.rotate_left((seed as usize) % n);
            writes.reverse();
            prop_assert_eq!(first, winner(&writes));
        }
    }
}
