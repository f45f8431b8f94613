//! `Node::start` in-process: routers on port 0, SQL through them, a drain
//! that tells idle clients why (57P01) and releases the data directory, and
//! a restart on the same directory that finds the data.

use std::time::Duration;

use tokio_postgres::NoTls;
use tokio_util::sync::CancellationToken;
use tributary::{Layout, Node, NodeConfig};

fn config(dir: &std::path::Path, replicas: usize, routers: usize) -> NodeConfig {
    let mut c = NodeConfig {
        data_dir: dir.to_path_buf(),
        replicas,
        ..NodeConfig::default()
    };
    c.router.routers = routers;
    c.router.listen = "127.0.0.1:0".into();
    c
}

async fn client(
    port: u16,
) -> (
    tokio_postgres::Client,
    tokio::task::JoinHandle<Result<(), tokio_postgres::Error>>,
) {
    let (c, conn) = tokio_postgres::connect(
        &format!("host=127.0.0.1 port={port} user=t dbname=t connect_timeout=5"),
        NoTls,
    )
    .await
    .expect("connect");
    (c, tokio::spawn(conn))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_on_port_0_drains_and_restarts_on_the_same_data() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = config(dir.path(), 2, 2);
    let shutdown = CancellationToken::new();
    let node = Node::start(
        cfg.clone(),
        Layout::cluster(&cfg).expect("layout"),
        shutdown.clone(),
    )
    .await
    .expect("start");
    let ports: Vec<u16> = node.routers.iter().map(|r| r.addr.port()).collect();
    assert_eq!(ports.len(), 2);
    assert!(
        ports.iter().all(|p| *p != 0) && ports[0] != ports[1],
        "{ports:?}"
    );

    let (c, _) = client(ports[0]).await;
    c.batch_execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
        .await
        .expect("ddl");
    c.batch_execute("SET tributary.ack = 'sync'")
        .await
        .expect("set");
    c.execute("INSERT INTO t VALUES (1, 'kept')", &[])
        .await
        .expect("insert");
    // A second router sees the write (read-your-writes across routers needs
    // the offset; sync means every replica has it already).
    let (other, _) = client(ports[1]).await;
    let row = other
        .query_one("SELECT v FROM t WHERE id = 1", &[])
        .await
        .expect("read on r2");
    assert_eq!(row.get::<_, String>(0), "kept");

    // An idle client is told the router is going away, then disconnected.
    let (idle, idle_conn) = client(ports[0]).await;
    shutdown.cancel();
    node.shutdown().await;
    let ended = tokio::time::timeout(Duration::from_secs(30), idle_conn)
        .await
        .expect("idle connection closed")
        .expect("join");
    let err = ended.expect_err("the connection ends with the server's error");
    let code = err.as_db_error().map(|d| d.code().code().to_owned());
    assert_eq!(code.as_deref(), Some("57P01"), "{err}");
    assert!(idle.is_closed());

    // The lock is released: the same directory starts again, data intact.
    let node = Node::start(
        cfg.clone(),
        Layout::cluster(&cfg).expect("layout"),
        CancellationToken::new(),
    )
    .await
    .expect("restart");
    let port = node.router_addr().expect("router").port();
    let (c, _) = client(port).await;
    let n: i64 = c
        .query_one("SELECT count(*) FROM t", &[])
        .await
        .expect("count")
        .get(0);
    assert_eq!(n, 1);
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_data_dir_in_use_is_refused_and_nothing_is_left_running() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = config(dir.path(), 1, 1);
    let first = Node::start(
        cfg.clone(),
        Layout::cluster(&cfg).expect("layout"),
        CancellationToken::new(),
    )
    .await
    .expect("start");
    let err = Node::start(
        cfg.clone(),
        Layout::cluster(&cfg).expect("layout"),
        CancellationToken::new(),
    )
    .await
    .err()
    .expect("second node on the same directory is refused");
    assert!(
        format!("{err:#}").contains("in use by another tributary process"),
        "{err:#}"
    );
    first.shutdown().await;

    // A start that fails half-way (the router's address is taken) stops
    // the replicas it started and releases the directory.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let mut busy = cfg.clone();
    busy.router.listen = taken.local_addr().expect("addr").to_string();
    let err = Node::start(
        busy.clone(),
        Layout::cluster(&busy).expect("layout"),
        CancellationToken::new(),
    )
    .await
    .err()
    .expect("address in use");
    assert!(format!("{err:#}").contains("cannot listen"), "{err:#}");
    let again = Node::start(
        cfg.clone(),
        Layout::cluster(&cfg).expect("layout"),
        CancellationToken::new(),
    )
    .await
    .expect("directory released after the failed start");
    again.shutdown().await;
}
