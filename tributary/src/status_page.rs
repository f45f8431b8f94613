//! The metrics listener (`[metrics] listen`): Prometheus text at
//! `/metrics`, the node's status as JSON at `/status.json`, and at `/` an
//! HTML status page that polls it (replicas with applied offset, lag and a
//! chart of the last minutes, health, conflicts by kind and strategy, slow
//! queries). The page is one file with its script and styles inline: no
//! external assets.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response, StatusCode};
use metrics_exporter_prometheus::PrometheusHandle;
use replica::ReplicaState;
use router::shared::Shared;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use wal_bus::Log;

const PAGE: &str = include_str!("status_page.html");

/// Slow queries the page lists, newest first, across the node's routers.
const SLOW_SHOWN: usize = 20;

/// What the status is read from.
#[derive(Clone)]
pub struct Source {
    pub metrics: PrometheusHandle,
    pub log: Arc<dyn Log>,
    pub replicas: Vec<Arc<ReplicaState>>,
    pub routers: Vec<Arc<Shared>>,
}

/// Binds the listener now, so a bad address fails start-up.
pub async fn bind(addr: &str) -> anyhow::Result<TcpListener> {
    let addr: SocketAddr = addr.parse().context("metrics.listen")?;
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("serving metrics on {addr}"))
}

/// Serves until `cancel`.
pub async fn serve(listener: TcpListener, source: Source, cancel: CancellationToken) {
    if let Ok(addr) = listener.local_addr() {
        println!("metrics on http://{addr}/metrics, status page on http://{addr}/");
    }
    loop {
        let accepted = tokio::select! {
            _ = cancel.cancelled() => break,
            a = listener.accept() => a,
        };
        let Ok((stream, _)) = accepted else {
            continue;
        };
        let source = source.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let source = source.clone();
                async move { Ok::<_, Infallible>(respond(&source, &req).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                .await;
        });
    }
}

fn reply(status: StatusCode, kind: &str, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    if let Ok(v) = kind.parse() {
        r.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
    }
    r
}

async fn respond<B>(source: &Source, req: &Request<B>) -> Response<Full<Bytes>> {
    match req.uri().path() {
        "/metrics" => reply(
            StatusCode::OK,
            "text/plain; version=0.0.4",
            source.metrics.render(),
        ),
        "/" | "/index.html" => reply(StatusCode::OK, "text/html; charset=utf-8", PAGE),
        "/status.json" => match status(source).await {
            Ok(v) => reply(StatusCode::OK, "application/json", v.to_string()),
            Err(e) => reply(
                StatusCode::INTERNAL_SERVER_ERROR,
                "text/plain",
                format!("{e:#}"),
            ),
        },
        _ => reply(StatusCode::NOT_FOUND, "text/plain", "not found"),
    }
}

/// The node's status: what `/status.json` returns and the page shows.
pub async fn status(source: &Source) -> anyhow::Result<Value> {
    let end = source.log.end();
    let replicas: Vec<Value> = match source.routers.first() {
        Some(router) => router
            .status()
            .into_iter()
            .map(|r| serde_json::to_value(r).unwrap_or(Value::Null))
            .collect(),
        None => source
            .replicas
            .iter()
            .map(|r| {
                let applied = r.applied();
                json!({"name": r.name, "applied_offset": applied, "log_end": end,
                       "lag_records": end.saturating_sub(applied), "state": "running"})
            })
            .collect(),
    };
    let files: Vec<(String, PathBuf)> = source
        .replicas
        .iter()
        .map(|r| (r.name.clone(), r.path.clone()))
        .collect();
    let conflicts = tokio::task::spawn_blocking(move || conflicts(&files)).await??;
    let mut slow: Vec<Value> = source
        .routers
        .iter()
        .flat_map(|r| {
            r.slow.snapshot().into_iter().map(|q| {
                json!({"router": r.name, "at_ms": q.at_ms, "statement": q.statement,
                       "total_ms": q.total_ms, "consistency_wait_ms": q.consistency_wait_ms,
                       "execution_ms": q.execution_ms, "append_ms": q.append_ms,
                       "ack_wait_ms": q.ack_wait_ms, "rows": q.rows, "ok": q.ok,
                       "replica": q.replica, "ack": q.ack, "read": q.read})
            })
        })
        .collect();
    slow.sort_by_key(|q| std::cmp::Reverse(q["at_ms"].as_u64().unwrap_or(0)));
    slow.truncate(SLOW_SHOWN);
    Ok(json!({
        "now_ms": wal_bus::now_ms(),
        "log": {"describe": source.log.describe(), "end": end},
        "routers": source.routers.iter().map(|r| json!({
            "name": r.name, "replica": r.replica.name,
            "slow_query_ms": r.config.slow_query_ms})).collect::<Vec<_>>(),
        "replicas": replicas,
        "conflicts": conflicts,
        "slow_queries": slow,
        "shards": Value::Null,
    }))
}

/// Conflicts recorded by each replica, by kind and strategy.
fn conflicts(files: &[(String, PathBuf)]) -> anyhow::Result<Vec<Value>> {
    let mut out = Vec::new();
    for (name, path) in files {
        let conn = rusqlite::Connection::open_with_flags(
            path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .with_context(|| format!("opening {}", path.display()))?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        let mut stmt = conn.prepare(
            "SELECT kind, strategy, count(*) FROM tributary_conflicts
             GROUP BY kind, strategy ORDER BY count(*) DESC, kind, strategy",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(json!({"replica": name, "kind": r.get::<_, String>(0)?,
                      "strategy": r.get::<_, String>(1)?, "count": r.get::<_, i64>(2)?}))
        })?;
        for row in rows {
            out.push(row?);
        }
    }
    Ok(out)
}
