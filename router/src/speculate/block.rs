//! A transaction block's effect so far, in statement order: runs of row
//! changes (each one net SQLite changeset plus net row changes) separated
//! by schema statements. A block without schema statements commits as a
//! `txn` record; one with them as a `block` record, applied in the same
//! order in one SQLite transaction on every replica.

use std::sync::Arc;

use rusqlite::Connection;
use wal_bus::{Change, RecordBody, Step};

use super::NetChanges;
use crate::error::Result;
use crate::exec::sq;
use crate::write_order::Replay;

#[derive(Debug, Clone)]
enum Part {
    /// Row changes since the previous schema statement.
    Rows {
        changeset: Arc<Vec<u8>>,
        changes: NetChanges,
        /// `changes` as the next statement replays them.
        replay: Arc<[Change]>,
    },
    Ddl(Arc<str>),
}

/// What a speculation replays before a statement of the block: cheap to
/// clone (shared buffers), so each statement does not copy the block.
#[derive(Debug, Clone, Default)]
pub struct Prior {
    parts: Vec<PriorPart>,
}

#[derive(Debug, Clone)]
enum PriorPart {
    /// A run of row changes: replayed as rows through cached statements
    /// (SQLite's changeset apply re-reads the schema and re-prepares its
    /// statements on every call); the changeset is what the next
    /// statement's changes are combined with.
    Rows {
        changeset: Arc<Vec<u8>>,
        changes: Arc<[Change]>,
    },
    Ddl(Arc<str>),
}

impl Prior {
    /// Re-creates the block's effect on `conn` (inside a speculation).
    pub(super) fn replay(&self, conn: &Connection) -> Result<()> {
        for part in &self.parts {
            match part {
                PriorPart::Rows { changes, .. } => super::replay::rows(conn, changes)?,
                PriorPart::Ddl(sql) => replica::run_ddl(conn, sql)
                    .map_err(sq("replaying the block's schema change"))?,
            }
        }
        Ok(())
    }

    /// The changeset of the open run of row changes (after the last schema
    /// statement), which a new statement's changes are combined with.
    pub(super) fn open_changeset(&self) -> &[u8] {
        match self.parts.last() {
            Some(PriorPart::Rows { changeset, .. }) => changeset,
            _ => &[],
        }
    }

    /// The block as one shard group sees it: only the changes `keep`
    /// accepts. Its changeset is left out (a sharded speculation combines
    /// nothing; see `sharded`).
    pub fn filtered(&self, keep: impl Fn(&Change) -> bool) -> Prior {
        Prior {
            parts: self
                .parts
                .iter()
                .map(|p| match p {
                    PriorPart::Rows { changes, .. } => PriorPart::Rows {
                        changeset: Arc::new(Vec::new()),
                        changes: changes.iter().filter(|c| keep(c)).cloned().collect(),
                    },
                    PriorPart::Ddl(sql) => PriorPart::Ddl(sql.clone()),
                })
                .collect(),
        }
    }

    /// The block's steps, in order (to send to a peer).
    pub fn steps(&self) -> Vec<crate::placement::peers::StepWire> {
        use crate::placement::peers::StepWire;
        self.parts
            .iter()
            .map(|p| match p {
                PriorPart::Rows { changes, .. } => StepWire::Rows(changes.to_vec()),
                PriorPart::Ddl(sql) => StepWire::Ddl(sql.to_string()),
            })
            .collect()
    }

    /// Whether the block changed the schema (caches keyed by the schema
    /// version cannot tell this state from another with the same version).
    pub fn has_ddl(&self) -> bool {
        self.parts.iter().any(|p| matches!(p, PriorPart::Ddl(_)))
    }

    /// Nothing to replay.
    pub fn is_empty(&self) -> bool {
        self.parts.iter().all(|p| match p {
            PriorPart::Rows { changes, .. } => changes.is_empty(),
            PriorPart::Ddl(_) => false,
        })
    }
}

/// A transaction block's writes and schema statements so far.
#[derive(Debug, Clone, Default)]
pub struct Block {
    parts: Vec<Part>,
}

impl Block {
    /// Nothing to commit: no schema statement and no net row change.
    pub fn is_empty(&self) -> bool {
        self.parts.iter().all(|p| match p {
            Part::Rows { changes, .. } => changes.is_empty(),
            Part::Ddl(_) => false,
        })
    }

    /// Whether any statement wrote or changed the schema yet.
    pub fn started(&self) -> bool {
        !self.parts.is_empty()
    }

    pub fn has_ddl(&self) -> bool {
        self.parts.iter().any(|p| matches!(p, Part::Ddl(_)))
    }

    pub fn prior(&self) -> Prior {
        Prior {
            parts: self
                .parts
                .iter()
                .map(|p| match p {
                    Part::Rows {
                        changeset, replay, ..
                    } => PriorPart::Rows {
                        changeset: changeset.clone(),
                        changes: replay.clone(),
                    },
                    Part::Ddl(sql) => PriorPart::Ddl(sql.clone()),
                })
                .collect(),
        }
    }

    /// A statement's outcome: the open run's new net changeset and the
    /// statement's row changes.
    pub fn add_rows(&mut self, changeset: Vec<u8>, changes: Vec<Change>) {
        if let Some(Part::Rows {
            changeset: open,
            changes: net,
            replay,
        }) = self.parts.last_mut()
        {
            *open = Arc::new(changeset);
            net.compose(changes);
            *replay = net.iter().cloned().collect();
            return;
        }
        let mut net = NetChanges::default();
        net.compose(changes);
        let replay = net.iter().cloned().collect();
        self.parts.push(Part::Rows {
            changeset: Arc::new(changeset),
            changes: net,
            replay,
        });
    }

    pub fn add_ddl(&mut self, sql: &str) {
        self.parts.push(Part::Ddl(sql.into()));
    }

    /// Every net row change, in order (for checks before COMMIT).
    pub fn changes(&self) -> impl Iterator<Item = &Change> {
        self.parts.iter().flat_map(|p| {
            match p {
                Part::Rows { changes, .. } => Some(changes.iter()),
                Part::Ddl(_) => None,
            }
            .into_iter()
            .flatten()
        })
    }

    /// What COMMIT appends, and how the router's overlay replays it.
    pub fn into_record(self) -> (RecordBody, Replay) {
        let has_ddl = self.parts.iter().any(|p| matches!(p, Part::Ddl(_)));
        if !has_ddl {
            let changes: Vec<Change> = self
                .parts
                .into_iter()
                .flat_map(|p| match p {
                    Part::Rows { changes, .. } => changes.into_changes(),
                    Part::Ddl(_) => Vec::new(),
                })
                .collect();
            let replay = Replay::Rows(changes.clone().into());
            return (RecordBody::Txn { changes }, replay);
        }
        let mut steps = Vec::with_capacity(self.parts.len());
        let mut replays = Vec::with_capacity(self.parts.len());
        for p in self.parts {
            match p {
                Part::Rows { changes, .. } => {
                    let changes = changes.into_changes();
                    if changes.is_empty() {
                        continue;
                    }
                    replays.push(Replay::Rows(changes.clone().into()));
                    steps.push(Step::Rows { changes });
                }
                Part::Ddl(sql) => {
                    replays.push(Replay::Ddl(sql.clone()));
                    steps.push(Step::Ddl {
                        sql: sql.to_string(),
                    });
                }
            }
        }
        (RecordBody::Block { steps }, Replay::Block(replays.into()))
    }
}
