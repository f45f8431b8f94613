//! Tests of the parent module.
use super::*;

fn hlc(n: u64) -> Hlc {
    Hlc::new(n, 0)
}

#[test]
fn applied_records_leave_the_overlay_in_order() {
    let o = WriteOrder::default();
    for n in 1..=3 {
        o.push(hlc(n), Replay::Ddl(format!("ddl {n}").into()));
    }
    assert_eq!(o.unapplied(None).len(), 3);
    assert_eq!(o.unapplied(Some(hlc(2))).len(), 1);
    assert_eq!(o.pending(None), 1);
    o.remove(hlc(3));
    assert_eq!(o.pending(None), 0);
}

#[test]
fn locks_belong_to_one_session_until_released() {
    let o = WriteOrder::default();
    let rows = vec![(("t".to_owned(), "{\"id\":1}".to_owned()), Mode::Write)];
    assert_eq!(o.holder_of(1, &rows), None);
    o.lock(1, rows.clone());
    assert_eq!(o.holder_of(1, &rows), None, "own lock");
    assert_eq!(o.holder_of(2, &rows), Some(1));
    o.release(1);
    assert_eq!(o.holder_of(2, &rows), None);
    assert_eq!(o.locked_rows(), 0);
}

fn row(k: &str) -> Vec<Lock> {
    in_mode(k, Mode::Write)
}

fn in_mode(k: &str, mode: Mode) -> Vec<Lock> {
    vec![(("t".to_owned(), k.to_owned()), mode)]
}

#[test]
fn key_shares_conflict_with_key_writes_only() {
    let o = WriteOrder::default();
    // Two children of one parent share it.
    o.lock(1, in_mode("p", Mode::KeyShare));
    assert_eq!(o.holder_of(2, &in_mode("p", Mode::KeyShare)), None);
    o.lock(2, in_mode("p", Mode::KeyShare));
    // An update of the parent's other columns goes ahead; its delete
    // waits for both.
    assert_eq!(o.holder_of(3, &in_mode("p", Mode::Write)), None);
    assert_eq!(o.holder_of(3, &in_mode("p", Mode::KeyWrite)), Some(1));
    o.release(1);
    assert_eq!(o.holder_of(3, &in_mode("p", Mode::KeyWrite)), Some(2));
    assert_eq!(
        o.holder_of(2, &in_mode("p", Mode::KeyWrite)),
        None,
        "own share"
    );
    o.release(2);
    assert_eq!(o.holder_of(3, &in_mode("p", Mode::KeyWrite)), None);
    // A deleted parent: a child's key share waits, a plain write of
    // the same row waits too.
    o.lock(3, in_mode("p", Mode::Write));
    assert_eq!(o.holder_of(4, &in_mode("p", Mode::KeyShare)), None);
    o.lock(3, in_mode("p", Mode::KeyWrite));
    assert_eq!(o.holder_of(4, &in_mode("p", Mode::KeyShare)), Some(3));
    o.release(3);
    assert_eq!(o.locked_rows(), 0);
}

#[tokio::test]
async fn a_delete_waits_for_the_sharers_and_a_share_cycle_is_a_deadlock() {
    let o = Arc::new(WriteOrder::default());
    o.lock(1, in_mode("p", Mode::KeyShare));
    o.lock(2, in_mode("q", Mode::KeyWrite));
    let o2 = o.clone();
    let deleting = tokio::spawn(async move {
        o2.wait_for_rows(2, in_mode("p", Mode::KeyWrite), None)
            .await
    });
    registered(&o, 2).await;
    // Session 1 now wants a key share of q, which 2 deletes: a cycle.
    let second = o.wait_for_rows(1, in_mode("q", Mode::KeyShare), None).await;
    assert!(matches!(second, Err(Error::Deadlock { .. })), "{second:?}");
    o.release(1);
    assert!(deleting.await.is_ok_and(|r| r.is_ok()));
    o.release(2);
    assert_eq!(o.locked_rows(), 0);
}

async fn registered(o: &WriteOrder, session: u64) {
    for _ in 0..1000 {
        if o.inner().wanting.contains_key(&session) {
            return;
        }
        tokio::task::yield_now().await;
    }
}

#[tokio::test]
async fn released_rows_go_to_waiters_first_come_first_served() {
    let o = Arc::new(WriteOrder::default());
    o.lock(1, row("1"));
    let (o2, o3) = (o.clone(), o.clone());
    let second = tokio::spawn(async move { o2.wait_for_rows(2, row("1"), None).await });
    registered(&o, 2).await;
    let third = tokio::spawn(async move { o3.wait_for_rows(3, row("1"), None).await });
    registered(&o, 3).await;
    o.release(1);
    // Session 2 was first: it holds the row now, 3 keeps waiting.
    assert!(second.await.is_ok_and(|r| r.is_ok()));
    assert_eq!(o.holder_of(3, &row("1")), Some(2));
    assert!(!third.is_finished());
    o.release(2);
    assert!(third.await.is_ok_and(|r| r.is_ok()));
    assert_eq!(o.holder_of(4, &row("1")), Some(3));
    o.release(3);
    assert_eq!(o.locked_rows(), 0);
}

#[tokio::test]
async fn a_cycle_is_a_deadlock_and_a_timeout_is_55p03() {
    let o = Arc::new(WriteOrder::default());
    o.lock(1, row("a"));
    o.lock(2, row("b"));
    let o2 = o.clone();
    let first = tokio::spawn(async move {
        o2.wait_for_rows(1, row("b"), Some(Duration::from_secs(10)))
            .await
    });
    registered(&o, 1).await;
    let second = o.wait_for_rows(2, row("a"), None).await;
    assert!(matches!(second, Err(Error::Deadlock { .. })), "{second:?}");
    // Session 2's transaction is rolled back: 1 gets row b.
    o.release(2);
    assert!(first.await.is_ok_and(|r| r.is_ok()));
    let timed = o
        .wait_for_rows(3, row("a"), Some(Duration::from_millis(20)))
        .await;
    assert!(matches!(timed, Err(Error::LockTimeout { .. })), "{timed:?}");
    assert!(o.inner().wanting.is_empty() && o.inner().queues.is_empty());
}
