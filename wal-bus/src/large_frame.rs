//! Reading one large record (over 1 MiB) from a segment: straight into the
//! entry's shared buffer, and once for all the readers that want it at the
//! same time. A batch read would hold the frame twice (the read buffer and
//! the entry's copy), and each replica of a process would hold its own.

use std::sync::{Arc, Mutex, Weak};

use crate::error::{Error, Result};
use crate::log::{LogEntry, Offset};
use crate::segment::{HEADER_LEN, Segment, check_payload, frame_payload_len};

/// Frames larger than this are read on their own, by `LargeReads`.
pub(crate) const LARGE_FRAME_BYTES: u64 = 1 << 20;

/// The large record most recently read, while some reader still holds it.
#[derive(Default)]
pub(crate) struct LargeReads {
    last: Mutex<Option<(Offset, Weak<[u8]>)>>,
}

impl LargeReads {
    /// The record at `offset`, whose frame starts at byte `at` of `seg`.
    /// Readers asking while another is reading it wait and share its copy.
    pub fn read(
        &self,
        seg: &Segment,
        offset: Offset,
        at: u64,
        max_record: usize,
    ) -> Result<LogEntry> {
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((held_at, held)) = last.as_ref()
            && *held_at == offset
            && let Some(payload) = held.upgrade()
        {
            return Ok(LogEntry { offset, payload });
        }
        let entry = read_frame(seg, offset, at, max_record)?;
        *last = Some((offset, Arc::downgrade(&entry.payload)));
        Ok(entry)
    }
}

fn read_frame(seg: &Segment, offset: Offset, at: u64, max_record: usize) -> Result<LogEntry> {
    let corrupt = |reason: String| Error::Corrupt { offset, reason };
    let mut header = [0u8; HEADER_LEN];
    seg.read_exact_at(&mut header, at)?;
    let len = frame_payload_len(&header, max_record).map_err(corrupt)?;
    let mut payload: Arc<[u8]> = std::iter::repeat_n(0u8, len).collect();
    let buf = Arc::get_mut(&mut payload)
        .ok_or_else(|| corrupt("payload buffer shared while being read".into()))?;
    seg.read_exact_at(buf, at + HEADER_LEN as u64)?;
    check_payload(&header, &payload).map_err(corrupt)?;
    Ok(LogEntry { offset, payload })
}
