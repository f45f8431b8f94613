//! `tributary policy check|apply`.

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
}

pub async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Check { file, data_dir } => check(&file, &data_dir),
        Command::Apply { file, router } => apply(&file, &router).await,
    }
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
