//! Backend-generic log behaviour: each function is one check, run by
//! `file_log.rs` against the embedded log and by `kafka_log.rs` against a
//! real Kafka-protocol broker.

#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use wal_bus::Log;

pub async fn ordered_appends(log: Arc<dyn Log>) {
    let base = log.end();
    for i in 0..20u64 {
        let off = log
            .append(format!("rec-{i}").into_bytes())
            .await
            .expect("append");
        assert_eq!(off, base + i);
    }
    let got = log.read(base, 100, 1 << 20).await.expect("read");
    assert_eq!(got.len(), 20);
    for (i, e) in got.iter().enumerate() {
        assert_eq!(&*e.payload, format!("rec-{i}").as_bytes());
    }
}

pub async fn concurrent_appends(log: Arc<dyn Log>) {
    let base = log.end();
    let mut tasks = Vec::new();
    for t in 0..8 {
        let log = log.clone();
        tasks.push(tokio::spawn(async move {
            let mut offs = Vec::new();
            for i in 0..50 {
                offs.push(
                    log.append(format!("{t}-{i}").into_bytes())
                        .await
                        .expect("append"),
                );
            }
            offs
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        let offs = t.await.expect("task");
        // One writer's appends keep their order.
        assert!(offs.windows(2).all(|w| w[0] < w[1]));
        all.extend(offs);
    }
    all.sort_unstable();
    assert_eq!(all, (base..base + 400).collect::<Vec<_>>());
    assert_eq!(log.end(), base + 400);
}

pub async fn read_from_offset_and_limits(log: Arc<dyn Log>) {
    let base = log.end();
    for i in 0..10u8 {
        log.append(vec![i; 100]).await.expect("append");
    }
    let got = log.read(base + 4, 3, 1 << 20).await.expect("read");
    assert_eq!(
        got.iter().map(|e| e.offset).collect::<Vec<_>>(),
        vec![base + 4, base + 5, base + 6]
    );
    assert_eq!(&*got[0].payload, &[4u8; 100][..]);
    let one = log.read(base, 10, 10).await.expect("read");
    assert_eq!(one.len(), 1, "max_bytes still returns one record");
    assert!(
        log.read(log.end(), 10, 100)
            .await
            .expect("read at end")
            .is_empty()
    );
    assert!(log.read(log.end() + 1, 10, 100).await.is_err());
}

pub async fn tailing_wakes(log: Arc<dyn Log>) {
    let mut sub = wal_bus::tail(log.clone(), log.end()).expect("tail");
    let reader = tokio::spawn(async move {
        let mut got = Vec::new();
        while got.len() < 5 {
            for e in sub.next_batch().await.expect("batch") {
                got.push(e.payload.to_vec());
            }
        }
        got
    });
    for i in 0..5u8 {
        tokio::time::sleep(Duration::from_millis(5)).await;
        log.append(vec![i]).await.expect("append");
    }
    let got = tokio::time::timeout(Duration::from_secs(10), reader)
        .await
        .expect("tail within 10s")
        .expect("task");
    assert_eq!(got, (0..5u8).map(|i| vec![i]).collect::<Vec<_>>());
}

/// Restart: a reopened log has every record and appends after them.
pub async fn restart_resumes(first: Arc<dyn Log>, reopen: impl AsyncFnOnce() -> Arc<dyn Log>) {
    let base = first.end();
    for i in 0..5u8 {
        first.append(vec![b'r', i]).await.expect("append");
    }
    drop(first);
    let log = reopen().await;
    assert_eq!(log.end(), base + 5);
    let got = log.read(base, 10, 1 << 20).await.expect("read");
    assert_eq!(
        got.iter().map(|e| e.payload.to_vec()).collect::<Vec<_>>(),
        (0..5u8).map(|i| vec![b'r', i]).collect::<Vec<_>>()
    );
    assert_eq!(
        log.append(b"more".to_vec()).await.expect("append"),
        base + 5
    );
}

/// Acks: waiting for k replicas resolves once k of them published.
pub async fn acks_wait_for_k(board: Arc<wal_bus::AckBoard>, others: Arc<wal_bus::AckBoard>) {
    // The waiter starts before any ack exists and needs two replicas.
    let mut waiter = {
        let others = others.clone();
        tokio::spawn(async move {
            tokio::time::timeout(
                Duration::from_secs(30),
                others.wait_until(|s| s.count_at_least(3) >= 2),
            )
            .await
            .is_ok()
        })
    };
    board.publish("a", 3);
    // One replica at 3 is not enough: the waiter must still be waiting.
    assert!(
        tokio::time::timeout(Duration::from_millis(300), &mut waiter)
            .await
            .is_err(),
        "the waiter returned with one ack of the two it needs"
    );
    // The second ack comes from elsewhere (another task) while it waits.
    let publisher = tokio::spawn(async move { board.publish("b", 5) });
    publisher.await.expect("publisher");
    assert!(waiter.await.expect("task"), "another board saw both acks");
}
