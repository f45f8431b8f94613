//! Authentication and limits through the real binary: SCRAM-SHA-256 with
//! psql and tokio-postgres, refused connections without valid credentials,
//! max_connections / max_statement_bytes / max_result_rows with their
//! SQLSTATEs, and hostile bytes that must not disturb other clients.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use tests::{Cluster, binary};
use tokio::io::AsyncWriteExt;
use tokio_postgres::{Client, NoTls};

fn verifier_entry(name: &str, password: &str) -> Result<String> {
    let mut child = Command::new(binary()?)
        .args(["passwd", name])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()?;
    child
        .stdin
        .take()
        .context("stdin")?
        .write_all(format!("{password}\n").as_bytes())?;
    let out = child.wait_with_output()?;
    ensure!(out.status.success(), "tributary passwd failed");
    let text = String::from_utf8(out.stdout)?;
    ensure!(
        !text.contains(password),
        "the password itself must not be printed"
    );
    Ok(text)
}

async fn connect(port: u16, user: &str, password: &str) -> Result<Client> {
    let (client, conn) = tokio_postgres::connect(
        &format!(
            "host=127.0.0.1 port={port} user={user} password='{password}' dbname=app connect_timeout=5"
        ),
        NoTls,
    )
    .await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(client)
}

fn psql(port: u16, user: &str, password: Option<&str>, sql: &str) -> Result<(bool, String)> {
    let mut cmd = Command::new("psql");
    cmd.args([
        "-X",
        "-w",
        "-h",
        "127.0.0.1",
        "-p",
        &port.to_string(),
        "-U",
        user,
        "-d",
        "app",
    ])
    .args(["-v", "ON_ERROR_STOP=1", "-c", sql])
    .env_remove("PGPASSWORD");
    if let Some(p) = password {
        cmd.env("PGPASSWORD", p);
    }
    let out = cmd.output().context("running psql")?;
    Ok((
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    ))
}

/// A protocol 3.0 startup message for `user`.
fn startup_message(user: &str) -> Vec<u8> {
    let mut body = 196_608u32.to_be_bytes().to_vec();
    for s in ["user", user, "database", "app"] {
        body.extend_from_slice(s.as_bytes());
        body.push(0);
    }
    body.push(0);
    let mut msg = ((body.len() + 4) as u32).to_be_bytes().to_vec();
    msg.extend(body);
    msg
}

fn sqlstate(e: &tokio_postgres::Error) -> String {
    e.code().map(|c| c.code().to_owned()).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scram_auth_and_limits_protect_the_router() -> Result<()> {
    let users = verifier_entry("app", "s3cret pass")? + &verifier_entry("ops", "other")?;
    let config = format!(
        "[router]\nmax_connections = 12\nmax_result_rows = 100\nmax_statement_bytes = 10000\n\
         [router.auth]\nmethod = \"scram-sha-256\"\n{users}"
    );
    let cluster = Cluster::in_process(2, 1, Some(&config)).await?;
    let port = cluster.router_port(0);

    // psql: no password, wrong password, unknown user are refused; the right one works.
    let (ok, text) = psql(port, "app", None, "SELECT 1")?;
    ensure!(!ok && text.contains("password"), "no password: {text}");
    let (ok, text) = psql(port, "app", Some("wrong"), "SELECT 1")?;
    ensure!(
        !ok && text.contains("password authentication failed"),
        "wrong password: {text}"
    );
    let (ok, text) = psql(port, "nobody", Some("s3cret pass"), "SELECT 1")?;
    ensure!(
        !ok && text.contains("password authentication failed"),
        "unknown user: {text}"
    );
    let (ok, text) = psql(
        port,
        "app",
        Some("s3cret pass"),
        "CREATE TABLE t (id BIGINT PRIMARY KEY, v TEXT)",
    )?;
    ensure!(ok, "right password: {text}");

    // tokio-postgres (extended protocol) with SCRAM.
    let c = connect(port, "ops", "other").await?;
    for i in 0..150i64 {
        c.execute("INSERT INTO t VALUES ($1, 'x')", &[&i]).await?;
    }
    let n: i64 = c.query_one("SELECT count(*) FROM t", &[]).await?.get(0);
    ensure!(n == 150);
    ensure!(connect(port, "ops", "wrong").await.is_err());

    // Result rows over the limit: 54000, and the session goes on.
    let err = c
        .query("SELECT * FROM t", &[])
        .await
        .err()
        .context("limit")?;
    ensure!(sqlstate(&err) == "54000", "{err:?}");
    ensure!(format!("{err:?}").contains("max_result_rows"), "{err:?}");
    ensure!(c.query("SELECT * FROM t LIMIT 100", &[]).await?.len() == 100);

    // A statement over max_statement_bytes: 54000.
    let huge = format!("SELECT '{}'", "x".repeat(20_000));
    let err = c.simple_query(&huge).await.err().context("size limit")?;
    ensure!(sqlstate(&err) == "54000", "{err:?}");

    // Garbage and half messages on raw sockets do not disturb anyone.
    let mut raw = Vec::new();
    for i in 0..5u8 {
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
        let junk: Vec<u8> = (0..200u32)
            .map(|j| (j as u8).wrapping_mul(31).wrapping_add(i))
            .collect();
        let _ = s.write_all(&junk).await;
        raw.push(s);
    }
    for _ in 0..3 {
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
        // A startup message header promising more bytes than ever come.
        let _ = s.write_all(&[0, 0, 0, 100, 0, 3, 0, 0]).await;
        raw.push(s);
    }
    let n: i64 = c.query_one("SELECT count(*) FROM t", &[]).await?.get(0);
    ensure!(n == 150, "other clients keep working");
    drop(raw);

    // max_connections: the 13th connection gets 53300; the others keep working.
    let mut held = vec![c];
    while held.len() < 12 {
        match connect(port, "app", "s3cret pass").await {
            Ok(client) => held.push(client),
            Err(e) => {
                // Raw sockets above may not be closed by the router yet.
                tokio::time::sleep(Duration::from_millis(100)).await;
                let code = e.downcast_ref::<tokio_postgres::Error>().map(sqlstate);
                ensure!(code.as_deref() == Some("53300"), "unexpected: {e:?}");
            }
        }
    }
    let err = connect(port, "app", "s3cret pass")
        .await
        .err()
        .context("13th")?;
    let e = err
        .downcast_ref::<tokio_postgres::Error>()
        .context("pg error")?;
    ensure!(sqlstate(e) == "53300", "{err:?}");
    ensure!(format!("{e:?}").contains("max_connections"), "{e:?}");
    for h in &held {
        h.query_one("SELECT 1", &[]).await?;
    }
    drop(held.pop());
    tests::eventually(Duration::from_secs(10), "a slot frees up", || async move {
        Ok(connect(port, "app", "s3cret pass").await.ok().map(|_| ()))
    })
    .await?;
    cluster.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_auth_config_is_refused_at_start() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let cfg = dir.path().join("node.toml");
    std::fs::write(
        &cfg,
        "[router.auth]\nmethod = \"scram-sha-256\"\n[[router.auth.users]]\nname = \"app\"\npassword = \"plaintext\"\n",
    )?;
    let out = Command::new(binary()?)
        .args(["up", "--config"])
        .arg(&cfg)
        .args(["--data-dir"])
        .arg(dir.path().join("data"))
        .output()?;
    let text = String::from_utf8_lossy(&out.stderr);
    ensure!(!out.status.success());
    ensure!(
        text.contains("router.auth.users.password") && text.contains("tributary passwd"),
        "{text}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fuzz_regressions_close_only_their_connection() -> Result<()> {
    let cluster = Cluster::start(1, 1, &[]).await?;
    let port = cluster.router_port(0);
    let c = cluster.connect(0).await?;
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/regressions/router_messages");
    let mut inputs = 0;
    for entry in std::fs::read_dir(&dir)? {
        // Each input found by the router_messages fuzz target, sent after a
        // valid startup as the target does (the first: a Bind announcing 23
        // parameter formats it does not carry made pgwire's decoder panic).
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
        let mut bytes = startup_message("fuzz");
        bytes.extend_from_slice(&std::fs::read(entry?.path())?);
        let _ = s.write_all(&bytes).await;
        let _ = s.shutdown().await;
        let mut sink = Vec::new();
        let _ = tokio::time::timeout(
            Duration::from_secs(10),
            tokio::io::AsyncReadExt::read_to_end(&mut s, &mut sink),
        )
        .await;
        inputs += 1;
        let rows = c.simple_query("SELECT 1").await?;
        ensure!(
            rows.iter()
                .any(|m| matches!(m, tokio_postgres::SimpleQueryMessage::Row(_))),
            "the router still serves other clients"
        );
    }
    ensure!(inputs > 0, "no regression inputs in {}", dir.display());
    let text = std::fs::read_to_string(cluster.dir.join("tributary.log"))?;
    ensure!(
        text.contains("malformed message from client"),
        "{}",
        cluster.log_tail()
    );
    Ok(())
}
