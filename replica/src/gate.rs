//! The write gate: held by whoever writes to a replica file in this process
//! (its applier, a router's speculation), handed over fairly.
//!
//! SQLite's own busy handler sleeps 1, 2, 5 … ms between retries; waiting on
//! a mutex wakes the next writer at once. The hand-over must be fair: a
//! router's speculation thread runs jobs back to back and, with an ordinary
//! mutex, re-took the gate before the parked applier woke, so the applier
//! fell ~18 records behind at 1,500 writes/s and every speculation replayed
//! them (measured with the `tributary_router_overlay_records` histogram).

use parking_lot::{Mutex, MutexGuard};

/// A mutex whose release hands it to the longest-waiting thread.
#[derive(Debug, Default)]
pub struct WriteGate(Mutex<()>);

/// Holding the gate; dropping it hands the gate to the next waiter.
pub struct GateGuard<'a>(Option<MutexGuard<'a, ()>>);

impl WriteGate {
    pub fn lock(&self) -> GateGuard<'_> {
        GateGuard(Some(self.0.lock()))
    }

    pub fn try_lock(&self) -> Option<GateGuard<'_>> {
        self.0.try_lock().map(|g| GateGuard(Some(g)))
    }
}

impl Drop for GateGuard<'_> {
    fn drop(&mut self) {
        if let Some(g) = self.0.take() {
            MutexGuard::unlock_fair(g);
        }
    }
}
