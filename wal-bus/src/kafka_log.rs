//! The Kafka log: one topic with one partition holds the records in total
//! order (a single partition is what makes the order total; it also caps the
//! log at one partition leader's throughput). Appends go through an
//! idempotent producer with `acks=all` and resolve only when the broker has
//! acknowledged them; replicas tail with consumers from any offset; replica
//! acks travel on a compacted acks topic keyed by replica ([`KafkaAcks`]).
//!
//! Kafka offsets are the log offsets: record n of the topic is offset n. That
//! holds because only this producer writes the topic without transactions
//! (no control records); a message some other producer writes is still an
//! offset, and replicas skip it as foreign.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::util::Timeout;
use rdkafka::{Message, Offset as KOffset, TopicPartitionList};
use tokio::sync::{mpsc, watch};

use crate::config::{KafkaConfig, LogConfig};
use crate::end_history::EndHistory;
use crate::error::{Error, Result};
use crate::log::{AppendFuture, Log, LogEntry, Offset, Tail};

pub(crate) fn kerr(context: &str, e: impl std::fmt::Display) -> Error {
    Error::Kafka {
        context: context.to_owned(),
        reason: e.to_string(),
    }
}

/// How often the log end (high watermark) is refreshed from the broker.
const END_REFRESH: Duration = Duration::from_millis(20);

pub(crate) fn client_config(k: &KafkaConfig) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &k.brokers);
    for (key, value) in &k.properties {
        c.set(key, value);
    }
    c
}

pub(crate) fn consumer(k: &KafkaConfig, purpose: &str) -> Result<BaseConsumer> {
    consumer_config(k, purpose)
        .create()
        .map_err(|e| kerr("creating a consumer", e))
}

fn consumer_config(k: &KafkaConfig, purpose: &str) -> ClientConfig {
    let mut c = client_config(k);
    c.set(
        "group.id",
        format!("tributary-{purpose}-{}", std::process::id()),
    )
    .set("enable.auto.commit", "false")
    .set("enable.auto.offset.store", "false")
    .set("fetch.wait.max.ms", "10")
    .set("session.timeout.ms", "6000");
    c
}

/// Creates `topic` (one partition; compacted if asked) unless it exists.
pub async fn ensure_topic(k: &KafkaConfig, topic: &str, compact: bool) -> Result<()> {
    let admin: AdminClient<DefaultClientContext> = client_config(k)
        .create()
        .map_err(|e| kerr("creating an admin client", e))?;
    let mut new = NewTopic::new(topic, 1, TopicReplication::Fixed(k.replication_factor));
    if compact {
        new = new.set("cleanup.policy", "compact");
    } else {
        // The log is the database: a broker's default retention (7 days on
        // Apache Kafka) would delete acknowledged writes.
        new = new.set("retention.ms", "-1").set("retention.bytes", "-1");
    }
    let opts = AdminOptions::new()
        .operation_timeout(Some(Timeout::After(Duration::from_millis(k.timeout_ms))));
    let results = tokio::time::timeout(
        Duration::from_millis(k.timeout_ms),
        admin.create_topics([&new], &opts),
    )
    .await
    .map_err(|_| {
        kerr(
            &format!("creating topic {topic}"),
            format!("no answer from {} within {} ms", k.brokers, k.timeout_ms),
        )
    })?
    .map_err(|e| kerr(&format!("creating topic {topic}"), e))?;
    for r in results {
        match r {
            Ok(_) => tracing::info!(topic, "created topic"),
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((t, code)) => return Err(kerr(&format!("creating topic {t}"), code)),
        }
    }
    Ok(())
}

/// Refuses (or, with `allow_finite_retention`, warns loudly about) a log
/// topic whose retention may delete records.
async fn check_retention(k: &KafkaConfig) -> Result<()> {
    use rdkafka::admin::{ConfigSource, ResourceSpecifier};
    let admin: AdminClient<DefaultClientContext> = client_config(k)
        .create()
        .map_err(|e| kerr("creating an admin client", e))?;
    let opts = AdminOptions::new()
        .request_timeout(Some(Timeout::After(Duration::from_millis(k.timeout_ms))));
    let described = tokio::time::timeout(
        Duration::from_millis(k.timeout_ms),
        admin.describe_configs([&ResourceSpecifier::Topic(&k.topic)], &opts),
    )
    .await;
    let entries = match described {
        Ok(Ok(results)) => match results.into_iter().next() {
            Some(Ok(resource)) => resource.entries,
            other => {
                tracing::warn!(topic = %k.topic, result = ?other.map(|r| r.map(|_| ())),
                    "could not read the log topic's retention; make sure retention.ms and retention.bytes are -1");
                return Ok(());
            }
        },
        other => {
            tracing::warn!(topic = %k.topic, error = ?other.map(|r| r.map(|_| ())),
                "could not read the log topic's retention; make sure retention.ms and retention.bytes are -1");
            return Ok(());
        }
    };
    let mut finite = Vec::new();
    for e in &entries {
        let value = e.value.as_deref().unwrap_or("");
        let bad = match e.name.as_str() {
            "retention.ms" | "retention.bytes" => value != "-1",
            "cleanup.policy" => value.contains("compact"),
            _ => false,
        };
        if bad {
            let origin = if matches!(e.source, ConfigSource::Default) {
                "broker default"
            } else {
                "topic setting"
            };
            finite.push(format!("{}={value} ({origin})", e.name));
        }
    }
    if finite.is_empty() {
        return Ok(());
    }
    let what = format!(
        "log topic {} may delete records: {}; set retention.ms=-1 and retention.bytes=-1 (cleanup.policy=delete) on it",
        k.topic,
        finite.join(", ")
    );
    if k.allow_finite_retention {
        tracing::warn!(
            "{what}. Starting anyway (log.kafka.allow_finite_retention): a replica that falls behind deleted records stops and must be rebuilt from a snapshot"
        );
        Ok(())
    } else {
        Err(kerr(
            &what,
            "refusing to start (set log.kafka.allow_finite_retention = true only if snapshots are taken more often than retention deletes)",
        ))
    }
}

/// Checks the topic exists with exactly one partition.
fn check_topic(c: &BaseConsumer, k: &KafkaConfig, topic: &str) -> Result<()> {
    let md = c
        .fetch_metadata(Some(topic), Duration::from_millis(k.timeout_ms))
        .map_err(|e| {
            kerr(
                &format!("reading metadata of {topic} from {}", k.brokers),
                e,
            )
        })?;
    let t = md
        .topics()
        .iter()
        .find(|t| t.name() == topic)
        .ok_or_else(|| {
            kerr(
                topic,
                "topic does not exist (set log.kafka.create_topics = true or create it)",
            )
        })?;
    if let Some(e) = t.error() {
        return Err(kerr(
            topic,
            format!(
                "{e:?} (does it exist? set log.kafka.create_topics = true or create it with one partition)"
            ),
        ));
    }
    if t.partitions().len() != 1 {
        return Err(kerr(
            topic,
            format!(
                "has {} partitions; the log needs exactly 1 for a total order",
                t.partitions().len()
            ),
        ));
    }
    Ok(())
}

fn new_producer(k: &KafkaConfig, max_record: usize) -> Result<FutureProducer> {
    let mut pc = client_config(k);
    pc.set("enable.idempotence", "true")
        // A failed batch that could leave a gap is a fatal error (and the
        // producer is replaced), never a silent hole in the order.
        .set("enable.gapless.guarantee", "true")
        .set("acks", "all")
        .set("linger.ms", "1")
        .set("message.timeout.ms", k.timeout_ms.to_string())
        .set("message.max.bytes", (max_record + 1024).to_string());
    pc.create().map_err(|e| kerr("creating the producer", e))
}

/// The Kafka-backed log.
pub struct KafkaLog {
    config: KafkaConfig,
    /// Replaced when it hits a fatal error (e.g. fenced after a broker
    /// outage): an idempotent producer cannot recover by itself.
    producer: Arc<std::sync::RwLock<Arc<FutureProducer>>>,
    max_record: usize,
    ends: Arc<Ends>,
    stop: Arc<AtomicBool>,
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
    /// Connects, creates the topics if allowed, and starts tracking the end.
    pub async fn open(config: &LogConfig) -> Result<Arc<KafkaLog>> {
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
            stop: Arc::new(AtomicBool::new(false)),
        });
        tracing::info!(brokers = %k.brokers, topic = %k.topic, end, "kafka log open");
        let tracker = Arc::downgrade(&log);
        let stop = log.stop.clone();
        std::thread::Builder::new()
            .name("kafka-end".into())
            .spawn(move || {
                while !stop.load(Ordering::Acquire) {
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
        self.stop.store(true, Ordering::Release);
    }
}

#[async_trait]
impl Log for KafkaLog {
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
        Some(KafkaTail::start(&self.config, from).map(|t| Box::new(t) as Box<dyn Tail>))
    }
}

/// A consumer thread feeding a bounded channel.
struct KafkaTail {
    rx: mpsc::Receiver<Result<LogEntry>>,
    next: Offset,
    stop: Arc<AtomicBool>,
    /// The last batch stopped at a gap: the first offset after it.
    gap: Option<Offset>,
}

/// Whether a consumer error means the requested offset is gone.
fn is_offset_reset(e: &KafkaError) -> bool {
    let code = match e {
        KafkaError::MessageConsumption(c) | KafkaError::Global(c) => Some(*c),
        _ => None,
    };
    matches!(
        code,
        Some(RDKafkaErrorCode::AutoOffsetReset | RDKafkaErrorCode::OffsetOutOfRange)
    )
}

impl KafkaTail {
    fn start(k: &KafkaConfig, from: Offset) -> Result<KafkaTail> {
        let c: BaseConsumer = consumer_config(k, "tail")
            // An offset the broker no longer has is an error, never a
            // silent jump to the end (librdkafka's default).
            .set("auto.offset.reset", "error")
            .create()
            .map_err(|e| kerr("creating a consumer", e))?;
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(&k.topic, 0, KOffset::Offset(from as i64))
            .map_err(|e| kerr("assigning the log partition", e))?;
        c.assign(&tpl)
            .map_err(|e| kerr("assigning the log partition", e))?;
        let (tx, rx) = mpsc::channel(8192);
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let topic = k.topic.clone();
        std::thread::Builder::new()
            .name("kafka-tail".into())
            .spawn(move || {
                let mut expected: Offset = from;
                while !stop2.load(Ordering::Acquire) {
                    let item = match c.poll(Duration::from_millis(100)) {
                        Some(Ok(m)) => Ok(LogEntry {
                            offset: m.offset().max(0) as Offset,
                            payload: Arc::from(m.payload().unwrap_or(&[])),
                        }),
                        Some(Err(e)) if is_offset_reset(&e) => {
                            // The next offset is gone: report the gap, stop.
                            let low = c
                                .fetch_watermarks(&topic, 0, Duration::from_secs(5))
                                .map(|(low, _)| low.max(0) as Offset)
                                .unwrap_or(0);
                            let _ = tx.blocking_send(Err(Error::Gap {
                                expected: expected.max(from),
                                found: low,
                            }));
                            break;
                        }
                        Some(Err(e)) => {
                            // librdkafka retries broker errors itself; report and go on.
                            tracing::warn!(error = %e, "kafka log consumer");
                            continue;
                        }
                        None => continue,
                    };
                    if let Ok(e) = &item {
                        expected = expected.max(e.offset + 1);
                    }
                    if tx.blocking_send(item).is_err() {
                        break;
                    }
                }
            })
            .map_err(|e| kerr("starting a tail thread", e))?;
        Ok(KafkaTail {
            rx,
            next: from,
            stop,
            gap: None,
        })
    }
}

impl Drop for KafkaTail {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
    }
}

#[async_trait]
impl Tail for KafkaTail {
    async fn next_batch(&mut self) -> Result<Vec<LogEntry>> {
        if let Some(found) = self.gap {
            // The previous batch was cut at a gap: stop here.
            return Err(Error::Gap {
                expected: self.next,
                found,
            });
        }
        let first = self.rx.recv().await.ok_or(Error::Closed)??;
        let mut out = vec![first];
        while out.len() < 8192 {
            match self.rx.try_recv() {
                Ok(item) => out.push(item?),
                Err(_) => break,
            }
        }
        // Kafka may redeliver after a reconnect; never hand out an offset twice.
        out.retain(|e| e.offset >= self.next);
        // Offsets of the log topic are contiguous (one partition, no
        // transactions): a jump means records are gone. Hand out what comes
        // before the gap; the next call reports it.
        let cut = (self.next..)
            .zip(out.iter())
            .position(|(expected, e)| e.offset != expected);
        if let Some(i) = cut {
            let found = out[i].offset;
            if i == 0 {
                return Err(Error::Gap {
                    expected: self.next,
                    found,
                });
            }
            self.gap = Some(found);
            out.truncate(i);
        }
        if let Some(last) = out.last() {
            self.next = last.offset + 1;
        }
        Ok(out)
    }

    fn position(&self) -> Offset {
        self.next
    }
}
