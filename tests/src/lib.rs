//! End-to-end harness: builds and starts the real `tributary` binary on
//! free loopback ports, waits with bounded `eventually` checks (never bare
//! sleeps), and kills every process it started when dropped.

use std::future::Future;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

pub mod bank;
pub mod chaos;
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
fn spawn_logged(cmd: &mut Command, log_file: &Path) -> Result<Child> {
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
fn kill9(child: &mut Option<Child>) -> Result<()> {
    if let Some(mut c) = child.take() {
        c.kill()?;
        c.wait()?;
    }
    Ok(())
}

/// Waits until a router accepts PostgreSQL connections on `port`.
async fn wait_for_router(port: u16) -> Result<()> {
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

/// A running `tributary up`.
pub struct Cluster {
    pub dir: PathBuf,
    pub port: u16,
    pub replicas: usize,
    pub routers: u16,
    extra_env: Vec<(String, String)>,
    /// A node configuration file passed with `--config`, if any.
    pub config: Option<PathBuf>,
    child: Option<Child>,
    _tmp: Option<tempfile::TempDir>,
}

impl Cluster {
    /// Starts a cluster in a new temporary directory.
    pub async fn start(replicas: usize, routers: u16, env: &[(&str, &str)]) -> Result<Cluster> {
        Cluster::start_with_config(replicas, routers, env, None).await
    }

    /// Starts a cluster with `config` (TOML text) as its `--config` file.
    pub async fn start_with_config(
        replicas: usize,
        routers: u16,
        env: &[(&str, &str)],
        config: Option<&str>,
    ) -> Result<Cluster> {
        let tmp = tempfile::tempdir()?;
        let config = match config {
            Some(text) => {
                let path = tmp.path().join("node.toml");
                std::fs::write(&path, text)?;
                Some(path)
            }
            None => None,
        };
        let mut c = Cluster {
            config,
            dir: tmp.path().to_path_buf(),
            port: free_ports(routers)?,
            replicas,
            routers,
            extra_env: env
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            child: None,
            _tmp: Some(tmp),
        };
        c.spawn().await?;
        Ok(c)
    }

    /// Starts (or restarts) the process on the same data directory.
    pub async fn spawn(&mut self) -> Result<()> {
        let mut cmd = Command::new(binary()?);
        cmd.arg("up")
            .arg("--data-dir")
            .arg(self.dir.join("data"))
            .arg("--listen")
            .arg(format!("127.0.0.1:{}", self.port))
            .arg("--replicas")
            .arg(self.replicas.to_string())
            .arg("--routers")
            .arg(self.routers.to_string());
        if let Some(config) = &self.config {
            cmd.arg("--config").arg(config);
        }
        for (k, v) in &self.extra_env {
            cmd.env(k, v);
        }
        self.child = Some(spawn_logged(&mut cmd, &self.dir.join("tributary.log"))?);
        for r in 0..self.routers {
            wait_for_router(self.port + r)
                .await
                .with_context(|| self.log_tail())?;
        }
        Ok(())
    }

    /// SIGKILLs the process (no chance to clean up).
    pub fn kill9(&mut self) -> Result<()> {
        kill9(&mut self.child)
    }

    /// SIGTERM, then wait for a clean exit.
    pub fn stop(&mut self) -> Result<std::process::ExitStatus> {
        let mut c = self.child.take().context("not running")?;
        Command::new("kill")
            .arg("-TERM")
            .arg(c.id().to_string())
            .status()?;
        Ok(c.wait()?)
    }

    pub fn router_port(&self, i: u16) -> u16 {
        self.port + i
    }

    pub async fn connect(&self, router: u16) -> Result<Client> {
        connect_port(self.router_port(router)).await
    }

    pub fn replica_path(&self, i: usize) -> PathBuf {
        self.dir.join("data").join(format!("replica{}.db", i + 1))
    }

    /// Runs the real `tributary` binary with arguments.
    pub fn tributary(&self, args: &[&str]) -> Result<Output> {
        Ok(Command::new(binary()?).args(args).output()?)
    }

    /// Runs psql against router `i` with `-c` commands, returning stdout+stderr.
    pub fn psql(&self, router: u16, commands: &[&str]) -> Result<String> {
        let mut cmd = Command::new("psql");
        cmd.args([
            "-X",
            "-h",
            "127.0.0.1",
            "-p",
            &self.router_port(router).to_string(),
            "-U",
            "test",
            "-d",
            "test",
        ])
        .args(["-v", "ON_ERROR_STOP=0"]);
        for c in commands {
            cmd.arg("-c").arg(c);
        }
        let out = cmd
            .output()
            .context("running psql (install postgresql-client)")?;
        Ok(format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }

    /// Waits until every replica has applied the whole log.
    pub async fn wait_converged(&self) -> Result<()> {
        let port = self.port;
        eventually(
            Duration::from_secs(60),
            "every replica at the log end",
            || async move {
                let c = connect_port(port).await?;
                let rows = c
                    .simple_query(
                        "SELECT count(*) FROM tributary_replicas WHERE applied_offset = log_end",
                    )
                    .await?;
                let n = rows
                    .iter()
                    .find_map(|m| match m {
                        tokio_postgres::SimpleQueryMessage::Row(r) => {
                            r.get(0).and_then(|v| v.parse::<usize>().ok())
                        }
                        _ => None,
                    })
                    .unwrap_or(0);
                Ok((n == self.replicas).then_some(()))
            },
        )
        .await
    }

    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.dir.join("tributary.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        format!(
            "process log:\n{}",
            lines[lines.len().saturating_sub(30)..].join("\n")
        )
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = self.kill9();
    }
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

/// Sends `sig` (STOP, CONT, …) to a child process, if it runs.
fn signal(child: &Option<Child>, sig: &str) -> Result<()> {
    if let Some(c) = child {
        Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(c.id().to_string())
            .status()?;
    }
    Ok(())
}

/// A tansu broker (Kafka protocol) on a free port, killed on drop.
pub struct Tansu {
    pub port: u16,
    /// Where a durable broker keeps its SQLite storage (`None`: in memory).
    dir: Option<tempfile::TempDir>,
    child: Option<Child>,
}

fn tansu_binary() -> String {
    if let Ok(p) = std::env::var("TANSU") {
        return p;
    }
    let home = std::env::var("CARGO_HOME")
        .ok()
        .or_else(|| std::env::var("HOME").ok().map(|h| format!("{h}/.cargo")))
        .unwrap_or_default();
    let cargo_bin = format!("{home}/bin/tansu");
    if Path::new(&cargo_bin).exists() {
        cargo_bin
    } else {
        "tansu".into()
    }
}

impl Tansu {
    /// A broker keeping its log in memory.
    pub async fn start() -> Result<Tansu> {
        let mut t = Tansu {
            port: free_ports(1)?,
            dir: None,
            child: None,
        };
        t.spawn().await?;
        Ok(t)
    }

    /// A broker keeping its log in an SQLite file (tansu's `libsql`
    /// engine), so it survives being killed and restarted.
    pub async fn start_durable() -> Result<Tansu> {
        let mut t = Tansu {
            port: free_ports(1)?,
            dir: Some(tempfile::tempdir()?),
            child: None,
        };
        t.spawn().await?;
        Ok(t)
    }

    /// Starts (or restarts) the broker process on the same port and storage.
    pub async fn spawn(&mut self) -> Result<()> {
        let url = format!("tcp://127.0.0.1:{}", self.port);
        let mut cmd = Command::new(tansu_binary());
        let engine = match &self.dir {
            Some(dir) => {
                // The engine's path is relative to the working directory.
                cmd.current_dir(dir.path());
                "sqlite://tansu.db"
            }
            None => "memory://tansu/",
        };
        cmd.args([
            "broker",
            "--storage-engine",
            engine,
            "--listener-url",
            &url,
            "--advertised-listener-url",
            &url,
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
        self.child = Some(cmd.spawn().context(
            "starting tansu (cargo install tansu --locked --features dynostore,libsql)",
        )?);
        let port = self.port;
        eventually(Duration::from_secs(30), "tansu to listen", || async move {
            Ok(std::net::TcpStream::connect(("127.0.0.1", port))
                .ok()
                .map(|_| ()))
        })
        .await
    }

    /// SIGKILLs the broker (a durable one keeps its log for `spawn`).
    pub fn kill9(&mut self) -> Result<()> {
        kill9(&mut self.child)
    }

    pub fn brokers(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Does to a stopped durable broker what Kafka's retention does: deletes
    /// `topic`'s records before `offset` and moves its low watermark there
    /// (tansu implements neither retention nor DeleteRecords, but its
    /// SQLite engine stores both, so this is the same end state).
    pub fn delete_records_before(&self, topic: &str, offset: i64) -> Result<()> {
        let dir = self
            .dir
            .as_ref()
            .context("only a durable broker keeps records in a file")?;
        let db = rusqlite::Connection::open(dir.path().join("tansu.db"))?;
        let topition = "SELECT tp.id FROM topition tp JOIN topic t ON tp.topic = t.id WHERE t.name = ?1 AND tp.partition = 0";
        let removed = db.execute(
            &format!("DELETE FROM record WHERE topition IN ({topition}) AND offset_id < ?2"),
            rusqlite::params![topic, offset],
        )?;
        let moved = db.execute(
            &format!("UPDATE watermark SET low = ?2 WHERE topition IN ({topition})"),
            rusqlite::params![topic, offset],
        )?;
        anyhow::ensure!(
            removed > 0 && moved == 1,
            "{topic}: removed {removed} records, moved {moved} watermarks"
        );
        Ok(())
    }

    /// A topic configuration value tansu stored (durable broker).
    pub fn topic_config(&self, topic: &str, name: &str) -> Result<Option<String>> {
        let dir = self
            .dir
            .as_ref()
            .context("only a durable broker keeps its state in a file")?;
        let db = rusqlite::Connection::open(dir.path().join("tansu.db"))?;
        Ok(db
            .query_row(
                "SELECT c.value FROM topic_configuration c JOIN topic t ON c.topic = t.id WHERE t.name = ?1 AND c.name = ?2",
                [topic, name],
                |r| r.get(0),
            )
            .ok())
    }

    /// Freezes (SIGSTOP) or thaws (SIGCONT) the broker: unreachable, state kept.
    pub fn signal(&self, sig: &str) -> Result<()> {
        signal(&self.child, sig)
    }
}

impl Drop for Tansu {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .arg("-CONT")
                .arg(c.id().to_string())
                .status();
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A `tributary node` process with its own config and data directory.
pub struct Node {
    pub id: String,
    pub dir: PathBuf,
    pub port: Option<u16>,
    config: PathBuf,
    child: Option<Child>,
}

impl Node {
    /// Writes the node's config; `router` gives it a router on a free port.
    pub fn new(root: &Path, id: &str, brokers: &str, router: bool, extra: &str) -> Result<Node> {
        let dir = root.join(id);
        std::fs::create_dir_all(&dir)?;
        let port = if router { Some(free_ports(1)?) } else { None };
        let config = dir.join("node.toml");
        std::fs::write(
            &config,
            format!(
                "node_id = \"{id}\"\ndata_dir = \"{}\"\n{extra}\n[log]\nbackend = \"kafka\"\n[log.kafka]\nbrokers = \"{brokers}\"\ntimeout_ms = 5000\n[router]\nenabled = {router}\nlisten = \"127.0.0.1:{}\"\n",
                dir.join("data").display(),
                port.unwrap_or(0)
            ),
        )?;
        Ok(Node {
            id: id.to_owned(),
            dir,
            port,
            config,
            child: None,
        })
    }

    pub async fn spawn(&mut self) -> Result<()> {
        let mut cmd = Command::new(binary()?);
        cmd.arg("node").arg("--config").arg(&self.config);
        self.child = Some(spawn_logged(&mut cmd, &self.dir.join("node.log"))?);
        if let Some(port) = self.port {
            wait_for_router(port)
                .await
                .with_context(|| self.log_tail())?;
        }
        Ok(())
    }

    pub fn kill9(&mut self) -> Result<()> {
        kill9(&mut self.child)
    }

    pub fn replica_path(&self) -> PathBuf {
        self.dir.join("data").join(format!("{}.db", self.id))
    }

    /// The node's config file (for `tributary … --config`).
    pub fn config_path(&self) -> &Path {
        &self.config
    }

    /// Freezes (STOP) or thaws (CONT) the node process.
    pub fn signal(&self, sig: &str) -> Result<()> {
        signal(&self.child, sig)
    }

    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.dir.join("node.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        format!(
            "{} log:
{}",
            self.id,
            lines[lines.len().saturating_sub(30)..].join("\n")
        )
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.kill9();
    }
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
