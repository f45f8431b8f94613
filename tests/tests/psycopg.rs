//! psycopg against the real binary: generated keys across routers, and the
//! transaction state drivers rely on after a failed COMMIT.

use anyhow::{Context, Result, ensure};
use tests::{Cluster, python};

/// 1,000 rows inserted into a SERIAL table by 8 sessions spread over 3
/// routers get 1,000 distinct ids, RETURNING shows each, and every replica
/// holds exactly those rows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serial_ids_are_unique_across_routers() -> Result<()> {
    let cluster = Cluster::in_process(3, 3, None).await?;
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
    cluster.shutdown().await;
    Ok(())
}

/// A COMMIT refused with 40001 leaves the session idle (ReadyForQuery
/// `I`), errors inside a block leave it failed until ROLLBACK, and
/// psycopg's `with conn.transaction()` retry loop keeps working.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_commit_ends_the_transaction_for_psycopg() -> Result<()> {
    let cluster = Cluster::in_process(2, 2, None).await?;
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
    cluster.shutdown().await;
    Ok(())
}

const VALS: &str = "CREATE TABLE vals (id INTEGER PRIMARY KEY, fmt TEXT, i2 SMALLINT, i4 INTEGER, i8 BIGINT, f4 REAL, f8 DOUBLE PRECISION, num NUMERIC(10,3), b BOOLEAN, raw BYTEA, t TEXT, vc VARCHAR(20), d DATE, tm TIME, ts TIMESTAMP, tstz TIMESTAMPTZ, u UUID, j JSON, jb JSONB)";
const COLS: &str = "i2, i4, i8, f4, f8, num, b, raw, t, vc, d, tm, ts, tstz, u, j, jb";

/// Each stored value, as SQLite's `quote()` shows it, of the row `fmt`.
fn stored(path: &std::path::Path, fmt: &str) -> Result<Vec<String>> {
    let conn = rusqlite::Connection::open(path)?;
    let quoted: Vec<String> = COLS.split(", ").map(|c| format!("quote({c})")).collect();
    let row = conn.query_row(
        &format!("SELECT {} FROM vals WHERE fmt = ?1", quoted.join(", ")),
        [fmt],
        |r| {
            (0..quoted.len())
                .map(|i| r.get::<_, String>(i))
                .collect::<rusqlite::Result<Vec<_>>>()
        },
    )?;
    Ok(row)
}

/// Every type a driver may send in binary is stored exactly as the same
/// value sent as text: psycopg `%t` against `%b`, and tokio-postgres
/// (always binary), on every replica.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_and_binary_parameters_store_the_same_values() -> Result<()> {
    use tokio_postgres::types::Type;
    let cluster = Cluster::in_process(2, 1, None).await?;
    let c = cluster.connect(0).await?;
    c.batch_execute(VALS).await?;
    python("types_roundtrip.py", &[&cluster.port.to_string()])?;
    let stmt = c
        .prepare_typed(
            &format!("INSERT INTO vals (fmt, {COLS}) VALUES ('tokio', $1, $2, $3, $4, $5, $6::text, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)"),
            &[
                Type::INT2, Type::INT4, Type::INT8, Type::FLOAT4, Type::FLOAT8, Type::TEXT,
                Type::BOOL, Type::BYTEA, Type::TEXT, Type::VARCHAR, Type::DATE, Type::TIME,
                Type::TIMESTAMP, Type::TIMESTAMPTZ, Type::UUID, Type::JSON, Type::JSONB,
            ],
        )
        .await;
    // `$6::text` is PostgreSQL syntax SQLite lacks; without it, send as text.
    let stmt = match stmt {
        Ok(s) => s,
        Err(_) => {
            c.prepare_typed(
                &format!("INSERT INTO vals (fmt, {COLS}) VALUES ('tokio', $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)"),
                &[
                    Type::INT2, Type::INT4, Type::INT8, Type::FLOAT4, Type::FLOAT8, Type::TEXT,
                    Type::BOOL, Type::BYTEA, Type::TEXT, Type::VARCHAR, Type::DATE, Type::TIME,
                    Type::TIMESTAMP, Type::TIMESTAMPTZ, Type::UUID, Type::JSON, Type::JSONB,
                ],
            )
            .await?
        }
    };
    let date = chrono::NaiveDate::from_ymd_opt(2024, 1, 2).context("date")?;
    let time = chrono::NaiveTime::from_hms_micro_opt(3, 4, 5, 678_000).context("time")?;
    let ts = date.and_time(time);
    let tstz = chrono::DateTime::<chrono::Utc>::from_naive_utc_and_offset(ts, chrono::Utc);
    let u = uuid::Uuid::parse_str("550e8400-e29b-41d4-a716-446655440000")?;
    let j = serde_json::json!({"a": [1, 2]});
    let jb = serde_json::json!({"b": null});
    c.execute(
        &stmt,
        &[
            &-7i16,
            &123_456i32,
            &(1i64 << 40),
            &1.5f32,
            &2.25f64,
            &"12.340",
            &true,
            &b"\x00\xffbin".to_vec(),
            &"héllo",
            &"vc",
            &date,
            &time,
            &ts,
            &tstz,
            &u,
            &j,
            &jb,
        ],
    )
    .await?;
    cluster.wait_converged().await?;
    for i in 0..2 {
        let path = cluster.replica_path(i);
        let text = stored(&path, "text")?;
        let binary = stored(&path, "binary")?;
        ensure!(
            text == binary,
            "replica {}: text {text:?} != binary {binary:?}",
            i + 1
        );
        let expect = [
            "-7",
            "123456",
            "1099511627776",
            "1.5",
            "2.25",
            "12.34",
            "1",
            "X'00FF62696E'",
            "'héllo'",
            "'vc'",
            "'2024-01-02'",
            "'03:04:05.678'",
            "'2024-01-02 03:04:05.678'",
            "'2024-01-02 03:04:05.678+00'",
            "'550e8400-e29b-41d4-a716-446655440000'",
        ];
        for (n, (got, want)) in text.iter().zip(expect).enumerate() {
            ensure!(got == want, "column {n}: stored {got}, expected {want}");
        }
        let tokio_row = stored(&path, "tokio")?;
        // JSON text differs only in whitespace between the two drivers.
        let strip =
            |v: &[String]| -> Vec<String> { v.iter().map(|s| s.replace(' ', "")).collect() };
        ensure!(
            strip(&tokio_row) == strip(&binary),
            "tokio-postgres stored {tokio_row:?}, psycopg {binary:?}"
        );
    }
    cluster.shutdown().await;
    Ok(())
}
