//! The accept loop: one task per client connection, tracked, refused past
//! `max_connections`, and drained on shutdown.

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::handler::Handlers;
use crate::shared::Shared;

/// How long connections may take to finish the statement they are running
/// once shutdown begins; idle ones close at once (57P01, as PostgreSQL's
/// smart shutdown tells them). Past it, the remaining tasks are aborted.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Serves clients on `listener` until `shutdown` fires, then stops
/// accepting and drains the open connections (see [`SHUTDOWN_GRACE`]).
pub async fn serve(listener: TcpListener, shared: Arc<Shared>, shutdown: CancellationToken) {
    let mut conns = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => break,
            Some(_) = conns.join_next(), if !conns.is_empty() => continue,
            a = listener.accept() => a,
        };
        match accepted {
            Ok((socket, peer)) => {
                let _ = socket.set_nodelay(true);
                let Ok(permit) = shared.connections.clone().try_acquire_owned() else {
                    metrics::counter!("tributary_router_connections_refused_total", "router" => shared.name.clone()).increment(1);
                    tracing::warn!(%peer, limit = shared.config.max_connections, "refusing a connection: max_connections reached");
                    let message = format!(
                        "sorry, too many clients already (router {} allows max_connections = {})",
                        shared.name, shared.config.max_connections
                    );
                    conns.spawn(async move {
                        let _ = crate::conn::refuse(socket, "53300", message).await;
                    });
                    continue;
                };
                let handlers = Handlers::new(shared.clone());
                let stop = shutdown.child_token();
                conns.spawn(async move {
                    if let Err(e) = crate::conn::serve_client(socket, handlers, stop).await {
                        tracing::debug!(%peer, error = %e, "connection ended with an error");
                    }
                    drop(permit);
                });
            }
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    drop(listener);
    let open = conns.len();
    let drained = tokio::time::timeout(SHUTDOWN_GRACE, async {
        while conns.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(router = %shared.name, still_open = conns.len(), grace_ms = SHUTDOWN_GRACE.as_millis() as u64,
            "connections still busy after the shutdown grace period; closing them");
        conns.shutdown().await;
    }
    tracing::info!(router = %shared.name, drained = open, "router stopped");
}
