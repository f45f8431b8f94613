//! Tailing the Kafka log: a consumer thread feeds a bounded channel; offsets
//! must be contiguous, so a jump (records deleted by retention) is reported
//! as a gap, never skipped.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::{Message, Offset as KOffset, TopicPartitionList};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::config::KafkaConfig;
use crate::error::{Error, Result};
use crate::kafka_client::{consumer_config, kerr};
use crate::log::{LogEntry, Offset, Tail};

/// A consumer thread feeding a bounded channel.
pub(crate) struct KafkaTail {
    rx: mpsc::Receiver<Result<LogEntry>>,
    next: Offset,
    /// Stops the consumer thread (cancelled on drop).
    cancel: CancellationToken,
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
    pub(crate) fn start(
        k: &KafkaConfig,
        from: Offset,
        cancel: CancellationToken,
    ) -> Result<KafkaTail> {
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
        let stop = cancel.clone();
        let topic = k.topic.clone();
        std::thread::Builder::new()
            .name("kafka-tail".into())
            .spawn(move || {
                let mut expected: Offset = from;
                while !stop.is_cancelled() {
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
            cancel,
            gap: None,
        })
    }
}

impl Drop for KafkaTail {
    fn drop(&mut self) {
        self.cancel.cancel();
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
