//! Placement on the Kafka backend: three `tributary node` processes on
//! tansu, each with one replica of every shard group (`n1a`, `n1b`, `n1c`
//! on n1, …), so every router speculates and reads its groups locally
//! (forwarding between nodes is not built). The placement records travel
//! through Kafka like any other: every replica keeps only its group's rows,
//! reads through any router answer like one file, and cross-shard
//! transfers through all three routers keep their total (with `balance` a
//! counter column: across routers the policy decides).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use tests::{Node, Tansu, connect_port, eventually, sqlite3};
use tokio_postgres::{Client, SimpleQueryMessage};

const CUSTOMERS: i64 = 90;

async fn text(c: &Client, sql: &str) -> Result<Vec<Vec<Option<String>>>> {
    let mut out = Vec::new();
    for m in c.simple_query(sql).await.with_context(|| sql.to_owned())? {
        if let SimpleQueryMessage::Row(r) = m {
            out.push((0..r.len()).map(|i| r.get(i).map(str::to_owned)).collect());
        }
    }
    Ok(out)
}

/// Per group, the members' customer ids and balances, when the members of
/// every group agree.
fn groups(nodes: &[Node]) -> Result<Option<Vec<BTreeMap<String, String>>>> {
    let mut out = Vec::new();
    for g in ["a", "b", "c"] {
        let mut seen: Option<BTreeMap<String, String>> = None;
        for n in nodes {
            let path = n.dir.join("data").join(format!("{}{g}.db", n.id));
            let rows: BTreeMap<String, String> =
                sqlite3(&path, "SELECT customer_id || ' ' || balance FROM customers")?
                    .into_iter()
                    .filter_map(|l| l.split_once(' ').map(|(a, b)| (a.to_owned(), b.to_owned())))
                    .collect();
            match &seen {
                Some(s) if *s != rows => return Ok(None),
                _ => seen = Some(rows),
            }
        }
        out.push(seen.unwrap_or_default());
    }
    Ok(Some(out))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_nodes_keep_their_groups_and_transfers_keep_the_total() -> Result<()> {
    let broker = Tansu::start().await?;
    let root = tempfile::tempdir()?;
    let mut nodes = Vec::new();
    for id in ["n1", "n2", "n3"] {
        let extra = ["a", "b", "c"]
            .iter()
            .map(|g| format!("[[replica]]\nname = \"{id}{g}\"\n"))
            .collect::<String>();
        let mut n = Node::new(root.path(), id, &broker.brokers(), true, &extra)?;
        n.spawn().await?;
        nodes.push(n);
    }
    let ports: Vec<u16> = nodes
        .iter()
        .map(|n| n.port.context("a router"))
        .collect::<Result<_>>()?;
    let c = connect_port(ports[0]).await?;
    c.batch_execute(
        "CREATE TABLE customers (customer_id INTEGER PRIMARY KEY, name TEXT, balance INTEGER);
         SELECT tributary.shard_groups('n1a,n2a,n3a', 'n1b,n2b,n3b', 'n1c,n2c,n3c');
         SELECT tributary.distribute('customers', 'customer_id', 'hash', 6);",
    )
    .await?;
    let reference = rusqlite::Connection::open_in_memory()?;
    reference.execute_batch(
        "CREATE TABLE customers (customer_id INTEGER PRIMARY KEY, name TEXT, balance INTEGER)",
    )?;
    for (k, port) in ports.iter().enumerate() {
        let sql = format!(
            "INSERT INTO customers SELECT g, 'c' || (g % 7), 1000 FROM generate_series({}, {}) AS g",
            k as i64 * 30 + 1,
            k as i64 * 30 + 30
        );
        connect_port(*port).await?.batch_execute(&sql).await?;
        for g in k as i64 * 30 + 1..=k as i64 * 30 + 30 {
            reference.execute(
                "INSERT INTO customers VALUES (?1, 'c' || (?1 % 7), 1000)",
                [g],
            )?;
        }
    }
    let nodes_ref = &nodes;
    let split = eventually(
        Duration::from_secs(60),
        "every group's members agree on 90 customers",
        || async move {
            Ok(groups(nodes_ref)?
                .filter(|g| g.iter().map(BTreeMap::len).sum::<usize>() as i64 == CUSTOMERS))
        },
    )
    .await?;
    let ids: BTreeSet<&String> = split.iter().flat_map(|g| g.keys()).collect();
    ensure!(ids.len() as i64 == CUSTOMERS, "a customer is in two groups");
    ensure!(
        split.iter().all(|g| !g.is_empty()),
        "a group holds no customers"
    );

    // Reads through another node's router answer like one file.
    let c2 = connect_port(ports[1]).await?;
    for sql in [
        "SELECT count(*), sum(balance) FROM customers",
        "SELECT name, count(*), max(customer_id) FROM customers GROUP BY name ORDER BY name",
        "SELECT customer_id, name FROM customers ORDER BY customer_id DESC LIMIT 5 OFFSET 2",
        "SELECT * FROM customers WHERE customer_id = 42",
    ] {
        let got = text(&c2, sql).await?;
        let mut stmt = reference.prepare(sql)?;
        let n = stmt.column_count();
        let want: Vec<Vec<Option<String>>> = stmt
            .query_map([], |r| {
                (0..n)
                    .map(|i| {
                        Ok(match r.get::<_, rusqlite::types::Value>(i)? {
                            rusqlite::types::Value::Null => None,
                            rusqlite::types::Value::Integer(v) => Some(v.to_string()),
                            rusqlite::types::Value::Text(t) => Some(t),
                            other => Some(format!("{other:?}")),
                        })
                    })
                    .collect()
            })?
            .collect::<rusqlite::Result<_>>()?;
        ensure!(
            got == want,
            "{sql}\nrouter n2: {got:?}\nreference: {want:?}"
        );
    }

    // Cross-shard transfers through all three routers.
    c.batch_execute(
        "SET tributary.apply_policy = 'default = \"lww\"\n[tables.customers]\ncolumns.balance = \"counter\"\n'",
    )
    .await?;
    let mut tasks = Vec::new();
    for (w, port) in ports.iter().enumerate() {
        let client = connect_port(*port).await?;
        tasks.push(tokio::spawn(async move {
            let mut done = 0;
            let mut i = w as i64;
            while done < 20 {
                i += 7;
                let (a, b) = (1 + i % CUSTOMERS, 1 + (i * 13) % CUSTOMERS);
                if tests::differential::transfer(&client, a, b, 5).await? {
                    done += 1;
                }
            }
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    let total = (CUSTOMERS * 1000).to_string();
    let total_ref = &total;
    eventually(
        Duration::from_secs(60),
        "the files and every router see the total",
        || async move {
            let Some(g) = groups(nodes_ref)? else {
                return Ok(None);
            };
            let files: i64 = g
                .iter()
                .flat_map(|m| m.values())
                .filter_map(|b| b.parse::<i64>().ok())
                .sum();
            if files.to_string() != *total_ref {
                return Ok(None);
            }
            for port in nodes_ref.iter().filter_map(|n| n.port) {
                let c = connect_port(port).await?;
                let sum = text(&c, "SELECT sum(balance) FROM customers").await?;
                if sum.first().and_then(|r| r[0].clone()).as_deref() != Some(total_ref.as_str()) {
                    return Ok(None);
                }
            }
            Ok(Some(()))
        },
    )
    .await
    .with_context(|| {
        nodes
            .iter()
            .map(Node::log_tail)
            .collect::<Vec<_>>()
            .join("\n")
    })?;
    Ok(())
}
