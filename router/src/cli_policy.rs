//! `tributary policy check|apply`, and applying the configured policy at start-up.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use replica::ReplicaState;
use wal_bus::{HlcClock, Log, Record, RecordBody};

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

pub fn check(file: &Path, data_dir: &Path) -> anyhow::Result<()> {
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

pub async fn apply(file: &Path, router: &str) -> anyhow::Result<()> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let (host, port) = router
        .rsplit_once(':')
        .with_context(|| format!("--router {router:?} is not HOST:PORT"))?;
    let (client, connection) =
        tokio_postgres::connect(&conn_string(host, port), tokio_postgres::NoTls)
            .await
            .with_context(|| format!("cannot connect to router {router}"))?;
    tokio::spawn(connection);
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

/// At start-up: if the configured policy differs from the one in force,
/// validate it and append it; any problem stops start-up before routers open.
pub async fn apply_at_startup(
    file: &Path,
    log: &Arc<dyn Log>,
    clock: &HlcClock,
    replica: &Arc<ReplicaState>,
) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(file)
        .with_context(|| format!("reading policy {}", file.display()))?;
    let end = log.end();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    while replica.applied() < end {
        if let Some(reason) = replica.stopped() {
            bail!("replica {} stopped: {reason}", replica.name);
        }
        if tokio::time::Instant::now() > deadline {
            bail!(
                "replica {} did not catch up within 120 s to check the policy",
                replica.name
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let conn = rusqlite::Connection::open_with_flags(
        &replica.path,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )?;
    let name = file.display().to_string();
    let policy = router::policy::check(&conn, &text, &name)?;
    let (version, current) = replica.policy();
    if *current == policy {
        tracing::info!(version, "configured policy already in force");
        return Ok(());
    }
    let hlc = clock.now()?;
    let record = Record {
        id: format!("node-policy-{}", version + 1),
        origin: "node".into(),
        hlc,
        ts_ms: hlc.wall_ms(),
        body: RecordBody::Policy {
            version: version + 1,
            policy: text,
        },
    };
    let offset = log.append(record.encode()).await?;
    tracing::info!(version = version + 1, offset, file = %name, "conflict policy appended");
    // Routers open only once the new policy is in force on their replica.
    wait_applied(replica, offset + 1).await
}

async fn wait_applied(replica: &ReplicaState, target: u64) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    while replica.applied() < target {
        if let Some(reason) = replica.stopped() {
            bail!("replica {} stopped: {reason}", replica.name);
        }
        if tokio::time::Instant::now() > deadline {
            bail!(
                "replica {} did not reach offset {target} within 120 s",
                replica.name
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

/// Connection string for the CLI's own connections to a router: user and
/// password from `PGUSER` / `PGPASSWORD` when set (routers with
/// `[router.auth]` on need them), as psql does.
pub fn conn_string(host: &str, port: &str) -> String {
    let user = std::env::var("PGUSER").unwrap_or_else(|_| "tributary".to_owned());
    let mut s = format!(
        "host={host} port={port} user='{}' dbname=tributary connect_timeout=5",
        quote(&user)
    );
    if let Ok(pw) = std::env::var("PGPASSWORD") {
        s.push_str(&format!(" password='{}'", quote(&pw)));
    }
    s
}

fn quote(v: &str) -> String {
    v.replace('\\', "\\\\").replace('\'', "\\'")
}
