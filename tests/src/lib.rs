//! End-to-end harness: starts Tributary on free loopback ports, either as
//! the real `tributary` binary (for what needs a process: kill -9, signals,
//! restarts, the CLI) or as an in-process `tributary::Node`; waits with
//! bounded `eventually` checks (never bare sleeps), and stops everything it
//! started when dropped. `cluster.rs` holds `tributary up` clusters,
//! `kafka.rs` the tansu broker and `tributary node` processes.

use std::future::Future;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};

pub mod bank;
pub mod chaos;
mod cluster;
pub mod differential;
mod kafka;

pub use cluster::Cluster;
pub use kafka::{Node, Tansu};
use tokio_postgres::{Client, NoTls};

/// The `tributary` binary, built once per test process.
pub fn binary() -> Result<PathBuf> {
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let status = Command::new(cargo)
                .args(["build", "-q", "-p", "tributary", "--bin", "tributary"])
                .current_dir(&root)
                .status()
                .map_err(|e| format!("running cargo build: {e}"))?;
            if !status.success() {
                return Err("cargo build of tributary failed".into());
            }
            let target = std::env::var("CARGO_TARGET_DIR")
                .map_or_else(|_| root.join("target"), PathBuf::from);
            Ok(target.join("debug").join("tributary"))
        })
        .clone()
        .map_err(anyhow::Error::msg)
}

/// Retries `check` until it returns `Ok(Some(v))` or `timeout` passes.
pub async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut check: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Option<T>>>,
{
    let deadline = Instant::now() + timeout;
    let mut last_err = None;
    loop {
        match check().await {
            Ok(Some(v)) => return Ok(v),
            Ok(None) => {}
            Err(e) => last_err = Some(e),
        }
        if Instant::now() >= deadline {
            match last_err {
                Some(e) => {
                    bail!("timed out after {timeout:?} waiting for {what}; last error: {e:#}")
                }
                None => bail!("timed out after {timeout:?} waiting for {what}"),
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Starts `cmd` with stdout and stderr appended to `log_file`.
pub(crate) fn spawn_logged(cmd: &mut Command, log_file: &Path) -> Result<Child> {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log_file)?;
    cmd.env("RUST_LOG", "info")
        .stdout(Stdio::from(log.try_clone()?))
        .stderr(Stdio::from(log))
        .stdin(Stdio::null());
    cmd.spawn()
        .with_context(|| format!("starting {:?}", cmd.get_program()))
}

/// SIGKILLs a child process, if running, and reaps it.
pub(crate) fn kill9(child: &mut Option<Child>) -> Result<()> {
    if let Some(mut c) = child.take() {
        c.kill()?;
        c.wait()?;
    }
    Ok(())
}

/// Waits until a router accepts PostgreSQL connections on `port`.
pub(crate) async fn wait_for_router(port: u16) -> Result<()> {
    eventually(
        Duration::from_secs(60),
        "router to accept connections",
        || async move {
            match connect_port(port).await {
                Ok(_) => Ok(Some(())),
                // Authentication is on: the router is up and asking for it.
                Err(e) if format!("{e:#}").contains("password") => Ok(Some(())),
                Err(_) => Ok(None),
            }
        },
    )
    .await
}

/// `count` consecutive free ports on 127.0.0.1.
pub fn free_ports(count: u16) -> Result<u16> {
    for _ in 0..200 {
        let first = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        if first > 65_000 {
            continue;
        }
        let all_free = (0..count).all(|i| TcpListener::bind(("127.0.0.1", first + i)).is_ok());
        if all_free {
            return Ok(first);
        }
    }
    bail!("no {count} consecutive free ports found")
}

pub async fn connect_port(port: u16) -> Result<Client> {
    let (client, conn) = tokio_postgres::connect(
        &format!("host=127.0.0.1 port={port} user=test dbname=test connect_timeout=5"),
        NoTls,
    )
    .await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(client)
}

/// A canonical dump of every user table of a replica file, for comparison.
pub fn dump(path: &Path) -> Result<String> {
    let conn =
        rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    let mut tables: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name NOT LIKE '_tributary_%' ORDER BY name")?
        .query_map([], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    tables.sort();
    let mut out = String::new();
    for t in tables {
        out.push_str(&format!("== {t}\n"));
        let mut stmt = conn.prepare(&format!("SELECT * FROM \"{t}\" ORDER BY 1"))?;
        let n = stmt.column_count();
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            let vals: Vec<String> = (0..n)
                .map(|i| match r.get_ref(i) {
                    Ok(rusqlite::types::ValueRef::Text(t)) => {
                        format!("'{}'", String::from_utf8_lossy(t))
                    }
                    Ok(v) => format!("{v:?}"),
                    Err(e) => format!("<{e}>"),
                })
                .collect();
            out.push_str(&vals.join("|"));
            out.push('\n');
        }
    }
    Ok(out)
}

/// The applied offset stored in a replica file.
pub fn applied_offset(path: &Path) -> Result<u64> {
    let conn =
        rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    let v: i64 = conn.query_row(
        "SELECT value FROM _tributary_state WHERE name = 'applied_offset'",
        [],
        |r| r.get(0),
    )?;
    Ok(v.max(0) as u64)
}

/// Runs `tests/python/SCRIPT` with `args`; its standard output, or an error
/// with both outputs when it fails.
pub fn python(script: &str, args: &[&str]) -> Result<String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("python")
        .join(script);
    let out = Command::new("python3")
        .arg(&path)
        .args(args)
        .output()
        .context("running python3 (scripts/setup.sh --tests installs psycopg)")?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    ensure!(
        out.status.success(),
        "{script} failed:\n{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(stdout)
}

/// One column of every row of `sql` in the SQLite file at `path`, read by
/// the sqlite3 CLI (installed by `scripts/setup.sh --tests`), as an
/// operator would.
pub fn sqlite3(path: &std::path::Path, sql: &str) -> Result<Vec<String>> {
    let out = std::process::Command::new("sqlite3")
        .arg(path)
        .arg(sql)
        .output()
        .context("running sqlite3 (installed by scripts/setup.sh --tests)")?;
    anyhow::ensure!(
        out.status.success(),
        "sqlite3 failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8(out.stdout)?
        .lines()
        .map(str::to_owned)
        .collect())
}
