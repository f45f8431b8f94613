//! Kafka client plumbing shared by the log, its tails, the acks topic and
//! the Debezium publisher: client settings (with the node's
//! `[log.kafka] properties`), consumers, the idempotent producer, topic
//! creation and the checks that a topic can hold the log.

use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::util::Timeout;

use crate::config::KafkaConfig;
use crate::error::{Error, Result};

pub(crate) fn kerr(context: &str, e: impl std::fmt::Display) -> Error {
    Error::Kafka {
        context: context.to_owned(),
        reason: e.to_string(),
    }
}

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

pub(crate) fn consumer_config(k: &KafkaConfig, purpose: &str) -> ClientConfig {
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
pub(crate) async fn check_retention(k: &KafkaConfig) -> Result<()> {
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
pub(crate) fn check_topic(c: &BaseConsumer, k: &KafkaConfig, topic: &str) -> Result<()> {
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

pub(crate) fn new_producer(k: &KafkaConfig, max_record: usize) -> Result<FutureProducer> {
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

/// A producer for topics other than the log (the Debezium view): keyed
/// messages, idempotent, acknowledged by all in-sync replicas.
pub struct KafkaPublisher {
    producer: FutureProducer,
    config: KafkaConfig,
}

impl KafkaPublisher {
    pub fn new(k: &KafkaConfig) -> Result<KafkaPublisher> {
        let mut pc = client_config(k);
        pc.set("enable.idempotence", "true")
            .set("acks", "all")
            .set("linger.ms", "5");
        let producer = pc
            .create()
            .map_err(|e| kerr("creating the publisher's producer", e))?;
        Ok(KafkaPublisher {
            producer,
            config: k.clone(),
        })
    }

    /// Creates `topic` if missing (see [`ensure_topic`]).
    pub async fn ensure_topic(&self, topic: &str, compact: bool) -> Result<()> {
        ensure_topic(&self.config, topic, compact).await
    }

    /// Sends one message; `None` is a tombstone. Resolves once acknowledged.
    pub async fn send(&self, topic: &str, key: &str, payload: Option<&str>) -> Result<()> {
        let timeout = Timeout::After(Duration::from_millis(self.config.timeout_ms));
        let mut rec: FutureRecord<'_, str, str> = FutureRecord::to(topic).key(key);
        if let Some(p) = payload {
            rec = rec.payload(p);
        }
        self.producer
            .send(rec, timeout)
            .await
            .map(|_| ())
            .map_err(|(e, _)| kerr(&format!("publishing to {topic}"), e))
    }
}
