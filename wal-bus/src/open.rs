//! Opening the configured log backend: the one place that knows which
//! backends exist, so the router and the binary never name a log client.

use std::path::Path;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::acks::AckBoard;
use crate::config::{Backend, LogConfig};
#[cfg(not(feature = "kafka"))]
use crate::error::Error;
use crate::error::Result;
use crate::file_log::FileLog;
use crate::log::Log;

/// Opens the log `config` names. The file log lives in `config.dir`, or
/// `default_dir` when unset. Background work (Kafka's end tracker and
/// tails) stops when `cancel` fires.
pub async fn open_log(
    config: &LogConfig,
    default_dir: &Path,
    cancel: &CancellationToken,
) -> Result<Arc<dyn Log>> {
    config.validate()?;
    match config.backend {
        Backend::File => {
            let dir = config.dir.as_deref().unwrap_or(default_dir);
            Ok(Arc::new(FileLog::open(dir, config)?))
        }
        Backend::Kafka => open_kafka(config, cancel).await,
    }
}

/// Opens the log and the board replicas publish their applied offsets on.
/// On Kafka the board is shared with every node through the acks topic:
/// `local_replicas` (this process's) publish there, everyone else's are
/// read from there.
pub async fn open(
    config: &LogConfig,
    default_dir: &Path,
    local_replicas: &[String],
    cancel: &CancellationToken,
) -> Result<(Arc<dyn Log>, Arc<AckBoard>)> {
    let log = open_log(config, default_dir, cancel).await?;
    let acks = Arc::new(AckBoard::default());
    if config.backend == Backend::Kafka {
        share_acks(config, &acks, local_replicas, cancel)?;
    }
    Ok((log, acks))
}

#[cfg(feature = "kafka")]
async fn open_kafka(config: &LogConfig, cancel: &CancellationToken) -> Result<Arc<dyn Log>> {
    Ok(crate::kafka_log::KafkaLog::open(config, cancel).await?)
}

#[cfg(not(feature = "kafka"))]
async fn open_kafka(_: &LogConfig, _: &CancellationToken) -> Result<Arc<dyn Log>> {
    Err(missing_kafka())
}

#[cfg(feature = "kafka")]
fn share_acks(
    config: &LogConfig,
    acks: &Arc<AckBoard>,
    local: &[String],
    cancel: &CancellationToken,
) -> Result<()> {
    crate::kafka_acks::share_acks(config, acks.clone(), local.to_vec(), cancel)
}

#[cfg(not(feature = "kafka"))]
fn share_acks(_: &LogConfig, _: &Arc<AckBoard>, _: &[String], _: &CancellationToken) -> Result<()> {
    Err(missing_kafka())
}

#[cfg(not(feature = "kafka"))]
fn missing_kafka() -> Error {
    Error::FeatureMissing {
        backend: "kafka",
        feature: "kafka",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn opens_the_file_log_in_the_default_dir() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cancel = CancellationToken::new();
        let (log, acks) = open(&LogConfig::default(), dir.path(), &["a".into()], &cancel)
            .await
            .expect("open");
        let at = log.append(b"x".to_vec()).await.expect("append");
        assert_eq!(at, 0);
        assert!(dir.path().read_dir().expect("read").next().is_some());
        assert!(acks.snapshot().replicas.is_empty());
    }

    #[cfg(not(feature = "kafka"))]
    #[tokio::test]
    async fn kafka_without_the_feature_names_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = LogConfig {
            backend: Backend::Kafka,
            ..LogConfig::default()
        };
        let err = open_log(&config, dir.path(), &CancellationToken::new())
            .await
            .err()
            .expect("refused");
        assert!(err.to_string().contains("`kafka` feature"), "{err}");
    }
}
