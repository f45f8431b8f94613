//! SQLite work on dedicated threads: a pool of threads, each owning one
//! connection to the router's replica file, fed jobs over a bounded channel.
//! Async code awaits the job's answer and never blocks a runtime thread.

use std::path::Path;
use std::sync::{Arc, Mutex};

use rusqlite::Connection;
use tokio::sync::{mpsc, oneshot};

use crate::error::{Error, Result};

type Job = Box<dyn FnOnce(&mut Connection) + Send>;

/// A set of threads with one connection each.
#[derive(Clone)]
pub struct DbPool {
    tx: mpsc::Sender<Job>,
}

impl DbPool {
    /// Starts `threads` threads; `open` makes each one's connection.
    pub fn start(
        name: &str,
        path: &Path,
        threads: usize,
        open: fn(&Path) -> Result<Connection>,
    ) -> Result<DbPool> {
        let (tx, rx) = mpsc::channel::<Job>(1024);
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..threads {
            let mut conn = open(path)?;
            let rx = rx.clone();
            std::thread::Builder::new()
                .name(format!("{name}-{i}"))
                .spawn(move || {
                    loop {
                        let job = {
                            let mut guard = rx.lock().unwrap_or_else(|p| p.into_inner());
                            guard.blocking_recv()
                        };
                        match job {
                            Some(job) => job(&mut conn),
                            None => break,
                        }
                    }
                })
                .map_err(|e| Error::Internal(format!("cannot start {name} thread: {e}")))?;
        }
        Ok(DbPool { tx })
    }

    /// Runs `f` on one of the pool's connections and returns its result.
    pub async fn run<R, F>(&self, f: F) -> Result<R>
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
}

/// A connection for reads: the replica file in WAL mode, waiting on locks.
pub fn open_reader(path: &Path) -> Result<Connection> {
    let conn = Connection::open(path).map_err(|e| Error::sqlite("opening a read connection", e))?;
    conn.busy_timeout(std::time::Duration::from_secs(30))
        .map_err(|e| Error::sqlite("setting busy_timeout", e))?;
    conn.set_prepared_statement_cache_capacity(256);
    Ok(conn)
}

/// The connection speculative writes run on (always rolled back).
pub fn open_writer(path: &Path) -> Result<Connection> {
    replica::open_connection(path).map_err(|e| Error::Internal(e.to_string()))
}
