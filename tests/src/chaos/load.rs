//! The crash harness's write load: pairs of rows in one transaction and a
//! counter, through several routers in every ack mode, reconnecting after
//! kills; what was acknowledged, and the check that every replica has it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Result;
use tokio_postgres::Client;

use super::Report;
use crate::{connect_port, dump, eventually};

pub(super) const SCHEMA: &str =
    "CREATE TABLE pairs (id BIGINT PRIMARY KEY, grp BIGINT NOT NULL, w BIGINT NOT NULL);
     CREATE TABLE counter (id BIGINT PRIMARY KEY, n BIGINT NOT NULL);
     INSERT INTO counter VALUES (1, 0);";

/// What the writers saw.
#[derive(Default)]
struct Seen {
    acked: BTreeSet<i64>,
    counter_acked: i64,
    counter_tried: i64,
}

/// Writers running until stopped.
pub struct Load {
    stop: Arc<AtomicBool>,
    seen: Arc<Mutex<Seen>>,
    sync_checked: Arc<AtomicU64>,
    sync_missing: Arc<AtomicU64>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

async fn connect_retry(port: u16, stop: &AtomicBool) -> Option<Client> {
    while !stop.load(Ordering::Relaxed) {
        if let Ok(c) = connect_port(port).await {
            return Some(c);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    None
}

/// Starts `writers` writers over `ports` (writer i uses router i mod n and
/// ack mode i mod 3). Each transaction inserts a pair of rows; writer 0 also
/// bumps a counter. With `check_sync`, sync writers read every 5th
/// acknowledged pair back through another router at once.
pub fn start_load(ports: &[u16], writers: usize, check_sync: bool) -> Load {
    let stop = Arc::new(AtomicBool::new(false));
    let seen: Arc<Mutex<Seen>> = Arc::default();
    let sync_checked = Arc::new(AtomicU64::new(0));
    let sync_missing = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for w in 0..writers {
        let port = ports[w % ports.len()];
        let other = ports[(w + 1) % ports.len()];
        let mode = ["async", "semi-sync", "sync"][w % 3];
        let (stop, seen) = (stop.clone(), seen.clone());
        let (sync_checked, sync_missing) = (sync_checked.clone(), sync_missing.clone());
        tasks.push(tokio::spawn(async move {
            let mut writer: Option<Client> = None;
            let mut reader: Option<Client> = None;
            let mut k: i64 = 0;
            while !stop.load(Ordering::Relaxed) {
                let c = match writer.take() {
                    Some(c) => c,
                    None => match connect_retry(port, &stop).await {
                        Some(c) => c,
                        None => break,
                    },
                };
                if c.batch_execute(&format!("SET tributary.ack = '{mode}'")).await.is_err() {
                    continue;
                }
                let grp = (w as i64) * 100_000_000 + k;
                k += 1;
                let bump = w == 0;
                let mut sql = format!(
                    "BEGIN; INSERT INTO pairs VALUES ({}, {grp}, {w}); INSERT INTO pairs VALUES ({}, {grp}, {w});",
                    2 * grp,
                    2 * grp + 1
                );
                if bump {
                    sql.push_str(" UPDATE counter SET n = n + 1 WHERE id = 1;");
                    seen.lock().unwrap_or_else(|p| p.into_inner()).counter_tried += 1;
                }
                sql.push_str(" COMMIT");
                match c.batch_execute(&sql).await {
                    Ok(()) => {
                        let mut s = seen.lock().unwrap_or_else(|p| p.into_inner());
                        s.acked.insert(grp);
                        if bump {
                            s.counter_acked += 1;
                        }
                        drop(s);
                        writer = Some(c);
                    }
                    // The outcome is unknown (the process died mid-commit, or
                    // the ack wait failed): the checker allows either.
                    Err(_) => continue,
                }
                if check_sync && mode == "sync" && k % 5 == 0 {
                    if reader.is_none() {
                        reader = connect_port(other).await.ok();
                        if let Some(r) = &reader
                            && r.batch_execute("SET tributary.read_consistency = 'eventual'").await.is_err()
                        {
                            reader = None;
                        }
                    }
                    if let Some(r) = &reader {
                        match r.query_one("SELECT count(*) FROM pairs WHERE grp = $1", &[&grp]).await {
                            Ok(row) => {
                                sync_checked.fetch_add(1, Ordering::Relaxed);
                                if row.get::<_, i64>(0) != 2 {
                                    sync_missing.fetch_add(1, Ordering::Relaxed);
                                }
                            }
                            Err(_) => reader = None,
                        }
                    }
                }
            }
        }));
    }
    Load {
        stop,
        seen,
        sync_checked,
        sync_missing,
        tasks,
    }
}

impl Load {
    /// Stops the writers and fills in what they saw.
    pub async fn finish(self, report: &mut Report) -> BTreeSet<i64> {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.tasks {
            let _ = tokio::time::timeout(Duration::from_secs(30), t).await;
        }
        let s = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        report.acked_transactions = s.acked.len();
        report.counter_acked = s.counter_acked;
        report.counter_tried = s.counter_tried;
        report.sync_reads_checked = self.sync_checked.load(Ordering::Relaxed);
        report.sync_not_visible = self.sync_missing.load(Ordering::Relaxed);
        s.acked.clone()
    }

    /// Lets the writers get some writes through the healed cluster, then
    /// stops them.
    pub async fn finish_after_healing(self, report: &mut Report) -> Result<BTreeSet<i64>> {
        let before = self.acked_so_far();
        eventually(
            Duration::from_secs(60),
            "writes after the last restart",
            || {
                let n = self.acked_so_far();
                async move { Ok((n > before + 10).then_some(())) }
            },
        )
        .await?;
        Ok(self.finish(report).await)
    }

    pub fn acked_so_far(&self) -> usize {
        self.seen
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .acked
            .len()
    }
}

/// Checks replica files against what was acknowledged.
pub fn check_replicas(paths: &[PathBuf], acked: &BTreeSet<i64>, report: &mut Report) -> Result<()> {
    let dumps: Vec<String> = paths.iter().map(|p| dump(p)).collect::<Result<_>>()?;
    report.divergent_replicas = dumps.iter().filter(|d| **d != dumps[0]).count();
    for path in paths {
        let c = rusqlite::Connection::open(path)?;
        let mut groups: BTreeMap<i64, i64> = BTreeMap::new();
        let mut s = c.prepare("SELECT grp, count(*) FROM pairs GROUP BY grp")?;
        for row in s.query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?)))? {
            let (g, n) = row?;
            groups.insert(g, n);
        }
        report.partial_transactions += groups.values().filter(|n| **n != 2).count();
        for g in acked {
            report.acked_rows_checked += 2;
            if groups.get(g) != Some(&2) {
                report.lost += 1;
            }
        }
        let n: i64 = c.query_row("SELECT n FROM counter WHERE id = 1", [], |r| r.get(0))?;
        report.counter_final = n;
    }
    Ok(())
}
