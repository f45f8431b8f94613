//! Read balancing: which of the node's replicas serves a read.
//!
//! A read may go to any local replica that has applied what the session's
//! consistency level asks for and is at least as far as the router's own
//! replica (so a read never sees less than it would have there: a schema
//! change another session made through this router is visible). Among
//! those, the least lagged (within [`SLACK_RECORDS`] of the most advanced)
//! serve, the one with the fewest reads in flight first, ties taken in
//! turn. A replica held back (a long checkpoint, a lock on its file, a
//! stopped or unhealthy applier) falls out of the set until it catches up.
//! Writes stay on the router's own replica (its speculation connection).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use replica::ReplicaState;
use wal_bus::Offset;

use crate::db::DbPool;
use crate::error::Result;

/// Replicas this close to the most advanced one count as caught up: under
/// steady writes replicas take turns being ahead by a few records.
pub const SLACK_RECORDS: u64 = 8;

/// One replica reads can go to.
pub struct ReadReplica {
    pub state: Arc<ReplicaState>,
    pub pool: DbPool,
    in_flight: AtomicUsize,
}

/// The node's replicas as read targets of one router.
pub struct Balancer {
    router: String,
    replicas: Vec<ReadReplica>,
    /// Index of the router's own replica.
    home: usize,
    turn: AtomicUsize,
    enabled: bool,
}

/// Counts a read in flight on a replica until dropped.
struct InFlight<'a>(&'a AtomicUsize);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Balancer {
    /// `pools[i]` reads `replicas[i]`; `home` is the router's own.
    pub fn new(
        router: &str,
        replicas: Vec<(Arc<ReplicaState>, DbPool)>,
        home: usize,
        enabled: bool,
    ) -> Balancer {
        Balancer {
            router: router.to_owned(),
            replicas: replicas
                .into_iter()
                .map(|(state, pool)| ReadReplica {
                    state,
                    pool,
                    in_flight: AtomicUsize::new(0),
                })
                .collect(),
            home,
            turn: AtomicUsize::new(0),
            enabled,
        }
    }

    /// The read target for the replica called `name`.
    pub fn named(&self, name: &str) -> Option<&ReadReplica> {
        self.replicas.iter().find(|r| r.state.name == name)
    }

    pub fn home(&self) -> &ReadReplica {
        &self.replicas[self.home]
    }

    /// The replica to serve a read that must see everything before
    /// `target`, or `None` when no replica has applied that yet (the caller
    /// waits for its own replica, as without balancing).
    pub fn pick(&self, target: Offset, unhealthy: &BTreeMap<String, u64>) -> Option<&ReadReplica> {
        let home = self.home();
        if !self.enabled || self.replicas.len() == 1 {
            // A stopped replica serves nothing (the wait says why).
            return (home.state.applied() >= target && home.state.stopped().is_none())
                .then_some(home);
        }
        self.pick_where(target, unhealthy, |_| true)
    }

    /// As [`Balancer::pick`], among the replicas named in `names` (one
    /// shard group's), whether balancing is on or not.
    pub fn pick_among(
        &self,
        target: Offset,
        unhealthy: &BTreeMap<String, u64>,
        names: &[String],
    ) -> Option<&ReadReplica> {
        self.pick_where(target, unhealthy, |r| names.contains(&r.state.name))
    }

    fn pick_where(
        &self,
        target: Offset,
        unhealthy: &BTreeMap<String, u64>,
        allowed: impl Fn(&ReadReplica) -> bool,
    ) -> Option<&ReadReplica> {
        let home = self.home();
        let floor = target.max(home.state.applied());
        // Two passes, no allocation: this runs for every read.
        let eligible = |r: &ReadReplica| {
            let applied = r.state.applied();
            (allowed(r)
                && applied >= floor
                && r.state.stopped().is_none()
                && !unhealthy.contains_key(&r.state.name))
            .then_some(applied)
        };
        let best = self.replicas.iter().filter_map(eligible).max()?;
        let n = self.replicas.len();
        let start = self.turn.fetch_add(1, Ordering::Relaxed) % n;
        let mut chosen: Option<&ReadReplica> = None;
        let mut fewest = usize::MAX;
        for k in 0..n {
            let r = &self.replicas[(start + k) % n];
            if eligible(r).is_some_and(|a| a + SLACK_RECORDS >= best) {
                let busy = r.in_flight.load(Ordering::Relaxed);
                if busy < fewest {
                    fewest = busy;
                    chosen = Some(r);
                }
            }
        }
        chosen
    }

    /// Runs `f` on `on`'s pool, counted as a read in flight there; on a
    /// pool thread with `pg_sleep` allowed when `sleeps`.
    pub async fn read<R, F>(&self, on: &ReadReplica, sleeps: bool, f: F) -> Result<R>
    where
        R: Send + 'static,
        F: FnOnce(&mut rusqlite::Connection) -> R + Send + 'static,
    {
        on.in_flight.fetch_add(1, Ordering::Relaxed);
        let _done = InFlight(&on.in_flight);
        metrics::counter!("tributary_router_reads_total", "router" => self.router.clone(), "replica" => on.state.name.clone())
            .increment(1);
        if sleeps {
            on.pool.run_sleeping(f).await
        } else {
            on.pool.run(f).await
        }
    }
}
