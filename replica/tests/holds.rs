//! Apply holds: a replica held at offset N applies exactly the records
//! before N, whatever batches the log hands it, and resumes when released.

mod common;

use std::time::Duration;

use common::{id_v_rows, ins, log_with_t, rec, start, wait_applied};
use wal_bus::RecordBody;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hold_stops_apply_at_exactly_its_offset() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (log, acks) = log_with_t(dir.path()).await;
    let db = dir.path().join("r1.db");
    let r = start("r1", &db, &log, &acks, None).expect("spawn");
    wait_applied(&acks, "r1", 1).await;

    // Held at 1 while idle: 20 records arrive (in whatever batches), none applies.
    let mut hold = r.state().hold(1);
    assert_eq!(hold.at(), 1);
    for i in 0..20 {
        let body = RecordBody::Txn {
            changes: vec![ins(i, i)],
        };
        log.append(rec(format!("r{i}"), "a", 10 + i as u64, body))
            .await
            .expect("append");
    }
    assert_eq!(
        hold.reached(Duration::from_secs(10)).await.expect("parked"),
        1
    );
    assert_eq!(r.state().applied(), 1);
    assert!(id_v_rows(&db).is_empty());

    // Moved to 8: exactly the records at offsets 1..8 apply.
    assert_eq!(hold.move_to(8), 8);
    assert_eq!(
        hold.reached(Duration::from_secs(10)).await.expect("at 8"),
        8
    );
    assert_eq!(r.state().applied(), 8);
    assert_eq!(id_v_rows(&db).len(), 7);

    // A second hold behind the replica holds it where it is and says so.
    let second = r.state().hold(3);
    assert_eq!(second.at(), 8);
    drop(hold);
    assert_eq!(
        second
            .reached(Duration::from_secs(10))
            .await
            .expect("still 8"),
        8
    );
    assert_eq!(r.state().applied(), 8);

    // Released: the rest applies.
    drop(second);
    wait_applied(&acks, "r1", 21).await;
    assert_eq!(id_v_rows(&db).len(), 20);
    r.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forgotten_hold_lapses() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (log, acks) = log_with_t(dir.path()).await;
    let db = dir.path().join("r1.db");
    let r = start("r1", &db, &log, &acks, None).expect("spawn");
    wait_applied(&acks, "r1", 1).await;
    // Never released (its holder hangs): apply resumes when it lapses.
    let hold = r.state().hold_for(1, Duration::from_millis(300));
    let body = RecordBody::Txn {
        changes: vec![ins(1, 1)],
    };
    log.append(rec("r", "a", 2, body)).await.expect("append");
    assert_eq!(
        hold.reached(Duration::from_secs(10)).await.expect("parked"),
        1
    );
    wait_applied(&acks, "r1", 2).await;
    assert_eq!(id_v_rows(&db), vec![(1, 1)]);
    drop(hold);
    r.stop().await;
}
