//! The crash harness: a write load through several routers in every ack
//! mode while processes are SIGKILLed and restarted and storage is damaged,
//! then a checker that every acknowledged write survived exactly once and
//! every replica is identical.
//!
//! Used by `tests/tests/chaos.rs` (short form, in CI) and by the `chaos`
//! binary (`cargo run -p tests --bin chaos -- --kills 300`, long form).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, ensure};

use crate::{Cluster, Node, Tansu, connect_port, dump, eventually};

mod load;
mod sharded;

use load::SCHEMA;
pub use load::{Load, check_replicas, start_load};
pub use sharded::run_sharded;

/// A small deterministic PRNG (xorshift64*), seeded so a run can be replayed.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `lo..hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next_u64() % (hi - lo).max(1)
    }
}

/// What a run did and found.
#[derive(Debug, Default, Clone)]
pub struct Report {
    pub backend: String,
    pub seed: u64,
    pub kills: usize,
    pub broker_freezes: usize,
    pub broker_kills: usize,
    pub damaged: BTreeMap<String, usize>,
    pub acked_transactions: usize,
    pub acked_rows_checked: usize,
    pub lost: usize,
    pub partial_transactions: usize,
    pub divergent_replicas: usize,
    pub counter_acked: i64,
    pub counter_final: i64,
    pub counter_tried: i64,
    pub sync_reads_checked: u64,
    pub sync_not_visible: u64,
    /// Recoveries the node logged: torn log tails cut, replicas rebuilt
    /// from a snapshot, damaged replica files set aside.
    pub recoveries: BTreeMap<String, usize>,
    /// Bank transfers through one router (every ack mode): acknowledged,
    /// in doubt (connection lost at COMMIT), and reads whose total was checked.
    pub transfers_acked: u64,
    pub transfers_in_doubt: u64,
    pub transfer_reads: u64,
    /// Replicas whose balances broke the total or an account's ledger.
    pub transfer_violations: Vec<String>,
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "backend={} seed={} kills={} broker_freezes={} broker_kills={} damaged={:?} acked_txns={} acked_rows_checked={} lost={} partial={} divergent_replicas={} counter acked/final/tried={}/{}/{} sync_reads_checked={} sync_not_visible={} recoveries={:?} transfers acked/in_doubt/reads={}/{}/{} transfer_violations={:?}",
            self.backend,
            self.seed,
            self.kills,
            self.broker_freezes,
            self.broker_kills,
            self.damaged,
            self.acked_transactions,
            self.acked_rows_checked,
            self.lost,
            self.partial_transactions,
            self.divergent_replicas,
            self.counter_acked,
            self.counter_final,
            self.counter_tried,
            self.sync_reads_checked,
            self.sync_not_visible,
            self.recoveries,
            self.transfers_acked,
            self.transfers_in_doubt,
            self.transfer_reads,
            self.transfer_violations
        )
    }
}

impl Report {
    /// Errors unless nothing was lost, split, doubled or divergent.
    pub fn verdict(&self) -> Result<()> {
        ensure!(self.lost == 0, "lost acknowledged writes: {self}");
        ensure!(
            self.partial_transactions == 0,
            "partial transactions: {self}"
        );
        ensure!(self.divergent_replicas == 0, "replicas differ: {self}");
        ensure!(
            self.counter_final >= self.counter_acked && self.counter_final <= self.counter_tried,
            "counter outside [acked, tried] (lost or applied twice): {self}"
        );
        ensure!(
            self.sync_not_visible == 0,
            "sync writes not visible at ack: {self}"
        );
        ensure!(
            self.transfer_violations.is_empty(),
            "bank transfers broke their invariants: {self}"
        );
        Ok(())
    }
}

/// Accounts of the transfer workload.
const ACCOUNTS: usize = 10;

/// One transfer client per ack mode, all through one router.
const TRANSFER_SETUPS: [&str; 3] = [
    "SET tributary.ack = 'async'",
    "SET tributary.ack = 'semi-sync'",
    "SET tributary.ack = 'sync'",
];

/// Stops the transfer clients (before the caller waits for the replicas
/// to converge: an async transfer acknowledged at the last moment is
/// durable but maybe not applied yet).
async fn stop_transfers(
    transfers: crate::bank::Transfers,
    report: &mut Report,
) -> Option<crate::bank::Outcome> {
    match transfers.stop().await {
        Ok(o) => Some(o),
        Err(e) => {
            report.transfer_violations.push(format!("{e:#}"));
            None
        }
    }
}

/// Checks every replica's balances: the total, and each account against
/// what clients were told. A lagging replica gets up to a minute to apply
/// the last acknowledged (async) transfers; a lost or doubled transfer never
/// heals, so it still fails.
async fn check_transfers(
    outcome: Option<crate::bank::Outcome>,
    paths: &[PathBuf],
    report: &mut Report,
) -> Result<()> {
    let Some(outcome) = outcome else {
        return Ok(());
    };
    report.transfers_acked = outcome.ledger.acked;
    report.transfers_in_doubt = outcome.ledger.in_doubt;
    report.transfer_reads = outcome.reads;
    for (i, path) in paths.iter().enumerate() {
        let ledger = &outcome.ledger;
        let settled = eventually(
            Duration::from_secs(60),
            "balances match the ledger",
            || async move {
                let balances = crate::bank::balances(path)?;
                Ok(ledger.check(&balances).is_ok().then_some(()))
            },
        )
        .await;
        if settled.is_err() {
            let balances = crate::bank::balances(path)?;
            if let Err(e) = outcome.ledger.check(&balances) {
                report
                    .transfer_violations
                    .push(format!("replica {}: {e}", i + 1));
            }
        }
    }
    Ok(())
}

/// Appends half a frame after the last record of the active log segment,
/// as a crash mid-write would leave it.
fn tear_log_tail(log_dir: &Path, rng: &mut Rng) -> Result<()> {
    let mut segs: Vec<PathBuf> = std::fs::read_dir(log_dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .collect();
    segs.sort();
    let last = segs.last().context("no segment")?;
    let mut bytes = std::fs::read(last)?;
    let end = bytes.iter().rposition(|b| *b != 0).map_or(0, |i| i + 1);
    let torn: Vec<u8> = [200u8, 0, 0, 0]
        .into_iter()
        .chain((0..rng.range(1, 60)).map(|_| rng.next_u64() as u8 | 1))
        .collect();
    bytes.truncate(end);
    bytes.extend_from_slice(&torn);
    std::fs::write(last, bytes)?;
    Ok(())
}

fn sidecar(path: &Path, suffix: &str) -> PathBuf {
    PathBuf::from(format!("{}{suffix}", path.display()))
}

/// Damages one replica's storage: deletes its WAL, or overwrites its pages.
fn damage_replica(path: &Path, kind: &str) -> Result<()> {
    match kind {
        "deleted-wal" => {
            let _ = std::fs::remove_file(sidecar(path, "-wal"));
            let _ = std::fs::remove_file(sidecar(path, "-shm"));
        }
        _ => {
            let mut bytes = std::fs::read(path)?;
            for b in bytes.iter_mut().skip(100) {
                *b = 0xa5;
            }
            std::fs::write(path, bytes)?;
        }
    }
    Ok(())
}

fn note(report: &mut Report, what: &str) {
    *report.damaged.entry(what.to_owned()).or_default() += 1;
}

/// `tributary up` (3 replicas, 2 routers) on the file log: kill -9 the whole
/// node `kills` times at random moments, damaging storage every few kills.
pub async fn run_file_log(kills: usize, writers: usize, seed: u64) -> Result<Report> {
    let mut rng = Rng::new(seed);
    let mut report = Report {
        backend: "file".into(),
        seed,
        ..Report::default()
    };
    let env = [
        ("TRIBUTARY__SNAPSHOTS__INTERVAL_S", "1"),
        ("TRIBUTARY__LOG__SEGMENT_BYTES", "65536"),
        ("TRIBUTARY__LOG__MAX_RECORD_BYTES", "65536"),
        ("TRIBUTARY__REPLICATION__ACK_TIMEOUT_MS", "10000"),
    ];
    let mut cluster = Cluster::start(3, 2, &env).await?;
    let c = cluster.connect(0).await?;
    c.batch_execute(SCHEMA).await?;
    crate::bank::create(&c, ACCOUNTS).await?;
    cluster.wait_converged().await?;
    let ports = [cluster.router_port(0), cluster.router_port(1)];
    let load = start_load(&ports, writers, true);
    let transfers = crate::bank::start(&ports[..1], 3, ACCOUNTS, &TRANSFER_SETUPS, seed);
    let log_dir = cluster.dir.join("data").join("log");
    for k in 0..kills {
        tokio::time::sleep(Duration::from_millis(rng.range(100, 600))).await;
        cluster.kill9()?;
        report.kills += 1;
        // The node lives well under the periodic snapshot interval between
        // kills, so the harness takes snapshots itself (the CLI works on a
        // stopped node), and damaged replicas can be rebuilt from them.
        if k % 5 == 4 {
            let data = cluster.dir.join("data");
            let out = cluster.tributary(&["snapshot", "--data-dir", &data.to_string_lossy()])?;
            ensure!(
                out.status.success(),
                "snapshot failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            note(&mut report, "snapshot-taken");
        }
        match k % 4 {
            1 => {
                tear_log_tail(&log_dir, &mut rng)?;
                note(&mut report, "torn-log-tail");
            }
            2 => {
                let r = rng.range(1, 3) as usize;
                damage_replica(&cluster.replica_path(r), "deleted-wal")?;
                note(&mut report, "deleted-wal");
            }
            3 if k % 8 == 3 => {
                let r = rng.range(1, 3) as usize;
                damage_replica(&cluster.replica_path(r), "corrupt")?;
                note(&mut report, "corrupt-replica");
            }
            _ => {}
        }
        cluster
            .spawn()
            .await
            .with_context(|| format!("restart after kill {}", k + 1))?;
    }
    let acked = load.finish_after_healing(&mut report).await?;
    let transfers = stop_transfers(transfers, &mut report).await;
    let paths: Vec<PathBuf> = (0..3).map(|i| cluster.replica_path(i)).collect();
    cluster
        .wait_converged()
        .await
        .with_context(|| cluster.log_tail())?;
    check_transfers(transfers, &paths, &mut report).await?;
    check_replicas(&paths, &acked, &mut report)?;
    cluster.stop()?;
    let log = std::fs::read_to_string(cluster.dir.join("tributary.log")).unwrap_or_default();
    for (key, needle) in [
        ("log-tail-truncated", "truncating damaged log tail"),
        ("rebuilt-from-snapshot", "restoring replica from snapshot"),
        ("damaged-file-set-aside", "damaged replica file kept aside"),
    ] {
        report
            .recoveries
            .insert(key.to_owned(), log.matches(needle).count());
    }
    Ok(report)
}

/// Three `tributary node` processes on tansu (two with routers, one
/// replica-only): kill -9 random nodes `kills` times; every tenth round
/// the broker is frozen (SIGSTOP) or, alternately, killed -9 and restarted
/// on its SQLite storage.
pub async fn run_kafka(kills: usize, writers: usize, seed: u64) -> Result<Report> {
    let mut rng = Rng::new(seed);
    let mut report = Report {
        backend: "kafka".into(),
        seed,
        ..Report::default()
    };
    let mut broker = Tansu::start_durable().await?;
    let root = tempfile::tempdir()?;
    let extra = "[replication]\nack_timeout_ms = 10000\n";
    let mut nodes = vec![
        Node::new(root.path(), "n1", &broker.brokers(), true, extra)?,
        Node::new(root.path(), "n2", &broker.brokers(), true, extra)?,
        Node::new(root.path(), "n3", &broker.brokers(), false, extra)?,
    ];
    for n in &mut nodes {
        n.spawn().await?;
    }
    let ports: Vec<u16> = nodes.iter().filter_map(|n| n.port).collect();
    let c = connect_port(ports[0]).await?;
    c.batch_execute(SCHEMA).await?;
    crate::bank::create(&c, ACCOUNTS).await?;
    let p2 = ports[1];
    eventually(
        Duration::from_secs(30),
        "n2 has the tables",
        || async move {
            let c = connect_port(p2).await?;
            Ok(c.simple_query("SELECT n FROM counter")
                .await
                .ok()
                .map(|_| ()))
        },
    )
    .await?;
    let load = start_load(&ports, writers, false);
    let transfers = crate::bank::start(&ports[..1], 3, ACCOUNTS, &TRANSFER_SETUPS, seed);
    for k in 0..kills {
        tokio::time::sleep(Duration::from_millis(rng.range(200, 800))).await;
        let i = rng.range(0, 3) as usize;
        nodes[i].kill9()?;
        report.kills += 1;
        if k % 20 == 9 {
            broker.signal("STOP")?;
            tokio::time::sleep(Duration::from_millis(rng.range(500, 1500))).await;
            broker.signal("CONT")?;
            report.broker_freezes += 1;
        } else if k % 20 == 19 {
            broker.kill9()?;
            tokio::time::sleep(Duration::from_millis(rng.range(100, 1000))).await;
            broker.spawn().await.context("restarting the broker")?;
            report.broker_kills += 1;
        }
        nodes[i]
            .spawn()
            .await
            .with_context(|| format!("restart {} after kill {}", nodes[i].id, k + 1))?;
    }
    let acked = load.finish_after_healing(&mut report).await?;
    let transfers = stop_transfers(transfers, &mut report).await;
    let paths: Vec<PathBuf> = nodes.iter().map(Node::replica_path).collect();
    let probe = paths.clone();
    eventually(Duration::from_secs(120), "replicas identical", || {
        let probe = probe.clone();
        async move {
            let dumps: Vec<String> = probe.iter().map(|p| dump(p)).collect::<Result<_>>()?;
            Ok(dumps.iter().all(|d| *d == dumps[0]).then_some(()))
        }
    })
    .await
    .with_context(|| {
        // Lag or divergence? The offsets and the nodes' logs say which.
        let offsets: Vec<String> = paths
            .iter()
            .map(|p| format!("{}: {:?}", p.display(), crate::applied_offset(p).ok()))
            .collect();
        let logs: Vec<String> = nodes.iter().map(Node::log_tail).collect();
        format!(
            "seed {seed}; applied offsets {offsets:?}\n{}",
            logs.join("\n")
        )
    })?;
    check_transfers(transfers, &paths, &mut report).await?;
    check_replicas(&paths, &acked, &mut report)?;
    Ok(report)
}
