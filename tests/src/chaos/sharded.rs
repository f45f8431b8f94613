//! The crash harness on a sharded deployment: `tributary up --replicas 6`
//! with `bank` hash-distributed over 3 shard groups of 2, cross-shard
//! transfers in every ack mode through one router (and a reader checking
//! the scattered `sum(balance)` at every read) while the node is SIGKILLed
//! and restarted. Then: both replicas of each group hold the same rows,
//! the groups together hold every account once, and every balance matches
//! what clients were told.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, ensure};

use super::{Report, Rng, TRANSFER_SETUPS, stop_transfers};
use crate::{Cluster, eventually};

const ACCOUNTS: usize = 30;

/// `(id, balance)` of every account a replica file holds.
fn accounts(path: &Path) -> Result<BTreeMap<i64, i64>> {
    let conn =
        rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    let mut stmt = conn.prepare("SELECT id, balance FROM bank ORDER BY id")?;
    let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// The groups' accounts together, when both replicas of every group agree
/// and no account is in two groups.
fn merged(cluster: &Cluster) -> Result<Vec<i64>> {
    let mut all = BTreeMap::new();
    for g in 0..3 {
        let a = accounts(&cluster.replica_path(2 * g))?;
        let b = accounts(&cluster.replica_path(2 * g + 1))?;
        ensure!(
            a == b,
            "the replicas of group {} differ: {a:?} / {b:?}",
            g + 1
        );
        for (id, balance) in a {
            ensure!(
                all.insert(id, balance).is_none(),
                "account {id} is in two groups"
            );
        }
    }
    ensure!(
        all.len() == ACCOUNTS,
        "the groups hold {} of {ACCOUNTS} accounts",
        all.len()
    );
    Ok(all.into_values().collect())
}

/// Runs `kills` SIGKILLs of the node while transfers run; `Report` as the
/// other harness runs give it (`verdict` checks it).
pub async fn run_sharded(kills: usize, seed: u64) -> Result<Report> {
    let mut rng = Rng::new(seed);
    let mut report = Report {
        backend: "file, 3 shard groups × 2".into(),
        seed,
        ..Report::default()
    };
    let env = [("TRIBUTARY__REPLICATION__ACK_TIMEOUT_MS", "10000")];
    let mut cluster = Cluster::start(6, 1, &env).await?;
    let c = cluster.connect(0).await?;
    crate::bank::create(&c, ACCOUNTS).await?;
    c.batch_execute(
        "SELECT tributary.shard_groups('replica1,replica2', 'replica3,replica4', 'replica5,replica6');
         SELECT tributary.distribute('bank', 'id', 'hash', 6);",
    )
    .await?;
    cluster.wait_converged().await?;
    let ports = [cluster.router_port(0)];
    let transfers = crate::bank::start(&ports, 3, ACCOUNTS, &TRANSFER_SETUPS, seed);
    for k in 0..kills {
        tokio::time::sleep(Duration::from_millis(rng.range(200, 800))).await;
        cluster.kill9()?;
        report.kills += 1;
        cluster
            .spawn()
            .await
            .with_context(|| format!("restart after kill {}", k + 1))?;
    }
    let outcome = stop_transfers(transfers, &mut report).await;
    cluster
        .wait_converged()
        .await
        .with_context(|| cluster.log_tail())?;
    if let Some(outcome) = outcome {
        report.transfers_acked = outcome.ledger.acked;
        report.transfers_in_doubt = outcome.ledger.in_doubt;
        report.transfer_reads = outcome.reads;
        let ledger = &outcome.ledger;
        let cluster = &cluster;
        let settled = eventually(
            Duration::from_secs(60),
            "the groups' balances match the ledger",
            || async move {
                let balances = merged(cluster)?;
                Ok(ledger.check(&balances).is_ok().then_some(()))
            },
        )
        .await;
        if settled.is_err() {
            let balances = merged(cluster)?;
            if let Err(e) = outcome.ledger.check(&balances) {
                report.transfer_violations.push(e.to_string());
            }
        }
    }
    cluster.stop()?;
    Ok(report)
}
