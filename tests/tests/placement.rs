//! Table placement against the real binary: `tributary up --replicas 6`
//! with 3 shard groups × 2 replicas, `products` full, `customers` and
//! `orders` hash-sharded on `customer_id`.
//!
//! - each replica file holds only its group's rows plus every product
//!   (read with the sqlite3 CLI);
//! - point reads and writes run on one group (the router's
//!   `tributary_router_group_statements_total`);
//! - a differential test: a few hundred queries from templates on random
//!   data, every answer the router gives compared with one unsharded
//!   SQLite file holding the same rows, and the refusals are 0A000;
//! - cross-shard transfers from 8 clients on 2 routers keep the total.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};

use anyhow::{Context, Result, bail, ensure};
use tests::{Cluster, free_ports, sqlite3};
use tokio_postgres::{Client, SimpleQueryMessage};

const CUSTOMERS: i64 = 200;
const ORDERS: i64 = 3;
const PRODUCTS: i64 = 10;

/// A small deterministic generator (xorshift64*).
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: i64) -> i64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n as u64) as i64
    }
}

/// `tributary_router_group_statements_total` by (group, kind), summed over routers.
fn group_statements(port: u16) -> Result<BTreeMap<(String, String), u64>> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port))?;
    write!(s, "GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")?;
    let mut text = String::new();
    s.read_to_string(&mut text)?;
    let mut out = BTreeMap::new();
    for line in text
        .lines()
        .filter(|l| l.starts_with("tributary_router_group_statements_total{"))
    {
        let label = |name: &str| {
            line.split(&format!("{name}=\""))
                .nth(1)
                .and_then(|r| r.split('"').next())
                .map(str::to_owned)
                .context("label")
        };
        let n: f64 = line.rsplit(' ').next().context("value")?.parse()?;
        *out.entry((label("group")?, label("kind")?)).or_default() += n as u64;
    }
    Ok(out)
}

fn runs_of(m: &BTreeMap<(String, String), u64>, kind: &str) -> u64 {
    m.iter()
        .filter(|((_, k), _)| k == kind)
        .map(|(_, n)| n)
        .sum()
}

/// Rows as text, as the router sends them.
async fn rows(c: &Client, sql: &str) -> Result<Vec<Vec<Option<String>>>, tokio_postgres::Error> {
    let mut out = Vec::new();
    for m in c.simple_query(sql).await? {
        if let SimpleQueryMessage::Row(r) = m {
            out.push((0..r.len()).map(|i| r.get(i).map(str::to_owned)).collect());
        }
    }
    Ok(out)
}

/// Rows of the unsharded reference file.
fn reference(db: &rusqlite::Connection, sql: &str) -> Result<Vec<Vec<rusqlite::types::Value>>> {
    let mut stmt = db.prepare(sql)?;
    let n = stmt.column_count();
    let rows = stmt.query_map([], |r| (0..n).map(|i| r.get(i)).collect())?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

fn same(router: &Option<String>, want: &rusqlite::types::Value) -> bool {
    use rusqlite::types::Value::*;
    match (router, want) {
        (None, Null) => true,
        (Some(t), Integer(i)) => t.parse::<f64>().is_ok_and(|f| f == *i as f64),
        (Some(t), Real(f)) => t
            .parse::<f64>()
            .is_ok_and(|g| (g - f).abs() <= 1e-9 * f.abs().max(1.0)),
        (Some(t), Text(s)) => t == s,
        _ => false,
    }
}

async fn load(c: &Client, db: &rusqlite::Connection, rng: &mut Rng) -> Result<()> {
    let mut script = String::new();
    for p in 1..=PRODUCTS {
        script += &format!(
            "INSERT INTO products VALUES ({p}, 'p{p}', {});\n",
            1 + rng.below(50)
        );
    }
    for id in 1..=300 {
        script += &format!(
            "INSERT INTO events VALUES ({}, {id}, {});\n",
            rng.below(300),
            rng.below(100) - 50
        );
    }
    for cid in 1..=CUSTOMERS {
        let balance = if rng.below(10) == 0 {
            "NULL".to_owned()
        } else {
            rng.below(1000).to_string()
        };
        script += &format!(
            "INSERT INTO customers VALUES ({cid}, 'c{}', {balance});\n",
            rng.below(40)
        );
        for o in 1..=rng.below(ORDERS + 1) {
            script += &format!(
                "INSERT INTO orders VALUES ({cid}, {o}, {}, {});\n",
                1 + rng.below(PRODUCTS),
                rng.below(20)
            );
        }
    }
    db.execute_batch(&script)?;
    c.batch_execute(&script).await?;
    Ok(())
}

const SCHEMA: &str = "
CREATE TABLE products (id INTEGER PRIMARY KEY, name TEXT, price INTEGER);
CREATE TABLE customers (customer_id INTEGER PRIMARY KEY, name TEXT, balance INTEGER);
CREATE TABLE orders (customer_id INTEGER, order_id INTEGER, product_id INTEGER, qty INTEGER,
                     PRIMARY KEY (customer_id, order_id));
CREATE TABLE events (day INTEGER, id INTEGER, amount INTEGER, PRIMARY KEY (day, id));";

/// The query templates of the differential test.
fn query(rng: &mut Rng) -> String {
    let cid = 1 + rng.below(CUSTOMERS + 5);
    let p = 1 + rng.below(PRODUCTS);
    let (lo, n, off) = (rng.below(1000), 1 + rng.below(15), rng.below(10));
    let day = rng.below(300);
    match rng.below(19) {
        16 => return format!("SELECT * FROM events WHERE day = {day} ORDER BY id"),
        17 => {
            return format!(
                "SELECT day / 50 AS bucket, count(*), sum(amount) FROM events WHERE day >= {day} GROUP BY day / 50 ORDER BY 1"
            );
        }
        18 => {
            return format!(
                "SELECT day, id, amount FROM events WHERE amount > {} ORDER BY day DESC, id LIMIT {n}",
                rng.below(100) - 50
            );
        }
        _ => {}
    }
    match rng.below(16) {
        0 => format!("SELECT * FROM customers WHERE customer_id = {cid}"),
        1 => format!("SELECT * FROM orders WHERE customer_id = {cid} ORDER BY order_id"),
        2 => format!("SELECT customer_id, balance FROM customers WHERE balance BETWEEN {lo} AND {} ORDER BY customer_id", lo + 200),
        3 => format!("SELECT * FROM orders ORDER BY qty DESC, customer_id, order_id LIMIT {n} OFFSET {off}"),
        4 => format!("SELECT count(*), sum(qty), min(qty), max(qty), avg(qty) FROM orders WHERE product_id = {p}"),
        5 => "SELECT product_id, count(*), sum(qty), max(qty) FROM orders GROUP BY product_id ORDER BY product_id".into(),
        6 => format!("SELECT o.customer_id, count(*) FROM orders o JOIN customers c ON o.customer_id = c.customer_id WHERE c.balance > {lo} GROUP BY o.customer_id ORDER BY 1"),
        7 => format!("SELECT o.customer_id, o.order_id, p.name, o.qty * p.price AS total FROM orders o JOIN products p ON p.id = o.product_id WHERE o.qty > {} ORDER BY o.customer_id, o.order_id", rng.below(20)),
        8 => format!("SELECT DISTINCT product_id FROM orders WHERE qty > {} ORDER BY product_id", rng.below(20)),
        9 => format!("SELECT count(*) FROM customers c JOIN orders o ON c.customer_id = o.customer_id WHERE o.product_id = {p}"),
        10 => format!("SELECT max(balance), min(name), count(balance) FROM customers WHERE customer_id IN ({cid}, {}, {})", cid + 1, cid + 7),
        11 => format!("SELECT name, count(*), avg(balance) FROM customers GROUP BY name ORDER BY count(*) DESC, name LIMIT {n}"),
        12 => format!("SELECT c.name, o.qty FROM customers c JOIN orders o ON o.customer_id = c.customer_id WHERE c.customer_id = {cid} ORDER BY o.qty, o.order_id"),
        13 => format!("SELECT product_id, CAST(sum(qty) AS BIGINT) AS total, coalesce(max(qty), 0) - min(qty) FROM orders GROUP BY product_id HAVING count(*) > {} ORDER BY total DESC, product_id", rng.below(60)),
        14 => format!("SELECT sum(balance) / count(*), count(*) * 2 FROM customers WHERE balance < {lo}"),
        _ => format!("SELECT customer_id, name FROM customers WHERE name > 'c{}' ORDER BY name, customer_id LIMIT {n} OFFSET {off}", rng.below(40)),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_groups_of_two_hold_their_shards_and_answer_like_one_file() -> Result<()> {
    let mport = free_ports(1)?;
    let config = format!("[metrics]\nlisten = \"127.0.0.1:{mport}\"\n");
    let cluster = Cluster::start_with_config(6, 2, &[], Some(&config)).await?;
    let c = cluster.connect(0).await?;
    let db = rusqlite::Connection::open_in_memory()?;
    db.execute_batch(SCHEMA)?;
    c.batch_execute(SCHEMA).await?;
    for sql in [
        "SELECT tributary.shard_groups('replica1,replica2', 'replica3,replica4', 'replica5,replica6')",
        "SELECT tributary.distribute('customers', 'customer_id', 'hash', 8)",
        "SELECT tributary.distribute('orders', 'customer_id', 'hash', 8)",
        "SELECT tributary.reference('products')",
        "SELECT tributary.distribute('events', 'day', 'range', '100,200')",
    ] {
        c.simple_query(sql).await.with_context(|| sql.to_owned())?;
    }
    let placed = rows(
        &c,
        "SELECT table_name, placement, count(*) FROM tributary_placement GROUP BY 1, 2 ORDER BY 1",
    )
    .await?;
    ensure!(
        format!("{placed:?}").contains("\"customers\"), Some(\"hash\"), Some(\"8\")")
            && format!("{placed:?}").contains("\"products\"), Some(\"full\")"),
        "tributary_placement: {placed:?}"
    );
    let seed = std::env::var("PLACEMENT_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_u64);
    eprintln!("placement seed {seed} (rerun with PLACEMENT_SEED={seed})");
    let mut rng = Rng(seed | 1);
    load(&c, &db, &mut rng).await?;
    cluster.wait_converged().await?;

    // Each file: only its group's customers and orders, every product.
    let mut by_group: Vec<BTreeSet<String>> = Vec::new();
    for g in 0..3 {
        let a = sqlite3(
            &cluster.replica_path(2 * g),
            "SELECT customer_id FROM customers ORDER BY 1",
        )?;
        let b = sqlite3(
            &cluster.replica_path(2 * g + 1),
            "SELECT customer_id FROM customers ORDER BY 1",
        )?;
        ensure!(a == b, "the two replicas of group {} differ", g + 1);
        ensure!(!a.is_empty(), "group {} holds no customers", g + 1);
        for r in [2 * g, 2 * g + 1] {
            let path = cluster.replica_path(r);
            let strays = sqlite3(
                &path,
                "SELECT count(*) FROM orders WHERE customer_id NOT IN (SELECT customer_id FROM customers)",
            )?;
            ensure!(
                strays == ["0"],
                "replica{} holds orders of another group's customers",
                r + 1
            );
            ensure!(sqlite3(&path, "SELECT count(*) FROM products")? == [PRODUCTS.to_string()]);
        }
        by_group.push(a.into_iter().collect());
    }
    let all: BTreeSet<String> = by_group.iter().flatten().cloned().collect();
    ensure!(
        all.len() as i64 == CUSTOMERS,
        "customers across groups: {}",
        all.len()
    );
    ensure!(
        by_group.iter().map(BTreeSet::len).sum::<usize>() as i64 == CUSTOMERS,
        "a customer is in two groups"
    );

    // Point reads and writes run on one group each.
    let before = group_statements(mport)?;
    for cid in 1..=20i64 {
        c.simple_query(&format!(
            "SELECT * FROM customers WHERE customer_id = {cid}"
        ))
        .await?;
        c.execute(
            "UPDATE orders SET qty = qty + 0 WHERE customer_id = $1 AND order_id = 1",
            &[&cid],
        )
        .await?;
    }
    let after = group_statements(mport)?;
    ensure!(
        runs_of(&after, "read") - runs_of(&before, "read") == 20,
        "point reads: {before:?} -> {after:?}"
    );
    ensure!(
        runs_of(&after, "write") - runs_of(&before, "write") == 20,
        "point writes: {before:?} -> {after:?}"
    );

    // EXPLAIN says the same.
    let plan = rows(&c, "EXPLAIN SELECT * FROM orders WHERE customer_id = 7").await?;
    ensure!(
        format!("{plan:?}").contains("pinned to shard group"),
        "{plan:?}"
    );
    let plan = rows(&c, "EXPLAIN SELECT count(*) FROM orders").await?;
    ensure!(format!("{plan:?}").contains("scattered to shard groups 1 (replica1, replica2), 2 (replica3, replica4), 3 (replica5, replica6)"), "{plan:?}");

    // The differential test: 300 queries, then 40 more inside a block
    // that has written (each group reads through its own filter of it).
    let (mut compared, mut refused) = (0, 0);
    for i in 0..340 {
        if i == 300 {
            let block = "BEGIN;
                UPDATE customers SET balance = coalesce(balance, 0) + 7 WHERE customer_id IN (1, 4, 9, 16, 25);
                DELETE FROM orders WHERE customer_id IN (5, 6, 7);
                INSERT INTO orders VALUES (1, 99, 2, 3), (150, 99, 3, 19);
                UPDATE events SET amount = amount + 1 WHERE day < 150;";
            c.batch_execute(block).await?;
            db.execute_batch(block)?;
        }
        let sql = query(&mut rng);
        let want = reference(&db, &sql)?;
        let got = match rows(&c, &sql).await {
            Ok(r) => r,
            Err(e) if e.code().map(|s| s.code()) == Some("0A000") => {
                refused += 1;
                continue;
            }
            Err(e) => bail!("{sql}: {e:?}"),
        };
        let matches = got.len() == want.len()
            && got
                .iter()
                .zip(&want)
                .all(|(g, w)| g.len() == w.len() && g.iter().zip(w).all(|(a, b)| same(a, b)));
        ensure!(matches, "{sql}\nrouter:    {got:?}\nreference: {want:?}");
        compared += 1;
    }
    c.batch_execute("ROLLBACK").await?;
    db.execute_batch("ROLLBACK")?;
    eprintln!("differential: {compared} answers compared, {refused} refused");
    ensure!(compared >= 320, "too many refusals: {refused}");
    for sql in [
        "SELECT string_agg(name, ',') FROM customers",
        "SELECT * FROM orders o JOIN customers c ON o.order_id = c.customer_id",
        "SELECT customer_id, rank() OVER (ORDER BY balance) FROM customers",
        "SELECT * FROM products WHERE id IN (SELECT product_id FROM orders)",
        "SELECT count(DISTINCT product_id) FROM orders",
        "ALTER TABLE orders RENAME TO orders2",
        "ALTER TABLE customers DROP COLUMN customer_id",
        "SELECT product_id, qty, count(*) FROM orders GROUP BY product_id",
    ] {
        let e = c
            .simple_query(sql)
            .await
            .err()
            .with_context(|| format!("{sql} was answered"))?;
        ensure!(e.code().map(|s| s.code()) == Some("0A000"), "{sql}: {e:?}");
    }

    transfers(&cluster).await?;
    reads_do_not_stall_apply(&cluster).await?;
    cluster.shutdown().await;
    Ok(())
}

/// Cross-shard transfers, each one transaction and one record: from 8
/// clients on one router (at least READ COMMITTED, so exact under any
/// policy), then from 4 clients on each of 2 routers with `balance` a
/// counter column (across routers the policy decides; see the README).
async fn transfers(cluster: &Cluster) -> Result<()> {
    let c = cluster.connect(0).await?;
    c.batch_execute("UPDATE customers SET balance = 1000")
        .await?;
    transfer_round(cluster, &c, 1).await?;
    c.batch_execute(
        "SET tributary.apply_policy = 'default = \"lww\"\n[tables.customers]\ncolumns.balance = \"counter\"\n'",
    )
    .await?;
    transfer_round(cluster, &c, 2).await
}

async fn transfer_round(cluster: &Cluster, c: &Client, routers: u64) -> Result<()> {
    let total = |r: Vec<Vec<Option<String>>>| r[0][0].clone().unwrap_or_default();
    let before = total(rows(c, "SELECT sum(balance) FROM customers").await?);
    let mut tasks = Vec::new();
    for w in 0..8u64 {
        let client = cluster.connect((w % routers) as u16).await?;
        tasks.push(tokio::spawn(async move {
            let mut rng = Rng(0x9e37_79b9 + w);
            let mut done = 0;
            while done < 40 {
                let (a, b) = (1 + rng.below(CUSTOMERS), 1 + rng.below(CUSTOMERS));
                let amount = 1 + rng.below(50);
                let r = client
                    .batch_execute(&format!(
                        "BEGIN; UPDATE customers SET balance = balance - {amount} WHERE customer_id = {a};
                         UPDATE customers SET balance = balance + {amount} WHERE customer_id = {b}; COMMIT"
                    ))
                    .await;
                match r {
                    Ok(()) => done += 1,
                    Err(e) if matches!(e.code().map(|s| s.code()), Some("40001" | "40P01")) => {
                        client.batch_execute("ROLLBACK").await?;
                    }
                    Err(e) => return Err(anyhow::Error::from(e)),
                }
            }
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    cluster.wait_converged().await?;
    let after = total(rows(c, "SELECT sum(balance) FROM customers").await?);
    ensure!(
        before == after,
        "total changed over {routers} router(s): {before} -> {after}"
    );
    // And in the files: one replica per group, summed.
    let mut sum = 0i64;
    for g in 0..3 {
        for r in [2 * g, 2 * g + 1] {
            let s = sqlite3(
                &cluster.replica_path(r),
                "SELECT total(balance) FROM customers",
            )?;
            let v: f64 = s.first().context("a sum")?.parse()?;
            if r == 2 * g {
                sum += v as i64;
            }
        }
    }
    ensure!(
        sum.to_string() == after,
        "files hold {sum}, the router says {after}"
    );
    Ok(())
}

/// Scattered reads hold replicas at one log offset while they run; back
/// to back from 4 clients they must not stop apply: 40 sync writes (each
/// waiting for every replica) finish meanwhile.
async fn reads_do_not_stall_apply(cluster: &Cluster) -> Result<()> {
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut readers = Vec::new();
    for _ in 0..4 {
        let c = cluster.connect(0).await?;
        let stop = stop.clone();
        readers.push(tokio::spawn(async move {
            let mut n = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                c.simple_query("SELECT count(*), sum(balance) FROM customers")
                    .await?;
                n += 1;
            }
            anyhow::Ok(n)
        }));
    }
    let w = cluster.connect(0).await?;
    w.batch_execute("SET tributary.ack = 'sync'").await?;
    let writes = async {
        for i in 0..40i64 {
            w.execute(
                "UPDATE customers SET name = name WHERE customer_id = $1",
                &[&(i + 1)],
            )
            .await?;
        }
        anyhow::Ok(())
    };
    let done = tokio::time::timeout(std::time::Duration::from_secs(60), writes).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut reads = 0;
    for r in readers {
        reads += r.await??;
    }
    done.context("sync writes stalled behind scattered reads")??;
    ensure!(reads > 0, "no scattered read completed");
    Ok(())
}
