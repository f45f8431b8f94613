//! psycopg against the real binary: generated keys across routers, and the
//! transaction state drivers rely on after a failed COMMIT.

use std::process::Command;

use anyhow::{Context, Result, ensure};
use tests::Cluster;

fn python(script: &str, args: &[&str]) -> Result<String> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("python")
        .join(script);
    let out = Command::new("python3")
        .arg(&path)
        .args(args)
        .output()
        .context("running python3 (scripts/setup.sh --tests installs psycopg)")?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    ensure!(
        out.status.success(),
        "{script} failed:\n{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(stdout)
}

/// 1,000 rows inserted into a SERIAL table by 8 sessions spread over 3
/// routers get 1,000 distinct ids, RETURNING shows each, and every replica
/// holds exactly those rows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serial_ids_are_unique_across_routers() -> Result<()> {
    let cluster = Cluster::start(3, 3, &[]).await?;
    cluster
        .connect(0)
        .await?
        .batch_execute("CREATE TABLE items (id SERIAL PRIMARY KEY, name TEXT)")
        .await?;
    cluster.wait_converged().await?;
    let ports: Vec<String> = (0..3).map(|r| cluster.router_port(r).to_string()).collect();
    let out = python("serial_ids.py", &[&ports.join(","), "125"])?;
    let mut returned: Vec<i64> = serde_json::from_str(out.trim())?;
    returned.sort_unstable();
    returned.dedup();
    ensure!(
        returned.len() == 1000,
        "RETURNING gave {} distinct ids",
        returned.len()
    );
    cluster.wait_converged().await?;
    let first = tests::dump(&cluster.replica_path(0))?;
    for i in 0..3 {
        let conn = rusqlite::Connection::open(cluster.replica_path(i))?;
        let mut stmt = conn.prepare("SELECT id FROM items ORDER BY id")?;
        let stored: Vec<i64> = stmt
            .query_map([], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        ensure!(
            stored == returned,
            "replica {} holds {} rows whose ids differ from the {} returned",
            i + 1,
            stored.len(),
            returned.len()
        );
        let conflicts: i64 =
            conn.query_row("SELECT count(*) FROM tributary_conflicts", [], |r| r.get(0))?;
        ensure!(conflicts == 0, "generated keys met {conflicts} conflicts");
        ensure!(
            tests::dump(&cluster.replica_path(i))? == first,
            "replica {} differs",
            i + 1
        );
    }
    // A key the client leaves NULL in a table whose key is not generated
    // is refused, never acknowledged.
    let c = cluster.connect(0).await?;
    c.batch_execute("CREATE TABLE kv (k BIGINT PRIMARY KEY, v TEXT)")
        .await?;
    let err = c
        .execute("INSERT INTO kv (v) VALUES ('no key')", &[])
        .await
        .err()
        .and_then(|e| e.code().map(|c| c.code().to_owned()));
    ensure!(
        err.as_deref() == Some("23502"),
        "keyless insert gave {err:?}"
    );
    Ok(())
}

/// A COMMIT refused with 40001 leaves the session idle (ReadyForQuery
/// `I`), errors inside a block leave it failed until ROLLBACK, and
/// psycopg's `with conn.transaction()` retry loop keeps working.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_commit_ends_the_transaction_for_psycopg() -> Result<()> {
    let cluster = Cluster::start(2, 2, &[]).await?;
    let c = cluster.connect(0).await?;
    c.batch_execute("CREATE TABLE acct (id BIGINT PRIMARY KEY, n BIGINT NOT NULL); INSERT INTO acct VALUES (1, 0), (2, 0)")
        .await?;
    c.batch_execute(
        "SET tributary.apply_policy = 'default = \"lww\"\n[tables.acct]\nstrategy = \"first-writer-wins\"\n'",
    )
    .await?;
    cluster.wait_converged().await?;
    let out = python(
        "txn_state.py",
        &[
            &cluster.router_port(0).to_string(),
            &cluster.router_port(1).to_string(),
        ],
    )?;
    eprintln!("{out}");
    Ok(())
}
