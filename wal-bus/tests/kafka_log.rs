//! The same conformance checks as `file_log.rs`, against the Kafka log on a
//! real Kafka-protocol broker (tansu, started on a free port per test).

#![cfg(feature = "kafka")]

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use wal_bus::{Backend, KafkaConfig, KafkaLog, Log, LogConfig};

mod conformance;

/// A tansu broker for one test; killed on drop.
struct Broker {
    child: Child,
    port: u16,
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn tansu_binary() -> String {
    if let Ok(p) = std::env::var("TANSU") {
        return p;
    }
    let home = std::env::var("CARGO_HOME")
        .ok()
        .or_else(|| std::env::var("HOME").ok().map(|h| format!("{h}/.cargo")))
        .unwrap_or_default();
    let cargo_bin = format!("{home}/bin/tansu");
    if std::path::Path::new(&cargo_bin).exists() {
        cargo_bin
    } else {
        "tansu".into()
    }
}

fn broker() -> Broker {
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let url = format!("tcp://127.0.0.1:{port}");
    let child = Command::new(tansu_binary())
        .args([
            "broker",
            "--storage-engine",
            "memory://tansu/",
            "--listener-url",
            &url,
            "--advertised-listener-url",
            &url,
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start tansu (install with: cargo install tansu --locked --features dynostore)");
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "tansu did not listen within 30 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    Broker { child, port }
}

fn config(b: &Broker, topic: &str) -> LogConfig {
    LogConfig {
        backend: Backend::Kafka,
        kafka: KafkaConfig {
            brokers: format!("127.0.0.1:{}", b.port),
            topic: topic.into(),
            acks_topic: format!("{topic}.acks"),
            timeout_ms: 20_000,
            ..KafkaConfig::default()
        },
        ..LogConfig::default()
    }
}

/// Opens the log the way a node does (`wal_bus::open_log` picks Kafka).
async fn open(c: &LogConfig) -> Arc<dyn Log> {
    let unused = std::path::Path::new("/nonexistent");
    wal_bus::open_log(c, unused, &CancellationToken::new())
        .await
        .expect("kafka log")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_ordered_appends() {
    let b = broker();
    conformance::ordered_appends(open(&config(&b, "ordered")).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_concurrent_appends() {
    let b = broker();
    conformance::concurrent_appends(open(&config(&b, "concurrent")).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_read_from_offset() {
    let b = broker();
    conformance::read_from_offset_and_limits(open(&config(&b, "reads")).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_tailing() {
    let b = broker();
    conformance::tailing_wakes(open(&config(&b, "tailing")).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_restart_resumes() {
    let b = broker();
    let c = config(&b, "restart");
    let first = open(&c).await;
    conformance::restart_resumes(first, async || open(&c).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_acks_travel_between_processes() {
    let b = broker();
    let c = config(&b, "acks");
    let cancel = CancellationToken::new();
    let unused = std::path::Path::new("/nonexistent");
    // Two nodes: each `open` shares its local replicas' acks on the topic.
    let (_a, mine) = wal_bus::open(&c, unused, &["a".into(), "b".into()], &cancel)
        .await
        .expect("node a");
    let (_b, theirs) = wal_bus::open(&c, unused, &["c".into()], &cancel)
        .await
        .expect("node b");
    conformance::acks_wait_for_k(mine, theirs).await;
    cancel.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_broker_fails_within_the_timeout() {
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let mut c = LogConfig {
        backend: Backend::Kafka,
        ..LogConfig::default()
    };
    c.kafka.brokers = format!("127.0.0.1:{port}");
    c.kafka.timeout_ms = 2_000;
    let started = Instant::now();
    let err = KafkaLog::open(&c, &CancellationToken::new())
        .await
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(err.contains(&format!("127.0.0.1:{port}")), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "took {:?}",
        started.elapsed()
    );
}

/// An existing log topic whose retention may delete records is refused at
/// start-up, naming the setting; `allow_finite_retention` starts anyway.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_topic_with_finite_retention_is_refused() {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    use rdkafka::client::DefaultClientContext;
    use rdkafka::config::ClientConfig;
    let b = broker();
    let mut c = config(&b, "finite");
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &c.kafka.brokers)
        .create()
        .expect("admin");
    let topic = NewTopic::new(&c.kafka.topic, 1, TopicReplication::Fixed(1))
        .set("retention.ms", "604800000");
    admin
        .create_topics([&topic], &AdminOptions::new())
        .await
        .expect("create topic");
    let err = KafkaLog::open(&c, &CancellationToken::new())
        .await
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        err.contains("retention.ms=604800000") && err.contains("allow_finite_retention"),
        "{err}"
    );
    c.kafka.allow_finite_retention = true;
    assert!(KafkaLog::open(&c, &CancellationToken::new()).await.is_ok());
}
