//! Forwarding to peers: the part of a statement that needs a shard group
//! with no replica in this process runs on a router of a node that has
//! one (`[router.peers]`), over pgwire, as `SELECT tributary.peer('<json>')`.
//!
//! - `read`: the peer holds its replica of the group at the log offset the
//!   caller chose (every group of a read is read at one offset), runs the
//!   per-group SQL there and answers the rows, or says where its replica
//!   already is when that is past the offset (the caller tries again
//!   there).
//! - `speculate`: the peer replays the caller's queued records its replica
//!   has not applied (by their HLCs) and the caller's open block, both
//!   through the group's filter, runs the statement inside a transaction it
//!   rolls back, and answers the row changes. It waits only briefly for
//!   its replica's write gate: the caller holds its own gates while it
//!   waits, and a peer doing the same the other way round would deadlock;
//!   a busy answer makes the caller release everything and run the
//!   statement again.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rusqlite::types::Value as SqlValue;
use serde::{Deserialize, Serialize};
use wal_bus::{Change, Hlc, Value};

use crate::error::{Error, Result};
use crate::exec::ResultSet;
use crate::write_order::Replay;

/// What a caller asks a peer.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "lowercase")]
pub enum Request {
    Read {
        group: usize,
        sql: String,
        params: Vec<Value>,
        at: u64,
    },
    Speculate {
        group: usize,
        /// The caller's router name (the origin of its queued records).
        origin: String,
        /// The peer's replica must have applied this much first.
        floor: u64,
        overlay: Vec<(Hlc, ReplayWire)>,
        prior: Vec<StepWire>,
        sql: String,
        params: Vec<Value>,
    },
}

/// A queued record as the overlay replays it.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReplayWire {
    Rows(Vec<Change>),
    Ddl(String),
    Block(Vec<ReplayWire>),
}

/// A step of the caller's open block.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StepWire {
    Rows(Vec<Change>),
    Ddl(String),
}

/// Rows as they cross between routers.
#[derive(Debug, Serialize, Deserialize)]
pub struct RowsWire {
    pub columns: Vec<String>,
    pub decl_types: Vec<Option<String>>,
    pub rows: Vec<Vec<Value>>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReadAnswer {
    /// The replica is already past the offset asked for.
    Moved(u64),
    Rows(RowsWire),
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SpecAnswer {
    /// The replica's write gate stayed taken: run the statement again.
    Busy,
    Done {
        changes: Vec<Change>,
        affected: usize,
        result: Option<RowsWire>,
    },
}

impl From<&Replay> for ReplayWire {
    fn from(r: &Replay) -> Self {
        match r {
            Replay::Rows(c) => ReplayWire::Rows(c.to_vec()),
            Replay::Ddl(s) => ReplayWire::Ddl(s.to_string()),
            Replay::Block(steps) => ReplayWire::Block(steps.iter().map(Into::into).collect()),
        }
    }
}

impl From<ReplayWire> for Replay {
    fn from(r: ReplayWire) -> Self {
        match r {
            ReplayWire::Rows(c) => Replay::Rows(c.into()),
            ReplayWire::Ddl(s) => Replay::Ddl(s.into()),
            ReplayWire::Block(steps) => {
                Replay::Block(steps.into_iter().map(Into::into).collect::<Vec<_>>().into())
            }
        }
    }
}

impl From<ResultSet> for RowsWire {
    fn from(r: ResultSet) -> Self {
        RowsWire {
            columns: r.columns,
            decl_types: r.decl_types,
            rows: r
                .rows
                .iter()
                .map(|row| {
                    row.iter()
                        .map(|v| replica::from_value_ref(v.into()))
                        .collect()
                })
                .collect(),
        }
    }
}

impl From<RowsWire> for ResultSet {
    fn from(r: RowsWire) -> Self {
        ResultSet {
            columns: r.columns,
            decl_types: r.decl_types,
            rows: r
                .rows
                .iter()
                .map(|row| row.iter().map(replica::to_sql_value).collect())
                .collect(),
        }
    }
}

/// Parameters as they cross between routers.
pub fn wire_params(params: &[SqlValue]) -> Vec<Value> {
    params
        .iter()
        .map(|v| replica::from_value_ref(v.into()))
        .collect()
}

/// Connections to peer routers, kept between calls.
pub struct Peers {
    addrs: BTreeMap<String, String>,
    user: String,
    password: Option<String>,
    idle: Mutex<HashMap<String, Vec<tokio_postgres::Client>>>,
}

/// SQLSTATEs a peer's error keeps (others become XX000).
fn known_state(code: &str) -> &'static str {
    match code {
        "40001" => "40001",
        "40P01" => "40P01",
        "0A000" => "0A000",
        "57014" => "57014",
        "23505" => "23505",
        "23502" => "23502",
        "23503" => "23503",
        "22003" => "22003",
        "55P03" => "55P03",
        _ => "XX000",
    }
}

impl Peers {
    pub fn new(config: &crate::config::RouterConfig) -> Peers {
        Peers {
            addrs: config.peers.clone(),
            user: config.peer_user.clone(),
            password: config.peer_password.clone(),
            idle: Mutex::new(HashMap::new()),
        }
    }

    /// The address of a peer router running one of `replicas`.
    pub fn address_for(&self, replicas: &[String]) -> Option<String> {
        replicas.iter().find_map(|r| self.addrs.get(r).cloned())
    }

    async fn connect(&self, addr: &str) -> Result<tokio_postgres::Client> {
        let (host, port) = addr
            .rsplit_once(':')
            .and_then(|(h, p)| p.parse::<u16>().ok().map(|p| (h, p)))
            .ok_or_else(|| Error::Internal(format!("peer address {addr:?} is not host:port")))?;
        let mut config = tokio_postgres::Config::new();
        config
            .host(host)
            .port(port)
            .user(&self.user)
            .dbname("tributary");
        if let Some(p) = &self.password {
            config.password(p);
        }
        let (client, conn) =
            config
                .connect(tokio_postgres::NoTls)
                .await
                .map_err(|e| Error::Peer {
                    peer: addr.to_owned(),
                    sqlstate: "08001",
                    message: e.to_string(),
                })?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(client)
    }

    /// Sends `request` to the router at `addr`; returns its answer.
    pub async fn call<T: for<'de> Deserialize<'de>>(
        &self,
        addr: &str,
        request: &Request,
    ) -> Result<T> {
        let pooled = self
            .idle
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get_mut(addr)
            .and_then(Vec::pop)
            .filter(|c| !c.is_closed());
        let client = match pooled {
            Some(c) => c,
            None => self.connect(addr).await?,
        };
        let json = serde_json::to_string(request)
            .map_err(|e| Error::Internal(format!("encoding a peer request: {e}")))?;
        let sql = format!("SELECT tributary.peer('{}')", json.replace('\'', "''"));
        let msgs = client.simple_query(&sql).await.map_err(|e| Error::Peer {
            peer: addr.to_owned(),
            sqlstate: e.code().map_or("08006", |c| known_state(c.code())),
            message: e
                .as_db_error()
                .map_or_else(|| e.to_string(), |d| d.message().to_owned()),
        })?;
        self.idle
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(addr.to_owned())
            .or_default()
            .push(client);
        let text = msgs
            .iter()
            .find_map(|m| match m {
                tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_owned),
                _ => None,
            })
            .ok_or_else(|| Error::Internal(format!("peer {addr} answered no row")))?;
        serde_json::from_str(&text)
            .map_err(|e| Error::Internal(format!("peer {addr} answered {text:?}: {e}")))
    }
}

/// Takes `gate` within a short wait, or gives up (see the module docs).
pub fn gate_briefly(gate: &replica::WriteGate) -> Option<replica::GateGuard<'_>> {
    let deadline = Instant::now() + Duration::from_millis(200);
    loop {
        if let Some(g) = gate.try_lock() {
            return Some(g);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// The peer's replica of `group` (in this process).
pub fn local_replica(
    shared: &crate::shared::Shared,
    placement: &wal_bus::Placement,
    group: usize,
) -> Result<Arc<replica::ReplicaState>> {
    let groups = super::group_replicas(placement, &shared.replica, &shared.all_replicas);
    groups
        .get(group)
        .copied()
        .flatten()
        .map(|i| shared.all_replicas[i].clone())
        .ok_or_else(|| Error::Unsupported {
            what: format!("a forwarded statement for shard group {} here", group + 1),
            why: "this node runs no replica of that group; check [router.peers]".into(),
        })
}
