//! `pg_sleep(seconds)`: sleeps the thread running the statement, so it is
//! allowed only where that thread is a read pool's own (never a runtime
//! thread a job was run on inline, never the speculation connection, whose
//! write gate the replica's applier also needs): a read naming `pg_sleep`
//! is queued to the pool (`DbPool::run_sleeping`), anything else gets
//! 0A000. It returns NULL (PostgreSQL's `void`).

use std::cell::Cell;
use std::time::Duration;

use rusqlite::Connection;
use rusqlite::functions::FunctionFlags;

thread_local! {
    static SLEEP_OK: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f` with `pg_sleep` allowed on this thread.
pub fn allowing<R>(f: impl FnOnce() -> R) -> R {
    SLEEP_OK.with(|ok| ok.set(true));
    let out = f();
    SLEEP_OK.with(|ok| ok.set(false));
    out
}

pub fn register(conn: &Connection) -> rusqlite::Result<()> {
    conn.create_scalar_function("pg_sleep", 1, FunctionFlags::SQLITE_UTF8, |ctx| {
        if !SLEEP_OK.with(Cell::get) {
            return Err(rusqlite::Error::UserFunctionError(
                "SQLSTATE 0A000: pg_sleep is supported in a plain read only (not in a write or a transaction block's read)"
                    .into(),
            ));
        }
        let secs: Option<f64> = ctx.get(0)?;
        if let Some(s) = secs.filter(|s| s.is_finite() && *s > 0.0) {
            std::thread::sleep(Duration::from_secs_f64(s.min(86_400.0)));
        }
        Ok(rusqlite::types::Value::Null)
    })
}
