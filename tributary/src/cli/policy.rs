//! `tributary policy check|apply|dry-run`.

use std::path::{Path, PathBuf};

use anyhow::Context;

#[derive(clap::Subcommand)]
pub enum Command {
    /// Validate a policy file without starting anything: syntax, allowed
    /// values, and (when a replica file exists in --data-dir) table and
    /// column names and column types.
    Check {
        /// The policy file (TOML).
        file: PathBuf,
        /// Data directory whose replica schema to check against.
        #[arg(long, default_value = "./tributary-data")]
        data_dir: PathBuf,
    },
    /// Validate a policy file on a running router and append it to the log
    /// as the next policy version; every replica switches at that offset.
    Apply {
        /// The policy file (TOML).
        file: PathBuf,
        /// Router to send it to.
        #[arg(long, default_value = "127.0.0.1:5433")]
        router: String,
    },
    /// Replay a window of the log under a candidate policy into scratch
    /// files (from the newest snapshot at or before --from) and print what
    /// would differ from the policies in force: rows whose final values
    /// change, conflicts whose outcome changes, counts per table. Reads the
    /// log and snapshots only; nothing in the cluster changes.
    DryRun {
        /// The candidate policy file (TOML).
        file: PathBuf,
        /// First offset whose conflicts are reported.
        #[arg(long, default_value_t = 0)]
        from: u64,
        /// End of the window (exclusive); the log end when omitted.
        #[arg(long)]
        to: Option<u64>,
        /// Data directory of the node (its log and snapshots).
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Read the data directory and log settings from this config file.
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
}

pub async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Check { file, data_dir } => check(&file, &data_dir),
        Command::Apply { file, router } => apply(&file, &router).await,
        Command::DryRun {
            file,
            from,
            to,
            data_dir,
            config,
            json,
        } => dry_run(&file, from, to, data_dir, config, json).await,
    }
}

async fn dry_run(
    file: &Path,
    from: u64,
    to: Option<u64>,
    data_dir: Option<PathBuf>,
    config: Option<PathBuf>,
    json: bool,
) -> anyhow::Result<()> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    resolver::Policy::parse(&text, &file.display().to_string())?;
    let cfg = super::load_config(config.as_deref(), data_dir)?;
    let scratch = tempfile::tempdir().context("making a scratch directory")?;
    let started = std::time::Instant::now();
    let replayed = crate::dry_run::run(&cfg, &text, from, to, scratch.path()).await?;
    let mut report = crate::dry_run_diff::compare(&replayed.actual, &replayed.candidate, from)?;
    report["window"] = serde_json::json!({
        "from": replayed.from, "to": replayed.to, "replayed_from": replayed.replay_start,
        "records": replayed.records, "seconds": started.elapsed().as_secs_f64()});
    if json {
        println!("{report}");
    } else {
        println!(
            "replayed offsets {}..{} ({} records, from {}) under {} in {:.1} s",
            replayed.replay_start,
            replayed.to,
            replayed.records,
            if replayed.replay_start > 0 {
                "a snapshot"
            } else {
                "the start of the log"
            },
            file.display(),
            started.elapsed().as_secs_f64()
        );
        crate::dry_run_diff::print(&report, &mut std::io::stdout().lock())?;
    }
    Ok(())
}

/// The first replica file in a data directory, if any.
fn replica_file(data_dir: &Path) -> Option<std::path::PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(data_dir)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "db"))
        .collect();
    files.sort();
    files.into_iter().next()
}

fn check(file: &Path, data_dir: &Path) -> anyhow::Result<()> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let name = file.display().to_string();
    match replica_file(data_dir) {
        Some(db) => {
            let conn = rusqlite::Connection::open_with_flags(
                &db,
                rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
            )
            .with_context(|| format!("opening {}", db.display()))?;
            router::policy::check(&conn, &text, &name)?;
            println!(
                "{name}: valid (names and types checked against {})",
                db.display()
            );
        }
        None => {
            resolver::Policy::parse(&text, &name)?;
            println!(
                "{name}: valid syntax and values; no replica in {} to check table and column names against",
                data_dir.display()
            );
        }
    }
    Ok(())
}

async fn apply(file: &Path, router: &str) -> anyhow::Result<()> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let client = super::connect(router).await?;
    let sql = format!(
        "SET tributary.apply_policy = '{}'",
        text.replace('\'', "''")
    );
    client.simple_query(&sql).await.map_err(|e| {
        anyhow::anyhow!(
            "{}",
            e.as_db_error()
                .map_or_else(|| e.to_string(), |d| d.message().to_owned())
        )
    })?;
    let version = client.simple_query("SHOW tributary.policy_version").await?;
    let v = version.iter().find_map(|m| match m {
        tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_owned),
        _ => None,
    });
    println!(
        "{}: applied as policy version {}",
        file.display(),
        v.unwrap_or_default()
    );
    Ok(())
}
