//! The crash harness, short form (CI): 50 SIGKILLs with storage damage on the
//! file log, 50 node kills plus broker freezes and broker kills on Kafka
//! (tansu on its SQLite storage), 20 kills of a sharded `tributary up`
//! running cross-shard transfers; every acknowledged write present once on
//! every replica, no partial transaction, identical replicas. Long form: `cargo run -p tests --bin
//! chaos -- --kills 300` (README "Crash harness").

use anyhow::Result;
use tests::chaos;

fn seed() -> u64 {
    std::env::var("CHAOS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_log_survives_50_kills_and_damaged_storage() -> Result<()> {
    let report = chaos::run_file_log(50, 6, seed()).await?;
    println!("{report}");
    report.verdict()?;
    anyhow::ensure!(
        report.kills >= 50 && report.acked_transactions > 0 && report.transfers_acked > 0,
        "{report}"
    );
    // The damage was noticed and repaired, not silently absorbed.
    for what in [
        "log-tail-truncated",
        "damaged-file-set-aside",
        "rebuilt-from-snapshot",
    ] {
        anyhow::ensure!(
            report.recoveries.get(what).copied().unwrap_or(0) > 0,
            "no {what}: {report}"
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_nodes_survive_50_kills_broker_freezes_and_broker_kills() -> Result<()> {
    let report = chaos::run_kafka(50, 4, seed()).await?;
    println!("{report}");
    report.verdict()?;
    anyhow::ensure!(
        report.kills >= 50 && report.acked_transactions > 0,
        "{report}"
    );
    anyhow::ensure!(
        report.broker_kills >= 2 && report.broker_freezes >= 2 && report.transfers_acked > 0,
        "{report}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sharded_transfers_survive_20_kills() -> Result<()> {
    let report = chaos::run_sharded(20, seed()).await?;
    println!("{report}");
    report.verdict()?;
    anyhow::ensure!(
        report.kills >= 20 && report.transfers_acked > 0 && report.transfer_reads > 0,
        "{report}"
    );
    Ok(())
}
