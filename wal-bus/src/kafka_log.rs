//! The Kafka log: one topic with one partition holds the records in total
//! order (a single partition is what makes the order total; it also caps the
//! log at one partition leader's throughput). Appends go through an
//! idempotent producer with `acks=all` and resolve only when the broker has
//! acknowledged them; replicas tail with consumers from any offset; replica
//! acks travel on a compacted acks topic keyed by replica (`kafka_acks.rs`).
//!
//! Kafka offsets are the log offsets: record n of the topic is offset n. That
//! holds because only this producer writes the topic without transactions
//! (no control records); a message some other producer writes is still an
//! offset, and replicas skip it as foreign.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use async_trait::async_trait;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::util::Timeout;
use rdkafka::{Message, Offset as KOffset, TopicPartitionList};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::config::{KafkaConfig, LogConfig};
use crate::end_history::EndHistory;
use crate::error::{Error, Result};
use crate::kafka_client::{
    check_retention, check_topic, consumer, ensure_topic, kerr, new_producer,
};
use crate::kafka_tail::KafkaTail;
use crate::log::{AppendFuture, Log, LogEntry, Offset, Tail};

/// How often the log end (high watermark) is refreshed from the broker.
const END_REFRESH: Duration = Duration::from_millis(20);

/// The Kafka-backed log.
pub struct KafkaLog {
    config: KafkaConfig,
    /// Replaced when it hits a fatal error (e.g. fenced after a broker
    /// outage): an idempotent producer cannot recover by itself.
    producer: Arc<std::sync::RwLock<Arc<FutureProducer>>>,
    max_record: usize,
    ends: Arc<Ends>,
    /// Stops the end tracker: a child of the node's token, also cancelled
    /// when the log is dropped.
    cancel: CancellationToken,
    /// The node's token: tails stop with it (or when dropped), not with
    /// this handle, since a tail may outlive the `Arc` it was made from.
    node: CancellationToken,
}

/// The end as far as this process knows it, and its history; shared with
/// append futures, which outlive a borrow of the log.
struct Ends {
    end: watch::Sender<Offset>,
    history: EndHistory,
    /// The low watermark: the first offset the broker still has.
    start: std::sync::atomic::AtomicU64,
}

impl Ends {
    fn observe(&self, end: Offset) {
        let changed = self.end.send_if_modified(|cur| {
            if end > *cur {
                *cur = end;
                true
            } else {
                false
            }
        });
        if changed {
            self.history.record(end);
        }
    }
}

/// Whether a failed produce means the producer must be replaced: an
/// idempotent producer whose sequence is in doubt (a timed-out request) or
/// that was fenced rejects everything from then on; a new one gets a new
/// producer id. Returns whether the record was fenced (refused, not written).
fn restart_if_needed(
    slot: &std::sync::RwLock<Arc<FutureProducer>>,
    used: &FutureProducer,
    config: &KafkaConfig,
    max_record: usize,
    e: &KafkaError,
) -> Result<bool> {
    let code = match e {
        KafkaError::MessageProduction(code) => Some(*code),
        _ => None,
    };
    let fenced = matches!(
        code,
        Some(
            RDKafkaErrorCode::ProducerFenced
                | RDKafkaErrorCode::InvalidProducerEpoch
                | RDKafkaErrorCode::OutOfOrderSequenceNumber
                | RDKafkaErrorCode::UnknownProducerId
                | RDKafkaErrorCode::InvalidProducerIdMapping
        )
    ) || used.client().fatal_error().is_some();
    if fenced || code == Some(RDKafkaErrorCode::MessageTimedOut) {
        let mut cur = slot.write().unwrap_or_else(|p| p.into_inner());
        // Another failed append may have replaced it already.
        if std::ptr::eq(Arc::as_ptr(&cur), used) {
            tracing::warn!(error = %e, "restarting the kafka producer");
            *cur = Arc::new(new_producer(config, max_record)?);
        }
    }
    Ok(fenced)
}

impl KafkaLog {
    /// Connects, creates the topics if allowed, and starts tracking the end
    /// until `cancel` fires or the log is dropped.
    pub async fn open(config: &LogConfig, cancel: &CancellationToken) -> Result<Arc<KafkaLog>> {
        config.validate()?;
        let k = config.kafka.clone();
        if k.create_topics {
            ensure_topic(&k, &k.topic, false).await?;
            ensure_topic(&k, &k.acks_topic, true).await?;
        }
        check_retention(&k).await?;
        let probe = consumer(&k, "meta")?;
        let (probe, (low, end)) = {
            let k2 = k.clone();
            tokio::task::spawn_blocking(move || -> Result<(BaseConsumer, (i64, i64))> {
                check_topic(&probe, &k2, &k2.topic)?;
                check_topic(&probe, &k2, &k2.acks_topic)?;
                let marks = probe
                    .fetch_watermarks(&k2.topic, 0, Duration::from_millis(k2.timeout_ms))
                    .map_err(|e| kerr(&format!("reading the end of {}", k2.topic), e))?;
                Ok((probe, marks))
            })
            .await
            .map_err(|e| kerr("start-up", e))??
        };
        let producer = Arc::new(new_producer(&k, config.max_record_bytes)?);
        let end = end.max(0) as Offset;
        let log = Arc::new(KafkaLog {
            config: k.clone(),
            producer: Arc::new(std::sync::RwLock::new(producer)),
            max_record: config.max_record_bytes,
            ends: Arc::new(Ends {
                end: watch::channel(end).0,
                history: EndHistory::new(end),
                start: std::sync::atomic::AtomicU64::new(low.max(0) as Offset),
            }),
            cancel: cancel.child_token(),
            node: cancel.clone(),
        });
        tracing::info!(brokers = %k.brokers, topic = %k.topic, end, "kafka log open");
        let tracker = Arc::downgrade(&log);
        let cancel = log.cancel.clone();
        std::thread::Builder::new()
            .name("kafka-end".into())
            .spawn(move || {
                while !cancel.is_cancelled() {
                    let Some(log) = tracker.upgrade() else { break };
                    match probe.fetch_watermarks(&k.topic, 0, Duration::from_secs(1)) {
                        Ok((low, high)) => {
                            log.ends
                                .start
                                .fetch_max(low.max(0) as Offset, Ordering::AcqRel);
                            log.observe_end(high.max(0) as Offset)
                        }
                        Err(e) => tracing::debug!(error = %e, "refreshing the kafka log end"),
                    }
                    drop(log);
                    std::thread::sleep(END_REFRESH);
                }
            })
            .map_err(|e| kerr("starting the end tracker", e))?;
        Ok(log)
    }

    fn observe_end(&self, end: Offset) {
        self.ends.observe(end);
    }

    /// The producer in use now (replaced after a fatal error).
    fn producer(&self) -> Arc<FutureProducer> {
        self.producer
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn check_size(&self, payload: &[u8]) -> Result<()> {
        if payload.len() > self.max_record {
            return Err(Error::RecordTooLarge {
                size: payload.len(),
                limit: self.max_record,
            });
        }
        Ok(())
    }

    fn read_blocking(
        k: &KafkaConfig,
        from: Offset,
        until: Offset,
        max_records: usize,
        max_bytes: usize,
    ) -> Result<Vec<LogEntry>> {
        let c = consumer(k, "read")?;
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(&k.topic, 0, KOffset::Offset(from as i64))
            .map_err(|e| kerr("assigning the log partition", e))?;
        c.assign(&tpl)
            .map_err(|e| kerr("assigning the log partition", e))?;
        let mut out = Vec::new();
        let mut bytes = 0usize;
        let deadline = std::time::Instant::now() + Duration::from_millis(k.timeout_ms);
        let mut next = from;
        while next < until && out.len() < max_records {
            if std::time::Instant::now() > deadline {
                return Err(kerr(
                    "reading the log",
                    format!("offset {next} not delivered within {} ms", k.timeout_ms),
                ));
            }
            match c.poll(Duration::from_millis(100)) {
                Some(Ok(m)) => {
                    let offset = m.offset().max(0) as Offset;
                    let payload = m.payload().unwrap_or(&[]);
                    if !out.is_empty() && bytes + payload.len() > max_bytes {
                        break;
                    }
                    bytes += payload.len();
                    out.push(LogEntry {
                        offset,
                        payload: Arc::from(payload),
                    });
                    next = offset + 1;
                }
                Some(Err(e)) => return Err(kerr("reading the log", e)),
                None => {}
            }
        }
        Ok(out)
    }
}

impl Drop for KafkaLog {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

#[async_trait]
impl Log for KafkaLog {
    fn max_record_bytes(&self) -> usize {
        self.max_record
    }

    async fn append(&self, payload: Vec<u8>) -> Result<Offset> {
        self.check_size(&payload)?;
        let timeout = Timeout::After(Duration::from_millis(self.config.timeout_ms));
        let mut retried = false;
        let delivery = loop {
            let producer = self.producer();
            let record: FutureRecord<'_, (), [u8]> =
                FutureRecord::to(&self.config.topic).payload(&payload);
            match producer.send(record, timeout).await {
                Ok(d) => break d,
                Err((e, _)) => {
                    let fenced = restart_if_needed(
                        &self.producer,
                        &producer,
                        &self.config,
                        self.max_record,
                        &e,
                    )?;
                    // A fenced record was refused, not written: one retry
                    // cannot duplicate it.
                    if fenced && !retried {
                        retried = true;
                        continue;
                    }
                    return Err(kerr(
                        &format!(
                            "appending to {} on {}",
                            self.config.topic, self.config.brokers
                        ),
                        format!(
                            "{e} (not acknowledged within {} ms)",
                            self.config.timeout_ms
                        ),
                    ));
                }
            }
        };
        let offset = delivery.offset.max(0) as Offset;
        self.observe_end(offset + 1);
        Ok(offset)
    }

    fn enqueue(&self, payload: Vec<u8>) -> Result<AppendFuture> {
        self.check_size(&payload)?;
        let producer = self.producer();
        // send_result queues synchronously: the idempotent producer keeps
        // the queue order on the partition. No retry here: a re-sent record
        // would land after records queued behind it.
        let record: FutureRecord<'_, (), [u8]> =
            FutureRecord::to(&self.config.topic).payload(&payload);
        let where_ = format!(
            "appending to {} on {}",
            self.config.topic, self.config.brokers
        );
        let delivery = producer
            .send_result(record)
            .map_err(|(e, _)| kerr(&where_, e))?;
        let (slot, config, max_record, ends) = (
            self.producer.clone(),
            self.config.clone(),
            self.max_record,
            self.ends.clone(),
        );
        Ok(Box::pin(async move {
            let outcome = delivery
                .await
                .map_err(|_| kerr(&where_, "the producer was dropped before delivery"))?;
            match outcome {
                Ok(d) => {
                    let offset = d.offset.max(0) as Offset;
                    ends.observe(offset + 1);
                    Ok(offset)
                }
                Err((e, _)) => {
                    restart_if_needed(&slot, &producer, &config, max_record, &e)?;
                    Err(kerr(
                        &where_,
                        format!("{e} (not acknowledged within {} ms)", config.timeout_ms),
                    ))
                }
            }
        }))
    }

    fn end(&self) -> Offset {
        *self.ends.end.borrow()
    }

    fn start(&self) -> Offset {
        self.ends.start.load(Ordering::Acquire)
    }

    async fn read(
        &self,
        from: Offset,
        max_records: usize,
        max_bytes: usize,
    ) -> Result<Vec<LogEntry>> {
        let end = self.end();
        if from > end {
            return Err(Error::OffsetOutOfRange {
                requested: from,
                end,
            });
        }
        if from == end {
            return Ok(Vec::new());
        }
        let k = self.config.clone();
        tokio::task::spawn_blocking(move || {
            KafkaLog::read_blocking(&k, from, end, max_records.max(1), max_bytes)
        })
        .await
        .map_err(|e| kerr("reading the log", e))?
    }

    async fn wait_beyond(&self, offset: Offset) -> Result<()> {
        let mut rx = self.ends.end.subscribe();
        rx.wait_for(|end| *end > offset)
            .await
            .map(|_| ())
            .map_err(|_| Error::Closed)
    }

    fn end_as_of(&self, ts_ms: u64) -> Offset {
        self.ends.history.end_as_of(ts_ms, self.end())
    }

    fn appended_at_ms(&self, offset: Offset) -> Option<u64> {
        self.ends.history.appended_at_ms(offset)
    }

    fn describe(&self) -> String {
        format!("kafka:{}/{}", self.config.brokers, self.config.topic)
    }

    /// The topic names the cluster: every node of it shares the topic,
    /// whichever broker address it was given.
    fn cluster_id(&self) -> String {
        format!("kafka:{}", self.config.topic)
    }

    fn native_tail(&self, from: Offset) -> Option<Result<Box<dyn Tail>>> {
        Some(
            KafkaTail::start(&self.config, from, self.node.child_token())
                .map(|t| Box::new(t) as Box<dyn Tail>),
        )
    }
}
