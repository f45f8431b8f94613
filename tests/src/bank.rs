//! A bank-transfer workload whose invariants a lost update breaks: the
//! total of all balances never changes (checked at every read and at the
//! end), and each account equals its start plus the transfers acknowledged
//! to clients (plus, at most, those whose outcome a client could not know).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use tokio::task::JoinHandle;
use tokio_postgres::Client;

use crate::chaos::Rng;
use crate::connect_port;

/// Every account starts with this balance.
pub const START: i64 = 1_000;

/// Creates `bank` with `accounts` rows of [`START`] through `client`.
pub async fn create(client: &Client, accounts: usize) -> Result<()> {
    client
        .batch_execute("CREATE TABLE bank (id BIGINT PRIMARY KEY, balance BIGINT NOT NULL)")
        .await?;
    let values: Vec<String> = (1..=accounts).map(|i| format!("({i}, {START})")).collect();
    client
        .batch_execute(&format!("INSERT INTO bank VALUES {}", values.join(", ")))
        .await?;
    Ok(())
}

/// What the clients were told.
#[derive(Debug, Default, Clone)]
pub struct Ledger {
    /// Per account (index = id - 1): net of acknowledged transfers.
    pub acked_net: Vec<i64>,
    pub acked: u64,
    /// Per account: the largest amount an in-doubt transfer may have moved
    /// in (+) or out (−) — a connection lost at COMMIT, an ack timeout.
    pub doubt_in: Vec<i64>,
    pub doubt_out: Vec<i64>,
    pub in_doubt: u64,
    /// Why the latest in-doubt transfer was in doubt.
    pub last_doubt: Option<String>,
    /// Refusals by SQLSTATE (40001, 40P01, …): known not applied.
    pub refused: BTreeMap<String, u64>,
}

impl Ledger {
    fn new(accounts: usize) -> Ledger {
        Ledger {
            acked_net: vec![0; accounts],
            doubt_in: vec![0; accounts],
            doubt_out: vec![0; accounts],
            ..Ledger::default()
        }
    }

    /// Checks balances (index = id - 1) against what clients were told.
    pub fn check(&self, balances: &[i64]) -> Result<()> {
        let total: i64 = balances.iter().sum();
        let expected = START * balances.len() as i64;
        if total != expected {
            bail!("total {total} != {expected}; ledger {self:?}");
        }
        for (i, b) in balances.iter().enumerate() {
            let base = START + self.acked_net[i];
            let (lo, hi) = (base - self.doubt_out[i], base + self.doubt_in[i]);
            if *b < lo || *b > hi {
                bail!(
                    "account {} holds {b}, expected {base} (in-doubt range {lo}..={hi}): an acknowledged transfer was lost or doubled",
                    i + 1
                );
            }
        }
        Ok(())
    }
}

/// Running transfer clients and total-checking readers.
pub struct Transfers {
    stop: Arc<AtomicBool>,
    writers: Vec<JoinHandle<Result<()>>>,
    readers: Vec<JoinHandle<Result<u64>>>,
    ledger: Arc<Mutex<Ledger>>,
    pub attempts: Arc<AtomicU64>,
}

/// Outcome of a run: the ledger and how many reads checked the total.
pub struct Outcome {
    pub ledger: Ledger,
    pub reads: u64,
}

fn code(e: &tokio_postgres::Error) -> Option<String> {
    e.code().map(|c| c.code().to_owned())
}

/// Starts `clients` transfer clients spread round-robin over `ports`, client
/// `w` running `setups[w % len]` first (e.g. `SET tributary.ack = 'sync'`),
/// and one reader per port checking the total at every read.
pub fn start(
    ports: &[u16],
    clients: usize,
    accounts: usize,
    setups: &[&str],
    seed: u64,
) -> Transfers {
    let stop = Arc::new(AtomicBool::new(false));
    let ledger = Arc::new(Mutex::new(Ledger::new(accounts)));
    let attempts = Arc::new(AtomicU64::new(0));
    let mut writers = Vec::new();
    for w in 0..clients {
        let port = ports[w % ports.len()];
        let (stop, ledger, attempts) = (stop.clone(), ledger.clone(), attempts.clone());
        let setup = setups
            .get(w % setups.len().max(1))
            .copied()
            .unwrap_or("")
            .to_owned();
        writers.push(tokio::spawn(async move {
            let mut rng = Rng::new(seed ^ (w as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
            let mut client: Option<Client> = None;
            while !stop.load(Ordering::Relaxed) {
                // (Re)connect: the node may be restarting (crash harness).
                let Some(c) = client.as_ref().filter(|c| !c.is_closed()) else {
                    client = match connect_port(port).await {
                        Ok(c) if c.batch_execute(&setup).await.is_ok() => Some(c),
                        _ => {
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            None
                        }
                    };
                    continue;
                };
                let a = rng.range(1, accounts as u64 + 1) as i64;
                let mut b = rng.range(1, accounts as u64) as i64;
                if b >= a {
                    b += 1;
                }
                let x = rng.range(1, 50) as i64;
                attempts.fetch_add(1, Ordering::Relaxed);
                let outcome = transfer(c, a, b, x).await;
                let (ai, bi) = (a as usize - 1, b as usize - 1);
                let mut l = ledger.lock().unwrap_or_else(|p| p.into_inner());
                match outcome {
                    Ok(()) => {
                        l.acked += 1;
                        l.acked_net[ai] -= x;
                        l.acked_net[bi] += x;
                    }
                    Err(Failure::Refused(code)) => *l.refused.entry(code).or_default() += 1,
                    Err(Failure::InDoubt(why)) => {
                        l.in_doubt += 1;
                        l.last_doubt = Some(why);
                        l.doubt_out[ai] += x;
                        l.doubt_in[bi] += x;
                    }
                }
            }
            Ok(())
        }));
    }
    let mut readers = Vec::new();
    let total = START * accounts as i64;
    for &port in ports {
        let stop = stop.clone();
        readers.push(tokio::spawn(async move {
            let mut client: Option<Client> = None;
            let mut reads = 0;
            while !stop.load(Ordering::Relaxed) {
                let Some(c) = client.as_ref().filter(|c| !c.is_closed()) else {
                    // Strong reads see every acknowledged transfer, so the
                    // total is checked against a state that includes them.
                    client = match connect_port(port).await {
                        Ok(c)
                            if c
                                .batch_execute("SET tributary.read_consistency = 'strong'")
                                .await
                                .is_ok() =>
                        {
                            Some(c)
                        }
                        _ => {
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            None
                        }
                    };
                    continue;
                };
                let row = match c
                    .query_one("SELECT CAST(sum(balance) AS BIGINT), count(*) FROM bank", &[])
                    .await
                {
                    Ok(r) => r,
                    // A restarting node; any other failure is retried too,
                    // only a wrong total fails the run.
                    Err(_) => {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        continue;
                    }
                };
                let sum: i64 = row.try_get(0)?;
                let n: i64 = row.try_get(1)?;
                if n != accounts as i64 || sum != total {
                    bail!("read {reads} through port {port} saw {n} accounts totalling {sum}, not {total}");
                }
                reads += 1;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            Ok(reads)
        }));
    }
    Transfers {
        stop,
        writers,
        readers,
        ledger,
        attempts,
    }
}

enum Failure {
    /// Known not applied (the SQLSTATE).
    Refused(String),
    /// Maybe applied.
    InDoubt(String),
}

async fn transfer(client: &Client, a: i64, b: i64, x: i64) -> std::result::Result<(), Failure> {
    let body = async {
        client.batch_execute("BEGIN").await?;
        client
            .execute(
                "UPDATE bank SET balance = balance - $1 WHERE id = $2",
                &[&x, &a],
            )
            .await?;
        client
            .execute(
                "UPDATE bank SET balance = balance + $1 WHERE id = $2",
                &[&x, &b],
            )
            .await?;
        Ok::<_, tokio_postgres::Error>(())
    };
    if let Err(e) = body.await {
        let _ = client.batch_execute("ROLLBACK").await;
        // Nothing is queued before COMMIT: whatever failed, nothing applied.
        return Err(Failure::Refused(
            code(&e).unwrap_or_else(|| "connection".to_owned()),
        ));
    }
    match client.batch_execute("COMMIT").await {
        Ok(()) => Ok(()),
        // A serialization failure or deadlock at COMMIT: not applied.
        Err(e) if matches!(code(&e).as_deref(), Some("40001" | "40P01")) => {
            Err(Failure::Refused(code(&e).unwrap_or_default()))
        }
        // Lost connection, ack timeout (durable, maybe rejected later).
        Err(e) => Err(Failure::InDoubt(e.to_string())),
    }
}

impl Transfers {
    /// Stops the clients; fails if any reader saw a wrong total.
    pub async fn stop(self) -> Result<Outcome> {
        self.stop.store(true, Ordering::Relaxed);
        for w in self.writers {
            w.await.context("transfer client panicked")??;
        }
        let mut reads = 0;
        for r in self.readers {
            reads += r.await.context("reader panicked")??;
        }
        let ledger = self
            .ledger
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        Ok(Outcome { ledger, reads })
    }
}

/// Balances in a replica file, by id.
pub fn balances(path: &std::path::Path) -> Result<Vec<i64>> {
    let conn =
        rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    let mut stmt = conn.prepare("SELECT balance FROM bank ORDER BY id")?;
    let rows = stmt.query_map([], |r| r.get::<_, i64>(0))?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}
