//! The `Log` trait every backend implements, log positions, and the tailing
//! subscription built on top of any backend.

use std::sync::Arc;

use async_trait::async_trait;

use crate::error::Result;

/// A position in the log. Record `n` lives at offset `n`; the log's *end* is
/// the offset the next record will get, and a replica's *applied offset* is
/// the offset of the next record it will apply (so "applied ≥ end" means
/// caught up).
pub type Offset = u64;

/// One record as stored: its offset and raw bytes (decode with
/// [`crate::Record::decode`]; raw so a reader can report *which* offset is bad).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEntry {
    pub offset: Offset,
    pub payload: Arc<[u8]>,
}

/// Resolves with a queued record's offset once it is durable.
pub type AppendFuture = std::pin::Pin<Box<dyn std::future::Future<Output = Result<Offset>> + Send>>;

/// A totally ordered, durable log of records.
#[async_trait]
pub trait Log: Send + Sync + 'static {
    /// Appends one record; resolves with its offset only once it is durable
    /// (fsynced or broker-acknowledged).
    async fn append(&self, payload: Vec<u8>) -> Result<Offset> {
        self.enqueue(payload)?.await
    }

    /// Queues one record *now* and returns a future for its durability.
    /// Records queued one after another by one caller land in the log in
    /// the order queued (the router relies on it: a write is computed on
    /// top of the writes it queued before). If a queued record fails, the
    /// records queued after it may still land; the caller decides what that
    /// means for them.
    fn enqueue(&self, payload: Vec<u8>) -> Result<AppendFuture>;

    /// The current end: offset of the next record to be appended.
    fn end(&self) -> Offset;

    /// First offset still readable (older ones may have been removed by retention).
    fn start(&self) -> Offset;

    /// Up to `max_records` durable records starting at `from` (fewer if the
    /// end is reached or `max_bytes` is exceeded; at least one if any exists).
    async fn read(
        &self,
        from: Offset,
        max_records: usize,
        max_bytes: usize,
    ) -> Result<Vec<LogEntry>>;

    /// Resolves once the end is greater than `offset` (a record exists at
    /// `offset`), or the log closes.
    async fn wait_beyond(&self, offset: Offset) -> Result<()>;

    /// The log end as it was at wall-clock time `ts_ms` (ms since the Unix
    /// epoch). May err on the late side (a larger offset), never the early
    /// side, so waiting for it never under-waits.
    fn end_as_of(&self, ts_ms: u64) -> Offset;

    /// When the record at `offset` was appended (ms since the Unix epoch), if known.
    fn appended_at_ms(&self, offset: Offset) -> Option<u64>;

    /// A human-readable description (path or broker) for status output.
    fn describe(&self) -> String;

    /// The largest record an append takes (`log.max_record_bytes`).
    fn max_record_bytes(&self) -> usize {
        usize::MAX
    }

    /// Identifies this log (and so the cluster built on it): replicas and
    /// snapshots remember it and refuse to mix with another cluster's.
    fn cluster_id(&self) -> String;

    /// Deletes whole stored units (segments) holding only records before
    /// `offset`, oldest first, while `keep` says a unit may go (given its
    /// size and age). Returns how many records were removed. Backends whose
    /// retention belongs to someone else (Kafka's broker) remove nothing.
    fn trim_before(&self, _offset: Offset, _keep: &RetentionRule) -> Result<u64> {
        Ok(0)
    }

    /// The backend's own way of tailing from `from`, if it has one (Kafka
    /// consumers); `None` means [`tail`] builds one on `read` + `wait_beyond`.
    fn native_tail(&self, _from: Offset) -> Option<Result<Box<dyn Tail>>> {
        None
    }
}

/// What may be removed: a unit goes when the log is over `max_bytes` or the
/// unit is older than `max_age_ms` (0 means no limit of that kind; both 0
/// means everything the snapshots and replicas no longer need may go).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RetentionRule {
    pub max_bytes: u64,
    pub max_age_ms: u64,
}

impl RetentionRule {
    /// Whether a unit of `unit_age_ms`, in a log of `total_bytes`, may go.
    pub fn allows(&self, total_bytes: u64, unit_age_ms: u64) -> bool {
        if self.max_bytes == 0 && self.max_age_ms == 0 {
            return true;
        }
        (self.max_bytes > 0 && total_bytes > self.max_bytes)
            || (self.max_age_ms > 0 && unit_age_ms > self.max_age_ms)
    }
}

/// A tailing reader: batches of records in order, waking on new ones.
#[async_trait]
pub trait Tail: Send {
    /// Waits for at least one record and returns every record available now.
    async fn next_batch(&mut self) -> Result<Vec<LogEntry>>;
    /// The offset the next batch starts at.
    fn position(&self) -> Offset;
}

/// Tails `log` from `from` with the backend's best mechanism.
pub fn tail(log: Arc<dyn Log>, from: Offset) -> Result<Box<dyn Tail>> {
    match log.native_tail(from) {
        Some(t) => t,
        None => Ok(Box::new(
            Subscription::new(log, from).with_batch_limits(8192, 32 << 20),
        )),
    }
}

/// Tails a log from an offset, waking on new records instead of polling.
pub struct Subscription {
    log: Arc<dyn Log>,
    next: Offset,
    max_records: usize,
    max_bytes: usize,
}

#[async_trait]
impl Tail for Subscription {
    async fn next_batch(&mut self) -> Result<Vec<LogEntry>> {
        Subscription::next_batch(self).await
    }

    fn position(&self) -> Offset {
        self.next
    }
}

impl Subscription {
    pub fn new(log: Arc<dyn Log>, from: Offset) -> Self {
        Subscription {
            log,
            next: from,
            max_records: 4096,
            max_bytes: 16 << 20,
        }
    }

    /// Caps how much one [`Subscription::next_batch`] returns.
    pub fn with_batch_limits(mut self, max_records: usize, max_bytes: usize) -> Self {
        self.max_records = max_records.max(1);
        self.max_bytes = max_bytes.max(1);
        self
    }

    /// The offset the next batch starts at.
    pub fn position(&self) -> Offset {
        self.next
    }

    /// Waits for at least one record at or after the position and returns
    /// every record available now (up to the batch limits).
    pub async fn next_batch(&mut self) -> Result<Vec<LogEntry>> {
        loop {
            let batch = self
                .log
                .read(self.next, self.max_records, self.max_bytes)
                .await?;
            if let Some(last) = batch.last() {
                self.next = last.offset + 1;
                return Ok(batch);
            }
            self.log.wait_beyond(self.next).await?;
        }
    }
}
