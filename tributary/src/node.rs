//! A running node, startable in-process: [`Node::start`] takes the data
//! directory's lock, starts metrics, opens the log (`wal_bus::open`), starts
//! the replicas, applies the configured policy, starts the routers
//! (`router::serve`), snapshots and retention; [`NodeHandle::shutdown`]
//! drains them in reverse. `tributary up` and `tributary node` are this plus
//! a signal handler; tests start a `Node` on port 0.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, bail};
use replica::{ApplierOptions, ReplicaHandle, ReplicaState};
use router::{Shared, SharedOptions};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use wal_bus::{HlcClock, Log};

use crate::config::NodeConfig;

/// One router to start: its origin name, address and the index of the
/// replica (in [`Layout::replicas`]) it reads from and speculates on.
#[derive(Debug, Clone)]
pub struct RouterSpec {
    pub name: String,
    pub listen: SocketAddr,
    pub replica: usize,
}

/// What a node runs: its replicas (name, SQLite file) and routers.
#[derive(Debug, Clone)]
pub struct Layout {
    pub replicas: Vec<(String, PathBuf)>,
    pub routers: Vec<RouterSpec>,
}

impl Layout {
    /// `tributary up`: the configured replicas and routers `r1..rM`, router
    /// i on the listen port + i (every router on its own free port when the
    /// port is 0), round-robin over the replicas.
    pub fn cluster(config: &NodeConfig) -> anyhow::Result<Layout> {
        let first: SocketAddr = config.router.listen.parse().context("router.listen")?;
        let routers = (0..config.router.routers)
            .map(|i| {
                let port = match first.port() {
                    0 => 0,
                    p => p
                        .checked_add(i as u16)
                        .context("router.listen: port + router count passes 65535")?,
                };
                Ok(RouterSpec {
                    name: format!("r{}", i + 1),
                    listen: SocketAddr::new(first.ip(), port),
                    replica: i,
                })
            })
            .collect::<anyhow::Result<_>>()?;
        Ok(Layout {
            replicas: config.replica_paths(),
            routers,
        })
    }

    /// `tributary node`: one replica named after the node (unless
    /// `[[replica]]` lists them) and, if enabled, a router named after it.
    pub fn single(config: &NodeConfig) -> anyhow::Result<Layout> {
        let replicas = if config.replica_list.is_empty() {
            vec![(config.node_id.clone(), config.node_replica_path())]
        } else {
            config.replica_paths()
        };
        let routers = if config.router.enabled {
            vec![RouterSpec {
                name: config.node_id.clone(),
                listen: config.router.listen.parse().context("router.listen")?,
                replica: 0,
            }]
        } else {
            Vec::new()
        };
        Ok(Layout { replicas, routers })
    }
}

/// A router that is serving.
#[derive(Debug, Clone)]
pub struct RouterInfo {
    pub name: String,
    /// The bound address (the real port when the configured one was 0).
    pub addr: SocketAddr,
    pub replica: String,
}

/// Starts nodes.
pub struct Node;

/// A started node: its routers' addresses, its replicas and the log; drop
/// it only after [`NodeHandle::shutdown`].
pub struct NodeHandle {
    pub routers: Vec<RouterInfo>,
    pub replicas: Vec<Arc<ReplicaState>>,
    pub log: Arc<dyn Log>,
    cancel: CancellationToken,
    servers: Vec<JoinHandle<()>>,
    background: JoinHandle<()>,
    appliers: Vec<ReplicaHandle>,
    lock: std::fs::File,
}

impl Node {
    /// Starts everything `layout` names on the log `config` names. Stops
    /// when `shutdown` is cancelled (then call [`NodeHandle::shutdown`] to
    /// wait for the drain). Fails without leaving anything running.
    pub async fn start(
        config: NodeConfig,
        layout: Layout,
        shutdown: CancellationToken,
    ) -> anyhow::Result<NodeHandle> {
        anyhow::ensure!(
            !layout.replicas.is_empty(),
            "a node needs at least one replica (routers read from and speculate on one)"
        );
        let lock = lock_data_dir(&config)?;
        let status_page = match &config.metrics.listen {
            Some(addr) => Some((
                crate::status_page::bind(addr).await?,
                crate::metrics::install()?,
            )),
            None => None,
        };
        let cancel = shutdown.child_token();
        let started = start_parts(&config, &layout, &cancel).await;
        match started {
            Ok((log, appliers, (routers, shared), mut servers)) => {
                let replicas: Vec<_> = appliers.iter().map(|h| h.state.clone()).collect();
                if let Some((listener, metrics)) = status_page {
                    let source = crate::status_page::Source {
                        metrics,
                        log: log.clone(),
                        replicas: replicas.clone(),
                        routers: shared,
                    };
                    servers.push(tokio::spawn(crate::status_page::serve(
                        listener,
                        source,
                        cancel.child_token(),
                    )));
                }
                let background = tokio::spawn(crate::snapshots::periodic(
                    config.clone(),
                    log.clone(),
                    replicas.clone(),
                    cancel.child_token(),
                ));
                Ok(NodeHandle {
                    routers,
                    replicas,
                    log,
                    cancel,
                    servers,
                    background,
                    appliers,
                    lock,
                })
            }
            Err(e) => {
                cancel.cancel();
                Err(e)
            }
        }
    }
}

type Parts = (
    Arc<dyn Log>,
    Vec<ReplicaHandle>,
    (Vec<RouterInfo>, Vec<Arc<Shared>>),
    Vec<JoinHandle<()>>,
);

async fn start_parts(
    config: &NodeConfig,
    layout: &Layout,
    cancel: &CancellationToken,
) -> anyhow::Result<Parts> {
    let local: Vec<String> = layout.replicas.iter().map(|(n, _)| n.clone()).collect();
    let (log, acks) = wal_bus::open(&config.log, &config.log_dir(), &local, cancel)
        .await
        .context("opening the log")?;
    let clock = Arc::new(HlcClock::new()?);
    let snapshot_dir = config.snapshot_dir();
    let mut appliers = Vec::new();
    for (name, path) in &layout.replicas {
        let handle = replica::spawn_applier(ApplierOptions {
            name: name.clone(),
            path: path.clone(),
            log: log.clone(),
            acks: acks.clone(),
            clock: Some(clock.clone()),
            cancel: cancel.child_token(),
            runtime: tokio::runtime::Handle::current(),
            snapshots: Some(snapshot_dir.clone()),
        })
        .with_context(|| format!("starting replica {name}"));
        match handle {
            Ok(h) => appliers.push(h),
            Err(e) => {
                cancel.cancel();
                join_appliers(appliers).await;
                return Err(e);
            }
        }
    }
    let states: Vec<_> = appliers.iter().map(|h| h.state.clone()).collect();
    let opened = async {
        if let Some(file) = &config.conflicts.policy {
            crate::policy_startup::apply(file, &log, &clock, &states[0]).await?;
        }
        if let Some(placement) = &config.placement {
            crate::placement_startup::apply(placement, &log, &clock, &states[0]).await?;
        }
        let mut routers = Vec::new();
        let mut shareds = Vec::new();
        let mut servers = Vec::new();
        for spec in &layout.routers {
            let replica = states[spec.replica % states.len()].clone();
            let shared = Arc::new(Shared::new(SharedOptions {
                name: spec.name.clone(),
                log: log.clone(),
                acks: acks.clone(),
                clock: clock.clone(),
                replica: replica.clone(),
                all_replicas: states.clone(),
                replication: config.replication.clone(),
                config: config.router.clone(),
            })?);
            let listener = TcpListener::bind(spec.listen).await.with_context(|| {
                format!("router {} cannot listen on {}", spec.name, spec.listen)
            })?;
            let addr = listener.local_addr()?;
            tracing::info!(router = %spec.name, %addr, replica = %replica.name, "router listening");
            shareds.push(shared.clone());
            servers.push(tokio::spawn(router::serve(
                listener,
                shared,
                cancel.child_token(),
            )));
            routers.push(RouterInfo {
                name: spec.name.clone(),
                addr,
                replica: replica.name.clone(),
            });
        }
        anyhow::Ok(((routers, shareds), servers))
    }
    .await;
    match opened {
        Ok((routers, servers)) => Ok((log, appliers, routers, servers)),
        Err(e) => {
            cancel.cancel();
            join_appliers(appliers).await;
            Err(e)
        }
    }
}

fn lock_data_dir(config: &NodeConfig) -> anyhow::Result<std::fs::File> {
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("creating data directory {}", config.data_dir.display()))?;
    let lock_path = config.data_dir.join("LOCK");
    let lock = std::fs::File::create(&lock_path)
        .with_context(|| format!("creating {}", lock_path.display()))?;
    if lock.try_lock().is_err() {
        bail!(
            "{} is in use by another tributary process (lock {})",
            config.data_dir.display(),
            lock_path.display()
        );
    }
    Ok(lock)
}

async fn join_appliers(appliers: Vec<ReplicaHandle>) {
    let joined = tokio::task::spawn_blocking(move || {
        for r in appliers {
            r.join();
        }
    })
    .await;
    if let Err(e) = joined {
        tracing::error!(error = %e, "a replica thread panicked while stopping");
    }
}

impl NodeHandle {
    /// The first router's address.
    pub fn router_addr(&self) -> Option<SocketAddr> {
        self.routers.first().map(|r| r.addr)
    }

    /// Resolves when the node's shutdown token has been cancelled.
    pub async fn stopping(&self) {
        self.cancel.cancelled().await
    }

    /// Stops accepting clients, drains connections (bounded by the routers'
    /// grace period), stops snapshots and the replicas, then releases the
    /// data directory.
    pub async fn shutdown(self) {
        self.cancel.cancel();
        for s in self.servers {
            if let Err(e) = s.await {
                tracing::error!(error = %e, "a router task failed while stopping");
            }
        }
        if let Err(e) = self.background.await {
            tracing::error!(error = %e, "the snapshot task failed while stopping");
        }
        join_appliers(self.appliers).await;
        drop(self.log);
        drop(self.lock);
    }
}
