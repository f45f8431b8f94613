//! Kafka deployments under test: a tansu broker (Kafka protocol) and
//! `tributary node` processes sharing it.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result};

use crate::{binary, eventually, free_ports, kill9, spawn_logged, wait_for_router};

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
