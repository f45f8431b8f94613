//! The router's message handling on arbitrary client bytes: a real router
//! (file log, one replica, pgwire over loopback TCP) runs in this process;
//! each input is sent after a valid startup message, then the client hangs
//! up; then a fresh client must still get an answer to `SELECT 1`. A panic
//! aborts the process (libFuzzer reports it), except the one class the
//! router contains on purpose: pgwire's decoders reading past a message's end
//! (panics in pgwire's `messages` or in `bytes`, caught per connection in
//! `router::conn`; fuzz/regressions/router_messages holds the inputs). The
//! router runs `router::serve`, the accept loop `tributary up` uses.
#![no_main]

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use libfuzzer_sys::fuzz_target;

fn router_port() -> u16 {
    static PORT: OnceLock<u16> = OnceLock::new();
    *PORT.get_or_init(|| {
        std::panic::set_hook(Box::new(|info| {
            // Decoding lives in pgwire's `messages` and reads through `bytes`.
            let contained = info.location().is_some_and(|l| {
                l.file().contains("/bytes-")
                    || (l.file().contains("/pgwire-") && l.file().contains("/messages/"))
            });
            if !contained {
                eprintln!(
                    "router panicked: {info}\n{}",
                    std::backtrace::Backtrace::force_capture()
                );
                std::process::abort();
            }
        }));
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let dir = tempfile::tempdir().expect("tempdir").keep();
                let log: Arc<dyn wal_bus::Log> = Arc::new(
                    wal_bus::FileLog::open(&dir.join("log"), &wal_bus::LogConfig::default())
                        .expect("log"),
                );
                let acks = Arc::new(wal_bus::AckBoard::default());
                let clock = Arc::new(wal_bus::HlcClock::new().expect("clock"));
                let handle = replica::spawn_applier(replica::ApplierOptions {
                    name: "r1".into(),
                    path: dir.join("r1.db"),
                    log: log.clone(),
                    acks: acks.clone(),
                    clock: Some(clock.clone()),
                    cancel: tokio_util::sync::CancellationToken::new(),
                    runtime: tokio::runtime::Handle::current(),
                    snapshots: None,
                })
                .expect("replica");
                let mut config = router::config::RouterConfig::default();
                config.max_statement_bytes = 1 << 16;
                config.read_timeout_ms = 500;
                let shared = Arc::new(
                    router::Shared::new(router::SharedOptions {
                        name: "r1".into(),
                        log,
                        acks,
                        clock,
                        replica: handle.state.clone(),
                        all_replicas: vec![handle.state.clone()],
                        replication: router::config::ReplicationConfig::default(),
                        config,
                    })
                    .expect("router"),
                );
                std::mem::forget(handle);
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                    .await
                    .expect("bind");
                tx.send(listener.local_addr().expect("addr").port())
                    .expect("port");
                // The router's own accept loop, as `tributary up` runs it.
                router::serve(listener, shared, tokio_util::sync::CancellationToken::new()).await;
            });
        });
        rx.recv().expect("router started")
    })
}

fn startup() -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&196_608u32.to_be_bytes()); // protocol 3.0
    for s in ["user", "fuzz", "database", "fuzz"] {
        body.extend_from_slice(s.as_bytes());
        body.push(0);
    }
    body.push(0);
    let mut msg = ((body.len() + 4) as u32).to_be_bytes().to_vec();
    msg.extend(body);
    msg
}

fuzz_target!(|data: &[u8]| {
    let port = router_port();
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let mut bytes = startup();
    bytes.extend_from_slice(data);
    let _ = s.write_all(&bytes);
    let _ = s.shutdown(Shutdown::Write);
    let mut sink = Vec::new();
    let _ = s.read_to_end(&mut sink);
    assert!(
        router_answers(port),
        "the router stopped answering after {data:?}"
    );
});

/// A new client gets a row back for `SELECT 1`.
fn router_answers(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
    let mut bytes = startup();
    let q = b"SELECT 1\0";
    bytes.push(b'Q');
    bytes.extend_from_slice(&((q.len() + 4) as u32).to_be_bytes());
    bytes.extend_from_slice(q);
    bytes.extend_from_slice(&[b'X', 0, 0, 0, 4]);
    if s.write_all(&bytes).is_err() {
        return false;
    }
    let mut reply = Vec::new();
    let _ = s.read_to_end(&mut reply);
    // DataRow: 'D', length 11, one column, length 1, "1".
    reply.windows(4).any(|w| w == [0, 1, 0, 0]) && reply.contains(&b'D')
}
