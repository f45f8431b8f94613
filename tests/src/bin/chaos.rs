//! The crash harness, long form: `cargo run -p tests --bin chaos -- [--backend
//! file|kafka|both] [--kills N] [--writers N] [--seed N]`. Prints one report
//! line per backend and exits non-zero if any acknowledged write was lost,
//! split, applied twice, or replicas differ.

use anyhow::{Context, Result, bail};
use tests::chaos;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    let mut backend = "both".to_owned();
    let mut kills = 200usize;
    let mut writers = 6usize;
    let mut seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64);
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || args.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--backend" => backend = value()?,
            "--kills" => kills = value()?.parse().context("--kills")?,
            "--writers" => writers = value()?.parse().context("--writers")?,
            "--seed" => seed = value()?.parse().context("--seed")?,
            "-h" | "--help" => {
                println!("chaos [--backend file|kafka|both] [--kills N] [--writers N] [--seed N]");
                return Ok(());
            }
            other => bail!("unknown argument {other:?} (try --help)"),
        }
    }
    let mut failed = false;
    if backend == "file" || backend == "both" {
        let report = chaos::run_file_log(kills, writers, seed).await?;
        println!("{report}");
        if let Err(e) = report.verdict() {
            eprintln!("FAILED: {e}");
            failed = true;
        }
    }
    if backend == "kafka" || backend == "both" {
        let report = chaos::run_kafka(kills, writers, seed).await?;
        println!("{report}");
        if let Err(e) = report.verdict() {
            eprintln!("FAILED: {e}");
            failed = true;
        }
    }
    if failed {
        bail!("the crash harness found violations");
    }
    Ok(())
}
