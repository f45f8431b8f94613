//! Reading a file log's segments from another process (`tributary log tail`)
//! without opening it for writing: no recovery, no truncation, nothing that
//! could race with the process that owns the log.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::log::{LogEntry, Offset};
use crate::segment::{HEADER_LEN, decode_frame, list_segments, segment_path};

/// A forward-only reader over the segment files in a directory.
pub struct DirReader {
    dir: PathBuf,
    max_record: usize,
    base: Offset,
    file: File,
    pos: u64,
    next: Offset,
}

impl DirReader {
    /// Positions the reader at `from` (or the first offset still on disk, if later).
    pub fn open(dir: &Path, from: Offset, max_record: usize) -> Result<DirReader> {
        let bases = list_segments(dir)?;
        let base = bases
            .iter()
            .rev()
            .find(|b| **b <= from)
            .or(bases.first())
            .copied()
            .ok_or_else(|| {
                Error::io(
                    dir,
                    std::io::Error::new(std::io::ErrorKind::NotFound, "no log segments here"),
                )
            })?;
        let path = segment_path(dir, base);
        let file = File::open(&path).map_err(|e| Error::io(&path, e))?;
        let mut reader = DirReader {
            dir: dir.to_path_buf(),
            max_record,
            base,
            file,
            pos: 0,
            next: base,
        };
        while reader.next < from {
            if reader.next_entry()?.is_none() {
                break;
            }
        }
        Ok(reader)
    }

    /// Offset of the next entry.
    pub fn position(&self) -> Offset {
        self.next
    }

    /// The next complete, intact record, or `None` at the current end (a
    /// frame still being written counts as not there yet).
    pub fn next_entry(&mut self) -> Result<Option<LogEntry>> {
        loop {
            let mut header = [0u8; HEADER_LEN];
            let path = segment_path(&self.dir, self.base);
            let got =
                read_up_to(&self.file, &mut header, self.pos).map_err(|e| Error::io(&path, e))?;
            if got == HEADER_LEN {
                let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
                if len <= self.max_record {
                    let mut frame = vec![0u8; HEADER_LEN + len];
                    let got = read_up_to(&self.file, &mut frame, self.pos)
                        .map_err(|e| Error::io(&path, e))?;
                    if got == frame.len()
                        && let Ok(Some((payload, flen))) = decode_frame(&frame, self.max_record)
                    {
                        let entry = LogEntry {
                            offset: self.next,
                            payload: payload.into(),
                        };
                        self.pos += flen as u64;
                        self.next += 1;
                        return Ok(Some(entry));
                    }
                }
            }
            // End of this segment's valid data: move on if a later segment starts here.
            let next_path = segment_path(&self.dir, self.next);
            if self.next != self.base && next_path.exists() {
                self.file = File::open(&next_path).map_err(|e| Error::io(&next_path, e))?;
                self.base = self.next;
                self.pos = 0;
                continue;
            }
            return Ok(None);
        }
    }
}

fn read_up_to(file: &File, buf: &mut [u8], at: u64) -> std::io::Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        match file.read_at(&mut buf[done..], at + done as u64) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}
