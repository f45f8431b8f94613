//! `cargo run --release -p bench --bin limits`: the ceilings Tributary's own
//! parts work against, measured side by side on this machine's disk:
//!
//! 1. file-log append throughput with group commit (concurrent appenders)
//!    against a raw `write` + `fdatasync` loop of the same record sizes;
//! 2. replica apply rows/s against plain rusqlite inserting the same rows in
//!    large transactions;
//! 3. record encode and decode per second.
//!
//! Each figure is the median of several rounds; ratios are printed.

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use tokio_util::sync::CancellationToken;
use wal_bus::{AckBoard, Change, FileLog, Hlc, Log, LogConfig, Op, Record, RecordBody, Row, Value};

const ROUNDS: usize = 3;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn record(i: i64, rows: usize) -> Record {
    let changes = (0..rows as i64)
        .map(|r| {
            let id = i * rows as i64 + r;
            let row: Row = [
                ("id".to_owned(), Value::Integer(id)),
                ("v".to_owned(), Value::Text(format!("value-{id}"))),
            ]
            .into_iter()
            .collect();
            Change {
                table: "kv".into(),
                op: Op::Insert,
                key: [("id".to_owned(), Value::Integer(id))]
                    .into_iter()
                    .collect(),
                before: None,
                after: Some(row),
            }
        })
        .collect();
    Record {
        id: format!("b-{i}"),
        origin: "b".into(),
        hlc: Hlc::new(i as u64 + 1, 0),
        ts_ms: 0,
        body: RecordBody::Txn { changes },
        idempotency: None,
    }
}

/// Raw sequential writes of `size` bytes, each followed by fdatasync.
fn raw_fsync_per_sec(size: usize, secs: f64) -> Result<f64> {
    let dir = tempfile::tempdir()?;
    let f = OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .open(dir.path().join("raw"))?;
    let buf = vec![7u8; size];
    let start = Instant::now();
    let mut n = 0u64;
    let mut pos = 0u64;
    while start.elapsed().as_secs_f64() < secs {
        f.write_all_at(&buf, pos)?;
        f.sync_data()?;
        pos += size as u64;
        n += 1;
    }
    Ok(n as f64 / start.elapsed().as_secs_f64())
}

/// File-log appends/s with `writers` concurrent appenders (group commit).
async fn log_appends_per_sec(size: usize, writers: usize, secs: f64) -> Result<f64> {
    let dir = tempfile::tempdir()?;
    let log: Arc<dyn Log> = Arc::new(FileLog::open(dir.path(), &LogConfig::default())?);
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..writers {
        let log = log.clone();
        tasks.push(tokio::spawn(async move {
            let mut n = 0u64;
            while Instant::now() < deadline {
                if log.append(vec![7u8; size]).await.is_err() {
                    break;
                }
                n += 1;
            }
            n
        }));
    }
    let mut total = 0;
    for t in tasks {
        total += t.await?;
    }
    Ok(total as f64 / start.elapsed().as_secs_f64())
}

/// Rows/s a replica applies from a log holding `records` × `rows` inserts.
async fn apply_rows_per_sec(records: i64, rows: usize) -> Result<f64> {
    let dir = tempfile::tempdir()?;
    let log: Arc<dyn Log> = Arc::new(FileLog::open(
        &dir.path().join("log"),
        &LogConfig::default(),
    )?);
    let ddl = Record {
        id: "ddl".into(),
        origin: "b".into(),
        hlc: Hlc::new(0, 0),
        ts_ms: 0,
        idempotency: None,
        body: RecordBody::Ddl {
            sql: "CREATE TABLE kv (id INTEGER PRIMARY KEY, v TEXT)".into(),
        },
    };
    log.append(ddl.encode()).await?;
    for i in 0..records {
        log.append(record(i, rows).encode()).await?;
    }
    let acks = Arc::new(AckBoard::default());
    let cancel = CancellationToken::new();
    let start = Instant::now();
    let h = replica::spawn_applier(replica::ApplierOptions {
        name: "r".into(),
        path: dir.path().join("r.db"),
        log,
        acks: acks.clone(),
        clock: None,
        cancel: cancel.clone(),
        runtime: tokio::runtime::Handle::current(),
        snapshots: None,
    })?;
    let target = records as u64 + 1;
    acks.wait_until(|s| s.replicas.get("r").is_some_and(|a| a.applied >= target))
        .await;
    let elapsed = start.elapsed().as_secs_f64();
    cancel.cancel();
    tokio::task::spawn_blocking(move || h.join()).await?;
    Ok((records as f64 * rows as f64) / elapsed)
}

/// Rows/s plain rusqlite inserts the same rows, 10,000 per transaction.
fn rusqlite_rows_per_sec(total: usize) -> Result<f64> {
    let dir = tempfile::tempdir()?;
    let conn = rusqlite::Connection::open(dir.path().join("plain.db"))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.execute_batch("CREATE TABLE kv (id INTEGER PRIMARY KEY, v TEXT)")?;
    let start = Instant::now();
    for chunk in 0..total.div_ceil(10_000) {
        let tx = conn.unchecked_transaction()?;
        {
            let mut stmt = tx.prepare_cached("INSERT INTO kv (id, v) VALUES (?1, ?2)")?;
            for i in chunk * 10_000..((chunk + 1) * 10_000).min(total) {
                stmt.execute(rusqlite::params![i as i64, format!("value-{i}")])?;
            }
        }
        tx.commit()?;
    }
    Ok(total as f64 / start.elapsed().as_secs_f64())
}

fn codec_per_sec(rows: usize, n: usize) -> (f64, f64) {
    let rec = record(1, rows);
    let start = Instant::now();
    let mut bytes = Vec::new();
    for _ in 0..n {
        bytes = rec.encode();
    }
    let enc = n as f64 / start.elapsed().as_secs_f64();
    let start = Instant::now();
    for _ in 0..n {
        let _ = Record::decode(&bytes);
    }
    (enc, n as f64 / start.elapsed().as_secs_f64())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    let secs = 3.0;
    println!("## Limits (median of {ROUNDS} rounds)\n");
    println!("| what | Tributary | limit | ratio |");
    println!("|---|---:|---:|---:|");
    let size = record(1, 1).encode().len() + 8;
    let raw = median(
        (0..ROUNDS)
            .map(|_| raw_fsync_per_sec(size, secs))
            .collect::<Result<_>>()?,
    );
    for writers in [1usize, 8, 64] {
        let mut v = Vec::new();
        for _ in 0..ROUNDS {
            v.push(log_appends_per_sec(size - 8, writers, secs).await?);
        }
        let m = median(v);
        println!(
            "| file-log appends/s, {size}-byte records, {writers} appenders (group commit) | {m:.0} | {raw:.0} raw write+fdatasync/s | {:.2} |",
            m / raw
        );
    }
    let (records, rows) = (2_000i64, 50usize);
    let mut a = Vec::new();
    let mut p = Vec::new();
    for _ in 0..ROUNDS {
        a.push(apply_rows_per_sec(records, rows).await?);
        p.push(rusqlite_rows_per_sec(records as usize * rows)?);
    }
    let (a, p) = (median(a), median(p));
    println!(
        "| replica apply rows/s ({records} records × {rows} inserts) | {a:.0} | {p:.0} plain rusqlite rows/s | {:.2} |",
        a / p
    );
    // Catch-up: a new replica applying a log that holds 1,000,000 row changes.
    let rate = apply_rows_per_sec(20_000, 50).await?;
    println!(
        "| new replica catching up on 1,000,000 row changes (20,000 records × 50) | {:.1} s ({rate:.0} rows/s) | | |",
        1_000_000.0 / rate
    );
    for rows in [1usize, 10] {
        let mut e = Vec::new();
        let mut d = Vec::new();
        for _ in 0..ROUNDS {
            let (x, y) = codec_per_sec(rows, 100_000);
            e.push(x);
            d.push(y);
        }
        println!(
            "| record encode/s ({rows}-row txn) | {:.0} | | |",
            median(e)
        );
        println!(
            "| record decode/s ({rows}-row txn) | {:.0} | | |",
            median(d)
        );
    }
    Ok(())
}
