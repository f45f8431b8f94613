//! PostgreSQL's types and the drivers that check them: date/time, UUID and
//! JSON columns through tokio-postgres (text and binary) and asyncpg's
//! pool with typed values.

use anyhow::{Context, Result, ensure};
use tests::Cluster;

fn code(e: &tokio_postgres::Error) -> String {
    e.code().map(|c| c.code().to_owned()).unwrap_or_default()
}

/// asyncpg's pool: acquire/release (its reset statements), parameters and
/// nested transactions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn asyncpg_pool_and_nested_transactions() -> Result<()> {
    let cluster = Cluster::in_process(2, 1, None).await?;
    cluster.run_driver("asyncpg_pool.py").await?;
    cluster.shutdown().await;
    Ok(())
}

/// Date/time, UUID and JSON columns report their own types and hold
/// PostgreSQL's values: literals are stored in canonical form (so a typed
/// parameter finds them), a value that is none of the type is refused,
/// and results come back as the type in text and binary.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typed_columns_round_trip() -> Result<()> {
    let cluster = Cluster::in_process(2, 1, None).await?;
    let c = cluster.connect(0).await?;
    c.batch_execute(
        "CREATE TABLE tv (id INTEGER PRIMARY KEY, at TIMESTAMP, d DATE, u UUID, j JSONB);
         INSERT INTO tv VALUES (1, '2024-05-06T07:08:09', '2024-5-6', '550E8400-E29B-41D4-A716-446655440000', '{\"a\": [1]}')",
    )
    .await?;
    let d = chrono::NaiveDate::from_ymd_opt(2024, 5, 6).context("date")?;
    let u = uuid::Uuid::parse_str("550e8400-e29b-41d4-a716-446655440000")?;
    // Binary results of the real types; the literal's spelling was made
    // canonical, so typed parameters match it.
    let row = c
        .query_one(
            "SELECT at, d, u, j FROM tv WHERE d = $1 AND u = $2",
            &[&d, &u],
        )
        .await?;
    let at: chrono::NaiveDateTime = row.try_get(0)?;
    ensure!(at == d.and_hms_opt(7, 8, 9).context("time")?, "{at}");
    ensure!(row.try_get::<_, chrono::NaiveDate>(1)? == d);
    ensure!(row.try_get::<_, uuid::Uuid>(2)? == u);
    ensure!(row.try_get::<_, serde_json::Value>(3)? == serde_json::json!({"a": [1]}));
    // Text results as PostgreSQL prints them.
    let text = c.simple_query("SELECT at, d, u FROM tv").await?;
    let first = text.iter().find_map(|m| match m {
        tokio_postgres::SimpleQueryMessage::Row(r) => Some(r),
        _ => None,
    });
    let first = first.context("a row")?;
    ensure!(
        first.get(0) == Some("2024-05-06 07:08:09"),
        "{:?}",
        first.get(0)
    );
    ensure!(first.get(1) == Some("2024-05-06"));
    ensure!(first.get(2) == Some("550e8400-e29b-41d4-a716-446655440000"));
    // now() is a timestamptz: a timestamp or date column takes it as
    // PostgreSQL's assignment does (the zone dropped, the date kept).
    c.batch_execute("INSERT INTO tv (id, at, d) VALUES (4, now(), now())")
        .await?;
    let kept = c
        .query_one(
            "SELECT count(*) FROM tv WHERE id = 4 AND d IS NOT NULL AND at IS NOT NULL",
            &[],
        )
        .await?;
    ensure!(kept.try_get::<_, i64>(0)? == 1);
    for (sql, state) in [
        ("INSERT INTO tv (id, at) VALUES (2, 'garbage')", "22007"),
        ("INSERT INTO tv (id, u) VALUES (3, 'xyz')", "22P02"),
        ("UPDATE tv SET j = '{nope' WHERE id = 1", "22P02"),
    ] {
        let e = c.batch_execute(sql).await.expect_err(sql);
        ensure!(code(&e) == state, "{sql}: {e:?}");
    }
    cluster.replicas_agree().await?;
    cluster.shutdown().await;
    Ok(())
}

/// An array column holds one form whatever the client sent: a JSON array
/// (what change events carry and `= ANY(column)` reads), from PostgreSQL's
/// array text, `ARRAY[…]` and typed parameters alike.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn arrays_are_stored_as_json_arrays() -> Result<()> {
    let cluster = Cluster::in_process(2, 1, None).await?;
    let c = cluster.connect(0).await?;
    c.batch_execute(
        "CREATE TABLE ar (id int PRIMARY KEY, tags text[], nums int[]);
         INSERT INTO ar VALUES (1, '{a,\"b c\",NULL}', '{1, 2}'), (2, ARRAY['d'], ARRAY[3]);",
    )
    .await?;
    c.execute(
        "INSERT INTO ar VALUES (3, $1, $2)",
        &[&vec![Some("e"), None], &vec![4i32, 5]],
    )
    .await?;
    cluster.replicas_agree().await?;
    let dump = tests::dump(&cluster.replica_path(0))?;
    for stored in [
        r#"'["a","b c",null]'|'[1,2]'"#,
        r#"'["d"]'|'[3]'"#,
        r#"'["e",null]'|'[4,5]'"#,
    ] {
        ensure!(dump.contains(stored), "{stored} not in {dump}");
    }
    let ids: Vec<i32> = c
        .query(
            "SELECT id FROM ar WHERE 4 = ANY(nums) OR 'a' = ANY(tags) ORDER BY id",
            &[],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    ensure!(ids == vec![1, 3], "{ids:?}");
    let nums: Vec<i32> = c
        .query_one("SELECT nums FROM ar WHERE id = 3", &[])
        .await?
        .try_get(0)?;
    ensure!(nums == vec![4, 5]);
    cluster.shutdown().await;
    Ok(())
}

/// psycopg gets Python date/time, UUID and JSON objects back, in text and
/// binary format.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn psycopg_reads_typed_columns_as_objects() -> Result<()> {
    let cluster = Cluster::in_process(1, 1, None).await?;
    cluster.run_driver("typed_results.py").await?;
    cluster.shutdown().await;
    Ok(())
}

/// SQLAlchemy 2 (Core and ORM, psycopg driver): connect, `create_all`,
/// session CRUD, the table list.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlalchemy_create_all_and_session_crud() -> Result<()> {
    let cluster = Cluster::in_process(2, 1, None).await?;
    cluster.run_driver("sqlalchemy_orm.py").await?;
    cluster.shutdown().await;
    Ok(())
}

/// node-postgres: parameters (Date, JSON), a savepoint in a transaction,
/// RETURNING, a timestamptz result as a Date and jsonb as an object.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_postgres_basics() -> Result<()> {
    let cluster = Cluster::in_process(1, 1, None).await?;
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("node/basic.js");
    run_client(
        std::process::Command::new("node")
            .arg(&script)
            .arg(cluster.router_port(0).to_string()),
    )?;
    cluster.shutdown().await;
    Ok(())
}

/// Django 5.2: `migrate` of contenttypes and auth (transactional DDL,
/// ALTER COLUMN TYPE / DROP NOT NULL, foreign keys added by ALTER TABLE,
/// operator-class indexes), then ORM work with many-to-many relations,
/// nested atomic blocks and bulk inserts over UNNEST.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn django_migrate_and_orm() -> Result<()> {
    let cluster = Cluster::in_process(2, 1, None).await?;
    cluster.run_driver("django_app.py").await?;
    cluster.shutdown().await;
    Ok(())
}

/// pgjdbc (Debian's 42.5): batched server-prepared inserts, a savepoint,
/// int/long/BigDecimal/Timestamp/boolean results, and DatabaseMetaData's
/// getTables/getColumns (tests/java/Basic.java).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pgjdbc_basics() -> Result<()> {
    let cluster = Cluster::in_process(1, 1, None).await?;
    let source = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("java/Basic.java");
    run_client(
        std::process::Command::new("java")
            .args(["-cp", "/usr/share/java/postgresql.jar"])
            .arg(&source)
            .arg(cluster.router_port(0).to_string()),
    )?;
    cluster.replicas_agree().await?;
    cluster.shutdown().await;
    Ok(())
}

/// Runs a client program to the end; it must succeed and print "ok".
fn run_client(cmd: &mut std::process::Command) -> Result<()> {
    let out = cmd.output()?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    ensure!(out.status.success() && text.contains("ok"), "{text}");
    Ok(())
}
