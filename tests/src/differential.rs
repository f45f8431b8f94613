//! The differential test of table placement: random data in `products`
//! (full), `customers` and `orders` (hash-distributed on `customer_id`)
//! and `events` (range-distributed on `day`), loaded through a router and
//! into one unsharded SQLite file, then queries from templates (point,
//! range, ORDER BY/LIMIT/OFFSET, aggregates, GROUP BY/HAVING, aggregate
//! expressions, co-located and reference joins, DISTINCT, IN lists) whose
//! every answer the router gives must equal the file's. Used by
//! `tests/tests/placement.rs` (one process) and
//! `tests/tests/placement_kafka.rs` (three nodes, forwarding).

use anyhow::{Result, bail, ensure};
use tokio_postgres::{Client, SimpleQueryMessage};

/// Customers the data set has.
pub const CUSTOMERS: i64 = 200;
const ORDERS: i64 = 3;
/// Products the data set has.
pub const PRODUCTS: i64 = 10;

/// A small deterministic generator (xorshift64*).
pub struct Rng(pub u64);

impl Rng {
    pub fn below(&mut self, n: i64) -> i64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n as u64) as i64
    }
}

/// Rows as text, as the router sends them.
pub async fn rows(
    c: &Client,
    sql: &str,
) -> Result<Vec<Vec<Option<String>>>, tokio_postgres::Error> {
    let mut out = Vec::new();
    for m in c.simple_query(sql).await? {
        if let SimpleQueryMessage::Row(r) = m {
            out.push((0..r.len()).map(|i| r.get(i).map(str::to_owned)).collect());
        }
    }
    Ok(out)
}

/// Rows of the unsharded reference file.
pub fn reference(db: &rusqlite::Connection, sql: &str) -> Result<Vec<Vec<rusqlite::types::Value>>> {
    let mut stmt = db.prepare(sql)?;
    let n = stmt.column_count();
    let rows = stmt.query_map([], |r| (0..n).map(|i| r.get(i)).collect())?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

pub fn same(router: &Option<String>, want: &rusqlite::types::Value) -> bool {
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

pub async fn load(c: &Client, db: &rusqlite::Connection, rng: &mut Rng) -> Result<()> {
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

pub const SCHEMA: &str = "
CREATE TABLE products (id INTEGER PRIMARY KEY, name TEXT, price INTEGER);
CREATE TABLE customers (customer_id INTEGER PRIMARY KEY, name TEXT, balance INTEGER);
CREATE TABLE orders (customer_id INTEGER, order_id INTEGER, product_id INTEGER, qty INTEGER,
                     PRIMARY KEY (customer_id, order_id));
CREATE TABLE events (day INTEGER, id INTEGER, amount INTEGER, PRIMARY KEY (day, id));";

/// The query templates of the differential test.
pub fn query(rng: &mut Rng) -> String {
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

/// The placement the data set is distributed with, over `groups` (SQL
/// literals such as `'replica1,replica2'`).
pub fn placement_sql(groups: &[&str]) -> Vec<String> {
    vec![
        format!("SELECT tributary.shard_groups({})", groups.join(", ")),
        "SELECT tributary.distribute('customers', 'customer_id', 'hash', 8)".into(),
        "SELECT tributary.distribute('orders', 'customer_id', 'hash', 8)".into(),
        "SELECT tributary.reference('products')".into(),
        "SELECT tributary.distribute('events', 'day', 'range', '100,200')".into(),
    ]
}

/// Runs `queries` generated queries through `c` and on `db`, comparing
/// every answer; with `block_at`, the queries from that one on run inside
/// a transaction block that has written (rolled back at the end). Returns
/// (answers compared, refusals with 0A000).
pub async fn run(
    c: &Client,
    db: &rusqlite::Connection,
    rng: &mut Rng,
    queries: usize,
    block_at: Option<usize>,
) -> Result<(usize, usize)> {
    let (mut compared, mut refused) = (0, 0);
    for i in 0..queries {
        if Some(i) == block_at {
            let block = "BEGIN;
                UPDATE customers SET balance = coalesce(balance, 0) + 7 WHERE customer_id IN (1, 4, 9, 16, 25);
                DELETE FROM orders WHERE customer_id IN (5, 6, 7);
                INSERT INTO orders VALUES (1, 99, 2, 3), (150, 99, 3, 19);
                UPDATE events SET amount = amount + 1 WHERE day < 150;";
            c.batch_execute(block).await?;
            db.execute_batch(block)?;
        }
        let sql = query(rng);
        let want = reference(db, &sql)?;
        let got = match rows(c, &sql).await {
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
    if block_at.is_some_and(|b| b < queries) {
        c.batch_execute("ROLLBACK").await?;
        db.execute_batch("ROLLBACK")?;
    }
    Ok((compared, refused))
}

/// One transfer of `amount` from customer `a` to customer `b` in one
/// transaction: `Ok(true)` committed, `Ok(false)` refused with 40001 or
/// 40P01 (rolled back, known not applied: try again); other errors fail.
pub async fn transfer(c: &Client, a: i64, b: i64, amount: i64) -> Result<bool> {
    let r = c
        .batch_execute(&format!(
            "BEGIN; UPDATE customers SET balance = balance - {amount} WHERE customer_id = {a};
             UPDATE customers SET balance = balance + {amount} WHERE customer_id = {b}; COMMIT"
        ))
        .await;
    match r {
        Ok(()) => Ok(true),
        Err(e) if matches!(e.code().map(|s| s.code()), Some("40001" | "40P01")) => {
            c.batch_execute("ROLLBACK").await?;
            Ok(false)
        }
        Err(e) => Err(e.into()),
    }
}
