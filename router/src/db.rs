//! SQLite work for the async side: a few connections to the router's replica
//! file, each owned by a thread fed jobs over a bounded channel.
//!
//! A job whose connection (and, for writes, the replica's write gate) is free
//! right now runs on the calling task's thread instead: handing a 75 µs
//! speculation to another thread and back cost ~450 µs of wake-ups on this
//! 2-core machine (measured with the router's metrics). Anything that would
//! wait goes to the threads, so a runtime thread never blocks on a lock.

use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, TryLockError};

use rusqlite::Connection;
use tokio::sync::{mpsc, oneshot};

use crate::error::{Error, Result};

type Job = Box<dyn FnOnce(&mut Connection) + Send>;

/// The write gates a pool's jobs run holding, in the order they are
/// taken. Every pool takes gates in the node's replica order, so two
/// routers speculating across shard groups never wait on each other in a
/// cycle.
pub type Gates = Arc<dyn Fn() -> Vec<Arc<replica::WriteGate>> + Send + Sync>;

/// A gate set of one gate.
pub fn one_gate(gate: Arc<replica::WriteGate>) -> Gates {
    Arc::new(move || vec![gate.clone()])
}

thread_local! {
    /// The gates the job running on this thread holds (by address).
    static HELD: std::cell::RefCell<Vec<usize>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Whether the job running on this thread holds `gate` (see [`Gates`]).
pub fn holds_gate(gate: &Arc<replica::WriteGate>) -> bool {
    let addr = Arc::as_ptr(gate) as usize;
    HELD.with(|h| h.borrow().contains(&addr))
}

/// Runs `f` with `gates` recorded as held by this thread.
fn with_held<R>(gates: &[Arc<replica::WriteGate>], f: impl FnOnce() -> R) -> R {
    let addrs: Vec<usize> = gates.iter().map(|g| Arc::as_ptr(g) as usize).collect();
    HELD.with(|h| *h.borrow_mut() = addrs);
    let out = f();
    HELD.with(|h| h.borrow_mut().clear());
    out
}

/// A set of connections, each with a thread.
#[derive(Clone)]
pub struct DbPool {
    tx: mpsc::Sender<Job>,
    conns: Arc<[Arc<Mutex<Connection>>]>,
    gate: Option<Gates>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn try_lock<T>(m: &Mutex<T>) -> Option<MutexGuard<'_, T>> {
    match m.try_lock() {
        Ok(g) => Some(g),
        Err(TryLockError::Poisoned(p)) => Some(p.into_inner()),
        Err(TryLockError::WouldBlock) => None,
    }
}

impl DbPool {
    /// Starts `threads` connections and threads; `open` makes each
    /// connection. With a `gate`, every job runs holding it (see
    /// `ReplicaState::write_gate`).
    pub fn start(
        name: &str,
        path: &Path,
        threads: usize,
        open: fn(&Path) -> Result<Connection>,
        gate: Option<Gates>,
    ) -> Result<DbPool> {
        let (tx, rx) = mpsc::channel::<Job>(1024);
        let rx = Arc::new(Mutex::new(rx));
        let mut conns = Vec::with_capacity(threads);
        for i in 0..threads {
            let conn = Arc::new(Mutex::new(open(path)?));
            conns.push(conn.clone());
            let rx = rx.clone();
            let gate = gate.clone();
            std::thread::Builder::new()
                .name(format!("{name}-{i}"))
                .spawn(move || {
                    loop {
                        let job = lock(&rx).blocking_recv();
                        let Some(job) = job else { break };
                        let gates = gate.as_deref().map(|g| g()).unwrap_or_default();
                        let _held: Vec<replica::GateGuard<'_>> =
                            gates.iter().map(|g| g.lock()).collect();
                        with_held(&gates, || job(&mut lock(&conn)));
                    }
                })
                .map_err(|e| Error::Internal(format!("cannot start {name} thread: {e}")))?;
        }
        Ok(DbPool {
            tx,
            conns: conns.into(),
            gate,
        })
    }

    /// Runs `f` here when a connection (and the gate) is free right now;
    /// gives `f` back otherwise.
    fn try_inline<R, F>(&self, f: F) -> std::result::Result<R, F>
    where
        F: FnOnce(&mut Connection) -> R,
    {
        let gates = self.gate.as_deref().map(|g| g()).unwrap_or_default();
        let mut held = Vec::with_capacity(gates.len());
        for g in &gates {
            match g.try_lock() {
                Some(guard) => held.push(guard),
                None => return Err(f),
            }
        }
        match self.conns.iter().find_map(|c| try_lock(c)) {
            Some(mut conn) => Ok(with_held(&gates, || f(&mut conn))),
            None => Err(f),
        }
    }

    /// Runs `f` on one of the pool's connections and returns its result.
    pub async fn run<R, F>(&self, f: F) -> Result<R>
    where
        R: Send + 'static,
        F: FnOnce(&mut Connection) -> R + Send + 'static,
    {
        let f = match self.try_inline(f) {
            Ok(out) => return Ok(out),
            Err(f) => f,
        };
        let (done, rx) = oneshot::channel();
        let job: Job = Box::new(move |conn| {
            let _ = done.send(f(conn));
        });
        self.tx
            .send(job)
            .await
            .map_err(|_| Error::Internal("database thread stopped".into()))?;
        rx.await
            .map_err(|_| Error::Internal("database thread stopped mid-job".into()))
    }
}

impl DbPool {
    /// As [`DbPool::run`], always on a pool thread (for a job that blocks
    /// on something other than SQLite, such as a peer router).
    pub async fn run_on_thread<R, F>(&self, f: F) -> Result<R>
    where
        R: Send + 'static,
        F: FnOnce(&mut Connection) -> R + Send + 'static,
    {
        let (done, rx) = oneshot::channel();
        let job: Job = Box::new(move |conn| {
            let _ = done.send(f(conn));
        });
        self.tx
            .send(job)
            .await
            .map_err(|_| Error::Internal("database thread stopped".into()))?;
        rx.await
            .map_err(|_| Error::Internal("database thread stopped mid-job".into()))
    }

    /// As [`DbPool::run`], always on a pool thread and with `pg_sleep`
    /// allowed (see `sleep.rs`).
    pub async fn run_sleeping<R, F>(&self, f: F) -> Result<R>
    where
        R: Send + 'static,
        F: FnOnce(&mut Connection) -> R + Send + 'static,
    {
        self.run_on_thread(move |conn| crate::sleep::allowing(|| f(conn)))
            .await
    }
}

/// A connection for reads: the replica file in WAL mode, waiting on locks.
pub fn open_reader(path: &Path) -> Result<Connection> {
    let conn = Connection::open(path).map_err(|e| Error::sqlite("opening a read connection", e))?;
    conn.busy_timeout(std::time::Duration::from_secs(30))
        .map_err(|e| Error::sqlite("setting busy_timeout", e))?;
    conn.set_prepared_statement_cache_capacity(256);
    replica::set_mmap(&conn).map_err(|e| Error::sqlite("mapping the database file", e))?;
    postgres_semantics(&conn)?;
    Ok(conn)
}

/// What every router connection needs to answer as PostgreSQL does: its
/// functions (and casts), and a case-sensitive `LIKE`.
fn postgres_semantics(conn: &Connection) -> Result<()> {
    crate::functions::register(conn).map_err(|e| Error::sqlite("registering functions", e))?;
    crate::catalog::attach(conn)?;
    // The views a read fills when it names them; here so that describing
    // a statement over them (extended protocol) finds their columns.
    crate::status::refresh_status_table(conn, &[])?;
    crate::slow_query::refresh_view(conn, &[])?;
    crate::placement::view::refresh(conn, 0, &Default::default())?;
    conn.pragma_update(None, "case_sensitive_like", true)
        .map_err(|e| Error::sqlite("making LIKE case-sensitive", e))
}

/// The connection speculative writes run on (always rolled back). It
/// enforces foreign keys, which replicas' apply does not (see
/// `foreign_key`).
pub fn open_writer(path: &Path) -> Result<Connection> {
    let conn = replica::open_connection(path)?;
    postgres_semantics(&conn)?;
    conn.pragma_update(None, "foreign_keys", true)
        .map_err(|e| Error::sqlite("enforcing foreign keys", e))?;
    Ok(conn)
}
