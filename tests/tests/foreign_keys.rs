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
    // In PostgreSQL's words, constraint and key named.
    let db = err
        .as_db_error()
        .map(|d| (d.message().to_owned(), d.detail().map(str::to_owned)));
    ensure!(
        db == Some((
            "insert or update on table \"kid\" violates foreign key constraint \"kid_p_fkey\""
                .into(),
            Some("Key (p)=(3) is not present in table \"par\".".into())
        )),
        "{db:?}"
    );
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
    let detail = err.as_db_error().and_then(|d| d.detail()).unwrap_or("");
    ensure!(
        detail == "Key (code)=(b) is still referenced from table \"loose\".",
        "{err}: {detail}"
    );
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
/// children that reference them, in autocommit and in transaction blocks:
/// every write either lands or is refused
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
                // Workers 1 and 3 write inside transaction blocks, where
                // the parent's row lock is held until COMMIT.
                let block = worker % 2 == 1;
                if block {
                    session.batch_execute("BEGIN").await?;
                }
                match session.batch_execute(&sql).await {
                    Ok(()) if block => {
                        session.batch_execute("SELECT 1").await?;
                        session.batch_execute("COMMIT").await?;
                        landed += 1;
                    }
                    Ok(()) => landed += 1,
                    Err(e) if code(&e) == "23503" => {
                        if block {
                            session.batch_execute("ROLLBACK").await?;
                        }
                    }
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

/// Inside transaction blocks a foreign key locks the parent row it
/// references, as PostgreSQL's `FOR KEY SHARE` does: a child's insert
/// waits for a transaction that deleted its parent, a parent's delete
/// waits for a transaction that inserted a child, and either then sees
/// the other's committed write (23503). Updates of the parent's other
/// columns are not held up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_transactions_lock_the_parent_rows_they_reference() -> Result<()> {
    let cluster = Cluster::in_process(2, 1, None).await?;
    let a = cluster.connect(0).await?;
    let b = cluster.connect(0).await?;
    a.batch_execute(
        "CREATE TABLE par (id int PRIMARY KEY, name text);
         CREATE TABLE kid (id int PRIMARY KEY, p int REFERENCES par);
         INSERT INTO par VALUES (1, 'one'), (2, 'two'), (3, 'three');",
    )
    .await?;
    b.batch_execute("SET lock_timeout = '300ms'").await?;
    let shown: String = b.query_one("SHOW lock_timeout", &[]).await?.get(0);
    ensure!(shown == "300ms", "{shown}");

    // A deletes parent 1 in an open block: B's child of 1 cannot land.
    a.batch_execute("BEGIN; DELETE FROM par WHERE id = 1")
        .await?;
    let err = b
        .batch_execute("INSERT INTO kid VALUES (10, 1)")
        .await
        .expect_err("the parent's delete holds it");
    ensure!(code(&err) == "55P03", "{err}");
    // Another parent is free.
    b.batch_execute("INSERT INTO kid VALUES (11, 2)").await?;
    // Waiting (no timeout) until A commits, B then finds the parent gone.
    b.batch_execute("SET lock_timeout = 0").await?;
    let b = std::sync::Arc::new(b);
    let waiting = {
        let b = b.clone();
        tokio::spawn(async move { b.batch_execute("INSERT INTO kid VALUES (12, 1)").await })
    };
    a.batch_execute("COMMIT").await?;
    let err = waiting.await?.expect_err("parent 1 is gone");
    ensure!(code(&err) == "23503", "{err}");

    // B inserts a child of 3 in an open block: A's delete of 3 waits, an
    // update of its name does not.
    b.batch_execute("BEGIN; INSERT INTO kid VALUES (13, 3)")
        .await?;
    a.batch_execute("SET lock_timeout = '300ms'").await?;
    a.batch_execute("UPDATE par SET name = 'drei' WHERE id = 3")
        .await?;
    let err = a
        .batch_execute("DELETE FROM par WHERE id = 3")
        .await
        .expect_err("the child's block holds its parent");
    ensure!(code(&err) == "55P03", "{err}");
    b.batch_execute("COMMIT").await?;
    let err = a
        .batch_execute("DELETE FROM par WHERE id = 3")
        .await
        .expect_err("child 13 references it now");
    ensure!(code(&err) == "23503", "{err}");

    cluster.replicas_agree().await?;
    let kids: Vec<i32> = a
        .query("SELECT id FROM kid ORDER BY id", &[])
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    ensure!(kids == vec![11, 13], "{kids:?}");
    let orphans: i64 = a
        .query_one(
            "SELECT count(*) FROM kid WHERE p NOT IN (SELECT id FROM par)",
            &[],
        )
        .await?
        .get(0);
    ensure!(orphans == 0, "{orphans} children without a parent");
    cluster.shutdown().await;
    Ok(())
}

/// Across routers there is no foreign-key lock: a parent deleted through
/// one router while a child of it is inserted through another leaves an
/// orphan (the README says so), but every replica holds the same rows and
/// no acknowledged write is lost (replicas once applied with SQLite's
/// foreign keys on, and dropped the acknowledged delete).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cross_router_race_loses_no_acknowledged_write() -> Result<()> {
    let cluster = Cluster::in_process(2, 2, None).await?;
    let a = cluster.connect(0).await?;
    let b = cluster.connect(1).await?;
    a.batch_execute(
        "CREATE TABLE par (id int PRIMARY KEY);
         CREATE TABLE kid (id int PRIMARY KEY, p int REFERENCES par);
         INSERT INTO par VALUES (1), (2);",
    )
    .await?;
    cluster.wait_converged().await?;
    a.batch_execute("BEGIN; DELETE FROM par WHERE id = 1")
        .await?;
    b.batch_execute("INSERT INTO kid VALUES (10, 1)").await?;
    a.batch_execute("COMMIT").await?;
    cluster.replicas_agree().await?;
    for c in [&a, &b] {
        let kids: i64 = c.query_one("SELECT count(*) FROM kid", &[]).await?.get(0);
        let parents: i64 = c.query_one("SELECT count(*) FROM par", &[]).await?.get(0);
        ensure!((kids, parents) == (1, 1), "kids {kids}, parents {parents}");
    }
    cluster.shutdown().await;
    Ok(())
}

/// `ALTER TABLE … DROP CONSTRAINT` by the name given or the one the catalog
/// shows; a table or unique constraint a foreign key references is not
/// dropped from under it (2BP01), as PostgreSQL refuses without CASCADE.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn constraints_drop_by_name_and_referenced_objects_stay() -> Result<()> {
    let cluster = Cluster::in_process(2, 1, None).await?;
    let c = cluster.connect(0).await?;
    c.batch_execute(
        "CREATE TABLE p (id int PRIMARY KEY, code text UNIQUE, n int CHECK (n > 0));
         CREATE TABLE k (id int PRIMARY KEY, p int REFERENCES p, c text,
             CONSTRAINT k_c_fk FOREIGN KEY (c) REFERENCES p (code));
         INSERT INTO p VALUES (1, 'a', 1);
         INSERT INTO k VALUES (1, 1, 'a');",
    )
    .await?;
    for (sql, state) in [
        ("DROP TABLE p", "2BP01"),
        ("ALTER TABLE p DROP CONSTRAINT p_code_key", "2BP01"),
        ("ALTER TABLE p DROP CONSTRAINT p_pkey", "0A000"),
        ("ALTER TABLE p DROP CONSTRAINT nope", "42704"),
        ("INSERT INTO k VALUES (2, 99, 'a')", "23503"),
    ] {
        let err = c.batch_execute(sql).await.expect_err(sql);
        ensure!(code(&err) == state, "{sql}: {err}");
    }
    c.batch_execute(
        "ALTER TABLE p DROP CONSTRAINT IF EXISTS nope;
         ALTER TABLE k DROP CONSTRAINT k_p_fkey;
         INSERT INTO k VALUES (2, 99, 'a');
         ALTER TABLE k DROP CONSTRAINT k_c_fk;
         ALTER TABLE p DROP CONSTRAINT p_code_key;
         ALTER TABLE p DROP CONSTRAINT p_n_check;
         INSERT INTO p VALUES (2, 'a', -1);
         DROP TABLE p;",
    )
    .await?;
    cluster.replicas_agree().await?;
    let kids: i64 = c.query_one("SELECT count(*) FROM k", &[]).await?.get(0);
    ensure!(kids == 2, "{kids}");
    cluster.shutdown().await;
    Ok(())
}
