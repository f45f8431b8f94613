//! Foreign keys through a router (issue 12): enforced as PostgreSQL
//! enforces them, checked against the rows the router sees; cascades are
//! captured in the record, so every replica ends with the same rows; `ALTER
//! TABLE … ADD FOREIGN KEY` validates the rows already there.

use anyhow::{Result, ensure};
use tests::Cluster;

fn code(e: &tokio_postgres::Error) -> String {
    e.code().map(|c| c.code().to_owned()).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_keys_are_enforced_and_cascades_replicate() -> Result<()> {
    let cluster = Cluster::in_process(2, 1, None).await?;
    let c = cluster.connect(0).await?;
    c.batch_execute(
        "CREATE TABLE par (id int PRIMARY KEY, code text UNIQUE);
         CREATE TABLE kid (id int PRIMARY KEY,
             p int REFERENCES par ON DELETE CASCADE DEFERRABLE INITIALLY DEFERRED);
         CREATE TABLE loose (id int PRIMARY KEY, code text);
         INSERT INTO par VALUES (1, 'a'), (2, 'b');
         INSERT INTO kid VALUES (10, 1), (11, 2), (12, NULL);",
    )
    .await?;
    // An orphan is refused, alone or inside a block (which stays usable
    // after ROLLBACK TO, as in PostgreSQL).
    let err = c
        .batch_execute("INSERT INTO kid VALUES (13, 3)")
        .await
        .expect_err("orphan");
    ensure!(code(&err) == "23503", "{err}");
    c.batch_execute("BEGIN; INSERT INTO par VALUES (3, 'c'); SAVEPOINT s")
        .await?;
    let err = c
        .batch_execute("UPDATE kid SET p = 99 WHERE id = 10")
        .await
        .expect_err("orphan by update");
    ensure!(code(&err) == "23503", "{err}");
    c.batch_execute("ROLLBACK TO SAVEPOINT s; INSERT INTO kid VALUES (13, 3); COMMIT")
        .await?;
    // The cascade's deletes travel in the record.
    c.batch_execute("DELETE FROM par WHERE id = 1").await?;
    let left: Vec<i32> = c
        .query("SELECT id FROM kid ORDER BY id", &[])
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    ensure!(left == vec![11, 12, 13], "{left:?}");
    // ADD FOREIGN KEY checks the rows there, by the parent's unique column.
    c.batch_execute("INSERT INTO loose VALUES (1, 'b'), (2, 'zz')")
        .await?;
    let err = c
        .batch_execute("ALTER TABLE loose ADD CONSTRAINT loose_code_fkey FOREIGN KEY (code) REFERENCES par (code)")
        .await
        .expect_err("row 2 has no parent");
    ensure!(code(&err) == "23503", "{err}");
    c.batch_execute(
        "DELETE FROM loose WHERE id = 2;
         ALTER TABLE loose ADD CONSTRAINT loose_code_fkey FOREIGN KEY (code) REFERENCES par (code)",
    )
    .await?;
    let err = c
        .batch_execute("INSERT INTO loose VALUES (3, 'nope')")
        .await
        .expect_err("enforced after ALTER");
    ensure!(code(&err) == "23503", "{err}");
    let err = c
        .batch_execute("DELETE FROM par WHERE id = 2")
        .await
        .expect_err("loose still references b");
    ensure!(code(&err) == "23503", "{err}");
    // psql shows both directions, as PostgreSQL does.
    let out = cluster.psql(0, &["\\d par", "\\d kid"])?;
    for line in [
        "    TABLE \"kid\" CONSTRAINT \"kid_p_fkey\" FOREIGN KEY (p) REFERENCES par(id) ON DELETE CASCADE",
        "    TABLE \"loose\" CONSTRAINT \"loose_code_fkey\" FOREIGN KEY (code) REFERENCES par(code)",
        "    \"kid_p_fkey\" FOREIGN KEY (p) REFERENCES par(id) ON DELETE CASCADE",
    ] {
        ensure!(out.contains(line), "missing {line:?} in:\n{out}");
    }
    cluster.replicas_agree().await?;
    cluster.shutdown().await;
    Ok(())
}

/// Through one router, sessions deleting parents race sessions inserting
/// children that reference them: every write either lands or is refused
/// with 23503, and no child is ever left without its parent (a check made
/// on a state that missed the other session's write would leave one).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_parent_deletes_and_child_inserts_leave_no_orphan() -> Result<()> {
    let cluster = Cluster::in_process(2, 1, None).await?;
    let c = cluster.connect(0).await?;
    c.batch_execute(
        "CREATE TABLE par (id int PRIMARY KEY);
         CREATE TABLE kid (id int PRIMARY KEY, p int REFERENCES par);
         INSERT INTO par (id) WITH RECURSIVE s(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM s WHERE x < 40) SELECT x FROM s;",
    )
    .await?;
    let mut tasks = Vec::new();
    for worker in 0..4u32 {
        let session = cluster.connect(0).await?;
        tasks.push(tokio::spawn(async move {
            let mut landed = 0u32;
            for k in 0..40u32 {
                let sql = if worker < 2 {
                    // Deleters walk the parents from both ends.
                    let id = if worker == 0 { k + 1 } else { 40 - k };
                    format!("DELETE FROM par WHERE id = {id}")
                } else {
                    let id = 1000 * worker + k;
                    let p = (k * 7 + worker) % 40 + 1;
                    format!("INSERT INTO kid VALUES ({id}, {p})")
                };
                match session.batch_execute(&sql).await {
                    Ok(()) => landed += 1,
                    Err(e) if code(&e) == "23503" => {}
                    Err(e) => return Err(anyhow::anyhow!("{sql}: {e}")),
                }
            }
            Ok::<u32, anyhow::Error>(landed)
        }));
    }
    let mut inserted = 0;
    for (worker, t) in tasks.into_iter().enumerate() {
        let landed = t.await??;
        if worker >= 2 {
            inserted += landed;
        }
    }
    cluster.replicas_agree().await?;
    let kids: i64 = c.query_one("SELECT count(*) FROM kid", &[]).await?.get(0);
    let orphans: i64 = c
        .query_one(
            "SELECT count(*) FROM kid WHERE p NOT IN (SELECT id FROM par)",
            &[],
        )
        .await?
        .get(0);
    ensure!(orphans == 0, "{orphans} children without a parent");
    ensure!(
        kids == i64::from(inserted),
        "{kids} children, {inserted} inserts acknowledged"
    );
    cluster.shutdown().await;
    Ok(())
}
