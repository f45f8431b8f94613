//! Parameter types from `$n::type` casts and PostgreSQL's string
//! functions, through tokio-postgres (which binds by the described type).

use anyhow::{Result, ensure};
use tests::Cluster;

fn code(e: &tokio_postgres::Error) -> String {
    e.code().map(|c| c.code().to_owned()).unwrap_or_default()
}

/// `$n::type` gives the parameter its type, as PostgreSQL does, so a
/// driver binding an `i32` or an integer array to it is understood; and
/// PostgreSQL's string functions SQLite lacks are there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parameter_casts_type_the_parameter_and_string_functions_work() -> Result<()> {
    use tokio_postgres::types::Type;
    let cluster = Cluster::in_process(1, 1, None).await?;
    let c = cluster.connect(0).await?;
    let stmt = c
        .prepare("SELECT $1::int + 1, repeat('ab', $2::int), $3::int[], $4::bigint")
        .await?;
    ensure!(
        stmt.params() == [Type::INT4, Type::INT4, Type::INT4_ARRAY, Type::INT8],
        "{:?}",
        stmt.params()
    );
    let row = c
        .query_one(&stmt, &[&41i32, &2i32, &vec![1i32, 2], &7i64])
        .await?;
    ensure!(row.get::<_, i32>(0) == 42);
    ensure!(row.get::<_, String>(1) == "abab");
    ensure!(row.get::<_, Vec<i32>>(2) == vec![1, 2]);
    // A regclass or interval parameter stays text: its input is a name or
    // an interval literal (SQLAlchemy's reflection sends `CAST($n AS REGCLASS)`).
    c.batch_execute("CREATE TABLE named (id int PRIMARY KEY)")
        .await?;
    let stmt = c
        .prepare(
            "SELECT count(*) FROM pg_class WHERE oid = $1::regclass AND $2::interval IS NOT NULL",
        )
        .await?;
    ensure!(
        stmt.params() == [Type::TEXT, Type::TEXT],
        "{:?}",
        stmt.params()
    );
    let n: i64 = c.query_one(&stmt, &[&"named", &"1 day"]).await?.get(0);
    ensure!(n == 1, "{n}");
    let row = c
        .query_one(
            "SELECT lpad('7', 3, '0'), rpad('a', 3, '-'), left('hello', -2), right('hello', 2), split_part('a.b.c', '.', -1), strpos('hello', 'll')",
            &[],
        )
        .await?;
    let texts: Vec<String> = (0..5).map(|i| row.get(i)).collect();
    ensure!(texts == ["007", "a--", "hel", "lo", "c"], "{texts:?}");
    ensure!(row.get::<_, i32>(5) == 3);
    let err = c
        .query_one("SELECT split_part('a', '.', 0)", &[])
        .await
        .expect_err("position zero");
    ensure!(code(&err) == "22023", "{err}");
    cluster.shutdown().await;
    Ok(())
}

/// `INSERT INTO t VALUES (…)` with fewer values than columns fills the
/// first ones and defaults the rest, as PostgreSQL does (SQLite refuses),
/// with the simple and the extended protocol; more values than columns is
/// still an error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inserts_may_omit_trailing_columns() -> Result<()> {
    let cluster = Cluster::in_process(2, 1, None).await?;
    let c = cluster.connect(0).await?;
    c.batch_execute(
        "CREATE TABLE d (id int PRIMARY KEY, v text DEFAULT 'dflt', n int);
         INSERT INTO d VALUES (1);
         INSERT INTO d SELECT 2, 'two'",
    )
    .await?;
    c.execute("INSERT INTO d VALUES ($1)", &[&3i32]).await?;
    let rows: Vec<(i32, String, Option<i32>)> = c
        .query("SELECT id, v, n FROM d ORDER BY id", &[])
        .await?
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    ensure!(
        rows == [
            (1, "dflt".to_owned(), None),
            (2, "two".to_owned(), None),
            (3, "dflt".to_owned(), None)
        ],
        "{rows:?}"
    );
    ensure!(
        c.batch_execute("INSERT INTO d VALUES (4, 'x', 1, 9)")
            .await
            .is_err()
    );
    cluster.replicas_agree().await?;
    cluster.shutdown().await;
    Ok(())
}

/// An insert that leaves out a generated key by giving fewer values gets
/// a cluster-unique key, like one that names its columns: two routers
/// inserting at once lose no row (a key SQLite made up locally would
/// collide across routers, and one insert would overwrite the other).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fewer_values_inserts_from_two_routers_get_distinct_generated_keys() -> Result<()> {
    let cluster = Cluster::in_process(2, 2, None).await?;
    let (a, b) = (cluster.connect(0).await?, cluster.connect(1).await?);
    a.batch_execute("CREATE TABLE ev (name text, note text, id serial PRIMARY KEY)")
        .await?;
    cluster.wait_converged().await?;
    const EACH: usize = 40;
    let insert = |c: tokio_postgres::Client, who: &'static str| async move {
        for i in 0..EACH {
            c.execute("INSERT INTO ev VALUES ($1)", &[&format!("{who}{i}")])
                .await?;
        }
        anyhow::Ok(c)
    };
    let (a, _b) = tokio::try_join!(insert(a, "a"), insert(b, "b"))?;
    cluster.replicas_agree().await?;
    let row = a
        .query_one(
            "SELECT count(*), count(DISTINCT id), count(DISTINCT name) FROM ev",
            &[],
        )
        .await?;
    let counts: (i64, i64, i64) = (row.get(0), row.get(1), row.get(2));
    let n = 2 * EACH as i64;
    ensure!(
        counts == (n, n, n),
        "{counts:?} for {n} acknowledged inserts"
    );
    cluster.shutdown().await;
    Ok(())
}

/// Date functions and special-syntax calls answer as PostgreSQL 15 does
/// (values checked against it), `DEFAULT now()` works, and arithmetic
/// SQLite would do on a date's text (`born + 30` is 2020) is refused
/// instead of storing a number in a date column; a JSON number kept as a
/// number by SQLite's affinity still reads back as jsonb.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dates_extract_and_defaults_work_and_date_arithmetic_never_stores_a_number() -> Result<()> {
    let cluster = Cluster::in_process(1, 1, None).await?;
    let c = cluster.connect(0).await?;
    c.batch_execute(
        "CREATE TABLE u (id int PRIMARY KEY, email text, born date, j jsonb,
                         created timestamptz DEFAULT now(), n int DEFAULT -1);
         INSERT INTO u (id, email, born, j) VALUES (1, 'ann@x', '1990-05-06', '{\"a\": 1.5}')",
    )
    .await?;
    // RETURNING expressions are typed and named as PostgreSQL does.
    let row = c
        .query_one("INSERT INTO u (id, email) VALUES (9, 'z') RETURNING id, created IS NOT NULL, email::text", &[])
        .await?;
    ensure!(row.get::<_, bool>(1) && row.columns()[1].name() == "?column?");
    ensure!(row.columns()[2].name() == "email");
    c.batch_execute("DELETE FROM u WHERE id = 9").await?;
    let row = c
        .query_one(
            "SELECT extract(year from born), date_part('dow', born), date_trunc('month', born)::text,
                    substring(email from 1 for 3), position('@' in email), md5(email),
                    greatest(1, NULL, 3), least(2, NULL), created IS NOT NULL, n
             FROM u",
            &[],
        )
        .await?;
    ensure!(row.columns()[0].name() == "extract" && row.columns()[4].name() == "position");
    ensure!(row.get::<_, f64>(1) == 0.0, "1990-05-06 was a Sunday");
    ensure!(row.get::<_, String>(2) == "1990-05-01 00:00:00");
    ensure!(row.get::<_, String>(3) == "ann" && row.get::<_, i32>(4) == 4);
    // Python's hashlib.md5(b"ann@x"), as PostgreSQL's md5('ann@x').
    ensure!(row.get::<_, String>(5) == "90b93bc054d301b414662770c2632295");
    ensure!(row.get::<_, i64>(6) == 3 && row.get::<_, i64>(7) == 2);
    ensure!(row.get::<_, bool>(8) && row.get::<_, i32>(9) == -1);

    for bad in [
        "UPDATE u SET born = born + 30",
        "INSERT INTO u (id, born) VALUES (2, 20200101)",
    ] {
        let e = c.batch_execute(bad).await.err();
        ensure!(
            e.as_ref().map(code).as_deref() == Some("42804"),
            "{bad}: {e:?}"
        );
    }
    c.batch_execute("UPDATE u SET born = born + interval '1 day', j = j->'a'")
        .await?;
    let row = c
        .query_one("SELECT born::text, j::text FROM u", &[])
        .await?;
    ensure!(row.get::<_, String>(0) == "1990-05-07" && row.get::<_, String>(1) == "1.5");
    Ok(())
}
