//! When the log end moved: a bounded history of `(wall ms, end)` samples,
//! answering "what was the end at time T" (bounded-staleness reads) and
//! "when was offset N appended" (lag in ms), for every backend.

use crate::wall::now_ms;
use std::collections::VecDeque;
use std::sync::Mutex;

use crate::log::Offset;

/// Samples kept; older ones are dropped (answers then err on the late side).
const KEPT: usize = 65_536;

#[derive(Debug)]
pub(crate) struct EndHistory {
    samples: Mutex<VecDeque<(u64, Offset)>>,
}

impl EndHistory {
    pub fn new(end: Offset) -> Self {
        EndHistory {
            samples: Mutex::new(VecDeque::from([(now_ms(), end)])),
        }
    }

    /// Records that the end is now `end`.
    pub fn record(&self, end: Offset) {
        let mut h = self.samples.lock().unwrap_or_else(|p| p.into_inner());
        if h.len() >= KEPT {
            h.pop_front();
        }
        h.push_back((now_ms(), end));
        metrics::gauge!("tributary_log_end_offset").set(end as f64);
    }

    /// The end at `ts_ms`: the last sample at or before it; before the
    /// window, the oldest sample (later than the truth, so callers over-wait).
    pub fn end_as_of(&self, ts_ms: u64, current: Offset) -> Offset {
        let h = self.samples.lock().unwrap_or_else(|p| p.into_inner());
        let idx = h.partition_point(|(t, _)| *t <= ts_ms);
        match idx.checked_sub(1).and_then(|i| h.get(i)) {
            Some((_, end)) => *end,
            None => h.front().map_or(current, |(_, e)| *e),
        }
    }

    /// When the record at `offset` became part of the log, if remembered.
    pub fn appended_at_ms(&self, offset: Offset) -> Option<u64> {
        let h = self.samples.lock().unwrap_or_else(|p| p.into_inner());
        let idx = h.partition_point(|(_, end)| *end <= offset);
        h.get(idx).map(|(t, _)| *t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_by_time_and_offset() {
        let h = EndHistory::new(0);
        h.record(5);
        let t = now_ms();
        assert!(h.end_as_of(t + 10, 5) >= 5);
        assert_eq!(h.end_as_of(0, 5), 0, "before the window: the oldest sample");
        assert!(h.appended_at_ms(3).is_some());
        assert_eq!(h.appended_at_ms(5), None, "not appended yet");
    }
}
