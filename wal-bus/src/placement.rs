//! Table placement, as a `placement` record carries it: the shard groups
//! (lists of replica names) and, per sharded table, its shard key and how
//! a key value picks a shard. Tables not named are full (every replica
//! holds every row). Every replica switches at the record's offset, as for
//! a policy record (docs/record-format.md).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::Value;

/// Where every table's rows live.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Placement {
    /// Shard groups, each a list of replica names; shard `s` of a table
    /// lives on group `s mod groups.len()`. The replication factor of a
    /// group is its length.
    #[serde(default)]
    pub groups: Vec<Vec<String>>,
    /// Sharded tables by name; any other table is full.
    #[serde(default)]
    pub tables: BTreeMap<String, TablePlacement>,
}

/// How one sharded table is split.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TablePlacement {
    /// The shard key: a column of the table's primary key.
    pub column: String,
    #[serde(flatten)]
    pub method: Method,
}

/// How a shard-key value picks a shard.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "method", rename_all = "lowercase")]
pub enum Method {
    /// A stable hash of the value (see `replica::placement::hash_value`)
    /// mod `shards`.
    Hash { shards: u32 },
    /// Shard `i` holds the values from `splits[i-1]` (inclusive) up to
    /// `splits[i]` (exclusive), in SQLite's order; `splits.len() + 1`
    /// shards.
    Range { splits: Vec<Value> },
}

impl Method {
    /// How many shards the table has.
    pub fn shards(&self) -> u32 {
        match self {
            Method::Hash { shards } => *shards,
            Method::Range { splits } => u32::try_from(splits.len() + 1).unwrap_or(u32::MAX),
        }
    }
}

impl Placement {
    /// The group (index into `groups`) a replica belongs to; `None` when it
    /// is in no group, which holds only full tables' rows.
    pub fn group_of(&self, replica: &str) -> Option<usize> {
        self.groups
            .iter()
            .position(|g| g.iter().any(|r| r == replica))
    }

    /// Whether any table is sharded (and so whether routing must care).
    pub fn is_sharded(&self) -> bool {
        !self.tables.is_empty() && !self.groups.is_empty()
    }
}
