//! `tributary up` (the whole cluster in one process) and `tributary node`
//! (one replica and, if enabled, one router of a multi-process cluster).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, bail};
use router::config::NodeConfig;
use router::core::RouterCore;
use router::handler::Handlers;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use wal_bus::{AckBoard, FileLog, HlcClock, KafkaAcks, KafkaLog, Log};

use crate::UpArgs;

/// Loads the config file and applies the command-line flags over it.
fn config_from(args: &UpArgs) -> anyhow::Result<NodeConfig> {
    let mut config = NodeConfig::load(args.config.as_deref())?;
    if let Some(d) = &args.data_dir {
        config.data_dir = d.clone();
    }
    if let Some(n) = args.replicas {
        if !config.replica_list.is_empty() {
            bail!("--replicas conflicts with the [[replica]] list in the config file");
        }
        config.replicas = n;
    }
    if let Some(m) = args.routers {
        config.router.routers = m;
    }
    if let Some(l) = args.listen {
        config.router.listen = l.to_string();
    }
    if let Some(a) = args.ack {
        config.replication.ack = a;
    }
    if let Some(p) = &args.policy {
        config.conflicts.policy = Some(p.clone());
    }
    if let Some(m) = args.metrics {
        config.metrics.listen = Some(m.to_string());
    }
    config
        .validate()
        .map_err(|(key, reason)| anyhow::anyhow!("command line: {key}: {reason}"))?;
    Ok(config)
}

/// `tributary up`: N replicas and M routers named r1..rM.
pub async fn run(args: UpArgs) -> anyhow::Result<()> {
    let config = config_from(&args)?;
    let first: SocketAddr = config.router.listen.parse().context("router.listen")?;
    let routers = (0..config.router.routers)
        .map(|i| {
            (
                format!("r{}", i + 1),
                SocketAddr::new(first.ip(), first.port() + i as u16),
                i,
            )
        })
        .collect();
    let replicas = config.replica_paths();
    serve_node(config, replicas, routers).await
}

/// `tributary node --config FILE`: one replica (named after the node unless
/// `[[replica]]` says otherwise) and a router named after the node.
pub async fn run_node(config_file: PathBuf) -> anyhow::Result<()> {
    let config = NodeConfig::load(Some(&config_file))?;
    let replicas = if config.replica_list.is_empty() {
        vec![(
            config.node_id.clone(),
            config.data_dir.join(format!("{}.db", config.node_id)),
        )]
    } else {
        config.replica_paths()
    };
    let routers = if config.router.enabled {
        let addr: SocketAddr = config.router.listen.parse().context("router.listen")?;
        vec![(config.node_id.clone(), addr, 0)]
    } else {
        Vec::new()
    };
    serve_node(config, replicas, routers).await
}

/// Opens the log, starts the replicas and routers, serves until a signal.
async fn serve_node(
    config: NodeConfig,
    replica_paths: Vec<(String, PathBuf)>,
    routers: Vec<(String, SocketAddr, usize)>,
) -> anyhow::Result<()> {
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

    if let Some(addr) = &config.metrics.listen {
        let addr: SocketAddr = addr.parse().context("metrics.listen")?;
        metrics_exporter_prometheus::PrometheusBuilder::new()
            .with_http_listener(addr)
            .set_buckets(&[
                0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                1.0, 2.5, 5.0, 10.0,
            ])
            .context("metrics buckets")?
            .set_buckets_for_metric(
                metrics_exporter_prometheus::Matcher::Full(
                    "tributary_log_group_commit_records".into(),
                ),
                &[
                    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 4096.0,
                ],
            )
            .context("metrics buckets")?
            .install()
            .with_context(|| format!("serving metrics on {addr}"))?;
        println!("metrics on http://{addr}/metrics");
    }
    let acks = Arc::new(AckBoard::default());
    let local_names: Vec<String> = replica_paths.iter().map(|(n, _)| n.clone()).collect();
    let (log, _kafka_acks): (Arc<dyn Log>, Option<KafkaAcks>) = match config.log.backend.as_str() {
        "kafka" => {
            let log = KafkaLog::open(&config.log).await?;
            let k = KafkaAcks::start(&config.log, acks.clone(), local_names.clone())?;
            (log, Some(k))
        }
        _ => (
            Arc::new(FileLog::open(&config.log_dir(), &config.log)?),
            None,
        ),
    };
    let clock = Arc::new(HlcClock::new()?);
    let cancel = CancellationToken::new();

    let mut replicas = Vec::new();
    for (name, path) in &replica_paths {
        let handle = replica::spawn_applier(
            name,
            path,
            log.clone(),
            acks.clone(),
            Some(clock.clone()),
            cancel.child_token(),
            tokio::runtime::Handle::current(),
            Some(&config.snapshot_dir()),
        )
        .with_context(|| format!("starting replica {name}"))?;
        replicas.push(handle);
    }
    let states: Vec<_> = replicas.iter().map(|h| h.state.clone()).collect();
    if let Some(file) = &config.conflicts.policy
        && let Err(e) = crate::cli_policy::apply_at_startup(file, &log, &clock, &states[0]).await
    {
        cancel.cancel();
        return Err(e);
    }

    let mut servers = Vec::new();
    for (name, addr, replica_index) in &routers {
        let replica = states[replica_index % states.len()].clone();
        let core = Arc::new(RouterCore::new(
            name.clone(),
            log.clone(),
            acks.clone(),
            clock.clone(),
            replica.clone(),
            states.clone(),
            config.replication.clone(),
            config.router.clone(),
        )?);
        let listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("router {name} cannot listen on {addr}"))?;
        tracing::info!(router = %core.name, %addr, replica = %replica.name, "router listening");
        println!(
            "router {name} listening on {addr} (replica {}, {})",
            replica.name,
            replica.path.display()
        );
        servers.push(tokio::spawn(serve(listener, core, cancel.child_token())));
    }
    let background = tokio::spawn(crate::cli_snapshot::periodic(
        config.clone(),
        log.clone(),
        states.clone(),
        cancel.child_token(),
    ));
    println!(
        "tributary: {} replicas, {} routers, log {}, ack {}; Ctrl-C stops",
        states.len(),
        routers.len(),
        log.describe(),
        config.replication.ack
    );

    shutdown_signal().await;
    tracing::info!("shutting down");
    cancel.cancel();
    for s in servers {
        let _ = s.await;
    }
    let _ = background.await;
    tokio::task::spawn_blocking(move || {
        for r in replicas {
            r.join();
        }
    })
    .await?;
    drop(lock);
    Ok(())
}

async fn serve(listener: TcpListener, core: Arc<RouterCore>, cancel: CancellationToken) {
    loop {
        let accepted = tokio::select! {
            _ = cancel.cancelled() => break,
            a = listener.accept() => a,
        };
        match accepted {
            Ok((socket, peer)) => {
                let _ = socket.set_nodelay(true);
                let Ok(permit) = core.connections.clone().try_acquire_owned() else {
                    metrics::counter!("tributary_router_connections_refused_total", "router" => core.name.clone()).increment(1);
                    tracing::warn!(%peer, limit = core.config.max_connections, "refusing a connection: max_connections reached");
                    let message = format!(
                        "sorry, too many clients already (router {} allows max_connections = {})",
                        core.name, core.config.max_connections
                    );
                    tokio::spawn(router::conn::refuse(socket, "53300", message));
                    continue;
                };
                let handlers = Handlers::new(core.clone());
                tokio::spawn(async move {
                    if let Err(e) = router::conn::serve_client(socket, handlers).await {
                        tracing::debug!(%peer, error = %e, "connection ended with an error");
                    }
                    drop(permit);
                });
            }
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => {
            let _ = ctrl_c.await;
            return;
        }
    };
    tokio::select! {
        _ = ctrl_c => {},
        _ = term.recv() => {},
    }
}
