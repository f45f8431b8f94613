//! Replica acks on Kafka: local replicas' applied offsets and
//! first-writer-wins rejections travel on a compacted topic, so semi-sync and
//! sync work across processes.

use std::sync::Arc;
use std::time::Duration;

use rdkafka::consumer::Consumer;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::util::Timeout;
use rdkafka::{Message, Offset as KOffset, TopicPartitionList};
use tokio_util::sync::CancellationToken;

use crate::acks::AckBoard;
use crate::config::LogConfig;
use crate::error::Result;
use crate::kafka_client::{client_config, consumer, kerr};
use crate::log::Offset;

/// Replica acks on the compacted acks topic: local replicas' applied offsets
/// and first-writer-wins rejections are produced there; every node consumes
/// it into its own [`AckBoard`], so semi-sync and sync work across processes.
/// Runs until `cancel` fires.
pub fn share_acks(
    config: &LogConfig,
    board: Arc<AckBoard>,
    local: Vec<String>,
    cancel: &CancellationToken,
) -> Result<()> {
    let k = config.kafka.clone();
    // Consumer: the whole compacted topic from the beginning, then tail.
    let c = consumer(&k, "acks")?;
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(&k.acks_topic, 0, KOffset::Beginning)
        .map_err(|e| kerr("assigning the acks partition", e))?;
    c.assign(&tpl)
        .map_err(|e| kerr("assigning the acks partition", e))?;
    let (board_c, stop_c, local_c) = (board.clone(), cancel.clone(), local.clone());
    std::thread::Builder::new()
        .name("kafka-acks-in".into())
        .spawn(move || {
            while !stop_c.is_cancelled() {
                let Some(Ok(m)) = c.poll(Duration::from_millis(100)) else {
                    continue;
                };
                let key = m.key().map(String::from_utf8_lossy).unwrap_or_default();
                let value = m.payload().map(String::from_utf8_lossy).unwrap_or_default();
                if let Some(replica) = key.strip_prefix("applied:") {
                    if local_c.iter().any(|l| l == replica) {
                        continue;
                    }
                    if let Ok(offset) = value.parse::<Offset>() {
                        board_c.publish(replica, offset);
                    }
                } else if let Some(offset) = key
                    .strip_prefix("rejected:")
                    .and_then(|o| o.parse::<Offset>().ok())
                {
                    board_c.reject(offset, value.into_owned());
                }
            }
        })
        .map_err(|e| kerr("starting the acks consumer", e))?;
    // Producer: local replicas' changes, coalesced.
    let mut pc = client_config(&k);
    pc.set("linger.ms", "1").set("acks", "all");
    let producer: FutureProducer = pc
        .create()
        .map_err(|e| kerr("creating the acks producer", e))?;
    let mut rx = board.subscribe();
    let mut rejections = board.subscribe_rejections();
    let stop_p = cancel.clone();
    tokio::spawn(async move {
        let mut sent: std::collections::BTreeMap<String, Offset> = Default::default();
        loop {
            tokio::select! {
                _ = stop_p.cancelled() => break,
                changed = rx.changed() => {
                    if changed.is_err() { break; }
                    let snap = rx.borrow_and_update().clone();
                    for name in &local {
                        let Some(ack) = snap.replicas.get(name) else { continue };
                        if sent.get(name) == Some(&ack.applied) { continue; }
                        let key = format!("applied:{name}");
                        let value = ack.applied.to_string();
                        let rec: FutureRecord<'_, str, str> = FutureRecord::to(&k.acks_topic).key(key.as_str()).payload(value.as_str());
                        match producer.send(rec, Timeout::After(Duration::from_millis(k.timeout_ms))).await {
                            Ok(_) => { sent.insert(name.clone(), ack.applied); }
                            Err((e, _)) => tracing::warn!(error = %e, replica = %name, "publishing an ack"),
                        }
                    }
                }
                r = rejections.recv() => {
                    let Ok((offset, reason)) = r else { continue };
                    let key = format!("rejected:{offset}");
                    let rec: FutureRecord<'_, str, str> = FutureRecord::to(&k.acks_topic).key(key.as_str()).payload(reason.as_str());
                    if let Err((e, _)) = producer.send(rec, Timeout::After(Duration::from_millis(k.timeout_ms))).await {
                        tracing::warn!(error = %e, offset, "publishing a rejection");
                    }
                }
            }
        }
    });
    Ok(())
}
