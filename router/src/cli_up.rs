//! `tributary up`: the whole cluster in one process on the embedded log.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{Context, bail};
use router::config::NodeConfig;
use router::core::RouterCore;
use router::handler::Handlers;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use wal_bus::{AckBoard, FileLog, HlcClock, Log};

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
    config
        .validate()
        .map_err(|(key, reason)| anyhow::anyhow!("command line: {key}: {reason}"))?;
    Ok(config)
}

pub async fn run(args: UpArgs) -> anyhow::Result<()> {
    let config = config_from(&args)?;
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

    let log: Arc<dyn Log> = Arc::new(FileLog::open(&config.log_dir(), &config.log)?);
    let acks = Arc::new(AckBoard::default());
    let clock = Arc::new(HlcClock::new()?);
    let cancel = CancellationToken::new();

    let mut replicas = Vec::new();
    for (name, path) in config.replica_paths() {
        let handle = replica::spawn_applier(
            &name,
            &path,
            log.clone(),
            acks.clone(),
            Some(clock.clone()),
            cancel.child_token(),
            tokio::runtime::Handle::current(),
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

    let first: SocketAddr = config.router.listen.parse().context("router.listen")?;
    let mut servers = Vec::new();
    for i in 0..config.router.routers {
        let addr = SocketAddr::new(first.ip(), first.port() + i as u16);
        let replica = states[i % states.len()].clone();
        let core = Arc::new(RouterCore::new(
            format!("r{}", i + 1),
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
            .with_context(|| format!("router r{} cannot listen on {addr}", i + 1))?;
        tracing::info!(router = %core.name, %addr, replica = %replica.name, "router listening");
        println!(
            "router {} listening on {addr} (replica {}, {})",
            core.name,
            replica.name,
            replica.path.display()
        );
        servers.push(tokio::spawn(serve(listener, core, cancel.child_token())));
    }
    println!(
        "tributary up: {} replicas, {} routers, log {}, ack {}; Ctrl-C stops",
        states.len(),
        config.router.routers,
        log.describe(),
        config.replication.ack
    );

    shutdown_signal().await;
    tracing::info!("shutting down");
    cancel.cancel();
    for s in servers {
        let _ = s.await;
    }
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
                let handlers = Handlers::new(core.clone());
                tokio::spawn(async move {
                    if let Err(e) = pgwire::tokio::process_socket(socket, None, handlers).await {
                        tracing::debug!(%peer, error = %e, "connection ended with an error");
                    }
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
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
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
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
