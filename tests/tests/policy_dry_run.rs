//! `tributary policy dry-run` against the real binary: conflicts made
//! under lww are replayed under a counter policy and under
//! first-writer-wins, and the reported differences are the hand-computed
//! ones; `--from` narrows the conflicts reported; nothing in the cluster
//! changes.

use anyhow::{Context, Result, ensure};
use serde_json::Value;
use tests::{Cluster, dump};
use tokio_postgres::Client;

/// Two routers add to the same counter in open transactions, then commit:
/// the second record applied was computed without the first.
async fn race(a: &Client, b: &Client, id: i32) -> Result<()> {
    a.batch_execute(&format!("BEGIN; UPDATE c SET n = n + 1 WHERE id = {id}"))
        .await?;
    b.batch_execute(&format!("BEGIN; UPDATE c SET n = n + 5 WHERE id = {id}"))
        .await?;
    a.batch_execute("COMMIT").await?;
    b.batch_execute("COMMIT").await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_reports_what_a_candidate_policy_would_change() -> Result<()> {
    let cluster = Cluster::start(2, 2, &[]).await?;
    let (a, b) = (cluster.connect(0).await?, cluster.connect(1).await?);
    a.batch_execute("CREATE TABLE c (id int PRIMARY KEY, n bigint NOT NULL); INSERT INTO c VALUES (1, 0), (2, 0), (3, 0)")
        .await?;
    cluster.wait_converged().await?;
    race(&a, &b, 1).await?;
    race(&a, &b, 2).await?;
    cluster.wait_converged().await?;
    // Under lww the later commit (+5) won both rows; row 3 had no conflict.
    let before = dump(&cluster.replica_path(0))?;
    let n = |id: i32| {
        let a = &a;
        async move {
            anyhow::Ok(
                a.query_one("SELECT n FROM c WHERE id = $1", &[&id])
                    .await?
                    .get::<_, i64>(0),
            )
        }
    };
    ensure!((n(1).await?, n(2).await?, n(3).await?) == (5, 5, 0));

    let dir = tempfile::tempdir()?;
    let data = cluster
        .replica_path(0)
        .parent()
        .context("data dir")?
        .to_path_buf();
    let dry_run = |policy: &str, extra: &[&str]| -> Result<Value> {
        let file = dir.path().join("candidate.toml");
        std::fs::write(&file, policy)?;
        let mut args = vec!["policy", "dry-run"];
        let (file, data) = (file.display().to_string(), data.display().to_string());
        args.extend([file.as_str(), "--data-dir", data.as_str(), "--json"]);
        args.extend(extra);
        let out = cluster.tributary(&args)?;
        ensure!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(serde_json::from_slice(&out.stdout)?)
    };
    let final_n = |report: &Value, id: i64| -> Option<(i64, i64)> {
        report["rows"].as_array()?.iter().find_map(|r| {
            (r["key"]["id"] == id).then(|| {
                (
                    r["actual"]["n"].as_i64().unwrap_or(-1),
                    r["candidate"]["n"].as_i64().unwrap_or(-1),
                )
            })
        })
    };

    // A counter keeps both increments: 1 + 5.
    let counter = dry_run("[tables.c]\ncolumns.n = \"counter\"\n", &[])?;
    ensure!(
        final_n(&counter, 1) == Some((5, 6)) && final_n(&counter, 2) == Some((5, 6)),
        "{counter}"
    );
    ensure!(
        final_n(&counter, 3).is_none() && counter["rows"].as_array().map(Vec::len) == Some(2),
        "{counter}"
    );
    let conflicts = counter["conflicts"].as_array().context("conflicts")?;
    ensure!(conflicts.len() == 2, "{counter}");
    for c in conflicts {
        ensure!(
            c["kind"] == "update_before_mismatch" && c["table"] == "c",
            "{c}"
        );
        ensure!(
            c["actual"]["strategy"] == "lww" && c["candidate"]["strategy"] == "counter",
            "{c}"
        );
    }
    ensure!(
        counter["tables"][0]["rows_changed"] == 2
            && counter["tables"][0]["conflict_outcomes_changed"] == 2,
        "{counter}"
    );

    // First-writer-wins rejects the later commit: the first (+1) stays.
    let fww = dry_run("default = \"first-writer-wins\"\n", &[])?;
    ensure!(
        final_n(&fww, 1) == Some((5, 1)) && final_n(&fww, 2) == Some((5, 1)),
        "{fww}"
    );
    ensure!(
        fww["conflicts"]
            .as_array()
            .is_some_and(|c| c.len() == 2
                && c.iter().all(|c| c["actual"]["winner"] == "applied"
                    && c["candidate"]["winner"] == "rejected")),
        "{fww}"
    );

    // --from after the first conflict reports only the second one.
    let second = conflicts[1]["offset"].as_u64().context("offset")?;
    let from = second.to_string();
    let late = dry_run("default = \"first-writer-wins\"\n", &["--from", &from])?;
    ensure!(
        late["conflicts"]
            .as_array()
            .is_some_and(|c| c.len() == 1 && c[0]["offset"] == second),
        "{late}"
    );
    // A window ending before the races changes nothing.
    let first = conflicts[0]["offset"]
        .as_u64()
        .context("offset")?
        .to_string();
    let early = dry_run("default = \"first-writer-wins\"\n", &["--to", &first])?;
    ensure!(
        early["rows"].as_array().is_some_and(Vec::is_empty),
        "{early}"
    );

    ensure!(
        dump(&cluster.replica_path(0))? == before,
        "the dry run changed a replica"
    );
    cluster.shutdown().await;
    Ok(())
}
