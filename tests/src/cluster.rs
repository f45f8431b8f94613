//! A `tributary up` cluster under test: the real binary (restartable,
//! killable) or an in-process [`tributary::Node`] on port 0.

use std::path::PathBuf;
use std::process::{Child, Command, Output};
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use tokio_postgres::Client;
use tokio_util::sync::CancellationToken;

use crate::{binary, connect_port, eventually, free_ports, kill9, spawn_logged, wait_for_router};

/// A running `tributary up`.
pub struct Cluster {
    pub dir: PathBuf,
    /// The first router's port.
    pub port: u16,
    pub replicas: usize,
    pub routers: u16,
    extra_env: Vec<(String, String)>,
    /// A node configuration file passed with `--config`, if any.
    pub config: Option<PathBuf>,
    /// Each router's port.
    ports: Vec<u16>,
    child: Option<Child>,
    /// The in-process node and its shutdown token.
    node: Option<(tributary::NodeHandle, CancellationToken)>,
    _tmp: Option<tempfile::TempDir>,
}

impl Cluster {
    /// Runs a driver script, `tests/python/SCRIPT PORT`, against the first
    /// router: it must print `ok`; then every replica holds the same rows.
    pub async fn run_driver(&self, script: &str) -> Result<()> {
        let out = crate::python(script, &[&self.router_port(0).to_string()])?;
        ensure!(out.contains("ok"), "{script}: {out}");
        self.replicas_agree().await
    }

    /// Waits until every replica has applied the whole log, then checks
    /// they all hold the same rows.
    pub async fn replicas_agree(&self) -> Result<()> {
        self.wait_converged().await?;
        let first = crate::dump(&self.replica_path(0))?;
        for i in 1..self.replicas {
            ensure!(
                crate::dump(&self.replica_path(i))? == first,
                "replica {} differs from replica 1",
                i + 1
            );
        }
        Ok(())
    }

    /// Starts a cluster in this process (`tributary::Node`, routers on
    /// port 0), with `config` (TOML text) under the test's settings. For
    /// tests that need no process: no kill -9, no restart.
    pub async fn in_process(
        replicas: usize,
        routers: u16,
        config: Option<&str>,
    ) -> Result<Cluster> {
        let tmp = tempfile::tempdir()?;
        let path = tmp.path().join("node.toml");
        std::fs::write(&path, config.unwrap_or(""))?;
        let mut cfg = tributary::NodeConfig::load(Some(&path))?;
        cfg.data_dir = tmp.path().join("data");
        cfg.replicas = replicas;
        cfg.router.routers = routers as usize;
        cfg.router.listen = "127.0.0.1:0".into();
        cfg.validate()?;
        let layout = tributary::Layout::cluster(&cfg)?;
        let shutdown = CancellationToken::new();
        let node = tributary::Node::start(cfg, layout, shutdown.clone()).await?;
        let ports: Vec<u16> = node.routers.iter().map(|r| r.addr.port()).collect();
        Ok(Cluster {
            dir: tmp.path().to_path_buf(),
            port: ports.first().copied().context("no router started")?,
            replicas,
            routers,
            extra_env: Vec::new(),
            config: Some(path),
            ports,
            child: None,
            node: Some((node, shutdown)),
            _tmp: Some(tmp),
        })
    }

    /// Stops an in-process cluster the way a signal stops the binary:
    /// drains the routers' connections, stops the replicas.
    pub async fn shutdown(mut self) {
        if let Some((node, _)) = self.node.take() {
            node.shutdown().await;
        }
    }

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
        let port = free_ports(routers)?;
        let mut c = Cluster {
            config,
            dir: tmp.path().to_path_buf(),
            port,
            ports: (0..routers).map(|i| port + i).collect(),
            node: None,
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
        anyhow::ensure!(self.node.is_none(), "an in-process cluster cannot restart");
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
        self.ports[i as usize]
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
        if self.node.is_some() {
            return "in-process node: its log lines are the test's".into();
        }
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
        // Without `shutdown().await`: stop accepting and applying now; the
        // tasks end with the test's runtime.
        if let Some((_, token)) = &self.node {
            token.cancel();
        }
    }
}
