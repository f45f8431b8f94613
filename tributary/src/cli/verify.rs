//! `tributary verify`: are all replicas identical at one log offset?
//!
//! Through each given router (the routers of `tributary up`, or one per
//! `tributary node`), every replica is held at the same offset N, opens a
//! read transaction there and is released; the per-table digests read in
//! those transactions are compared, so a difference is divergence, never
//! lag. A table that differs is narrowed to its key buckets, then to the
//! rows of the differing buckets, printed with each replica's values.
//! Exit status: 0 identical, 1 divergent, 2 could not verify.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use anyhow::{Context, bail};
use tokio_postgres::{Client, SimpleQueryMessage};

#[derive(clap::Args)]
pub struct Args {
    /// A router to verify through; repeat for every node of a multi-node
    /// cluster (each router covers the replicas of its own node).
    #[arg(long = "router", default_value = "127.0.0.1:5433")]
    routers: Vec<String>,
    /// Log offset to compare at (every record before it applied). Default:
    /// the current log end. It must not be behind any replica.
    #[arg(long)]
    at: Option<u64>,
    /// How long a lagging replica may take to reach the offset.
    #[arg(long, default_value_t = 60_000)]
    timeout_ms: u64,
    /// Differing keys printed per table (all are counted).
    #[arg(long, default_value_t = 20)]
    max_keys: usize,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

/// Differing buckets drilled into per table: past this many, the rows of
/// the first ones are enough to show what differs.
const MAX_BUCKETS: usize = 64;

/// One router's connection and the replicas it answers for.
struct Node {
    router: String,
    client: Client,
}

type Rows = Vec<Vec<String>>;

async fn query(node: &Node, sql: &str) -> anyhow::Result<Rows> {
    let msgs = node
        .client
        .simple_query(sql)
        .await
        .with_context(|| format!("router {}: {sql}", node.router))?;
    Ok(msgs
        .into_iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(r) => Some(
                (0..r.len())
                    .map(|i| r.get(i).unwrap_or("").to_owned())
                    .collect(),
            ),
            _ => None,
        })
        .collect())
}

fn num(s: &str) -> anyhow::Result<u64> {
    s.parse()
        .with_context(|| format!("router answered {s:?} where a number belongs"))
}

/// Runs verify; `Ok(true)` when every replica is identical.
pub async fn run(args: Args) -> anyhow::Result<bool> {
    let started = Instant::now();
    let mut nodes = Vec::new();
    for r in &args.routers {
        nodes.push(Node {
            router: r.clone(),
            client: super::connect(r).await?,
        });
    }
    let offset = hold_all(&nodes, args.at).await?;
    // Replica → the node that answers for it (the first router naming it).
    let mut owner: BTreeMap<String, usize> = BTreeMap::new();
    for (i, n) in nodes.iter().enumerate() {
        let sql = format!(
            "SELECT * FROM tributary.verify_snapshot({offset}, {})",
            args.timeout_ms
        );
        for row in query(n, &sql).await? {
            owner.entry(row[0].clone()).or_insert(i);
        }
    }
    let held_ms = started.elapsed().as_millis();
    // table → replica → (columns, rows, digest)
    let mut tables: BTreeMap<String, BTreeMap<String, (String, u64, String)>> = BTreeMap::new();
    for (i, n) in nodes.iter().enumerate() {
        for row in query(n, "SELECT * FROM tributary.verify_tables()").await? {
            if owner.get(&row[0]) == Some(&i) {
                tables.entry(row[1].clone()).or_default().insert(
                    row[0].clone(),
                    (row[2].clone(), num(&row[3])?, row[4].clone()),
                );
            }
        }
    }
    let replicas: Vec<String> = owner.keys().cloned().collect();
    let groups = shard_groups(&nodes).await?;
    let mut reports = Vec::new();
    for (table, per) in &tables {
        match groups.get(table) {
            // A distributed table: each shard group's replicas hold the
            // same rows, other groups other rows.
            Some(by_group) => {
                for (g, members) in by_group {
                    let members: Vec<String> = replicas
                        .iter()
                        .filter(|r| members.contains(r))
                        .cloned()
                        .collect();
                    if members.is_empty() {
                        continue;
                    }
                    let mut r =
                        compare_table(&nodes, &owner, &members, table, per, args.max_keys).await?;
                    r.table = format!("{table} (shard group {g})");
                    reports.push(r);
                }
            }
            None => reports
                .push(compare_table(&nodes, &owner, &replicas, table, per, args.max_keys).await?),
        }
    }
    for n in &nodes {
        query(n, "SELECT * FROM tributary.verify_end()").await?;
    }
    let identical = reports.iter().all(|r| r.identical);
    let elapsed_ms = started.elapsed().as_millis();
    if args.json {
        println!(
            "{}",
            serde_json::json!({
                "offset": offset,
                "identical": identical,
                "replicas": replicas,
                "tables": reports.iter().map(TableReport::to_json).collect::<Vec<_>>(),
                "hold_and_snapshot_ms": held_ms,
                "elapsed_ms": elapsed_ms,
            })
        );
    } else {
        println!(
            "verify at log offset {offset}: {} replicas ({}), {} tables",
            replicas.len(),
            replicas.join(", "),
            tables.len()
        );
        for r in &reports {
            r.print();
        }
        let bad = reports.iter().filter(|r| !r.identical).count();
        if identical {
            println!("identical ({elapsed_ms} ms)");
        } else {
            println!(
                "DIVERGENT: {bad} of {} tables differ ({elapsed_ms} ms)",
                reports.len()
            );
        }
    }
    Ok(identical)
}

/// Per distributed table, its shard groups' replicas (from
/// `tributary_placement` on the first router).
async fn shard_groups(
    nodes: &[Node],
) -> anyhow::Result<BTreeMap<String, BTreeMap<String, Vec<String>>>> {
    let mut out: BTreeMap<String, BTreeMap<String, Vec<String>>> = BTreeMap::new();
    let Some(first) = nodes.first() else {
        return Ok(out);
    };
    let sql = "SELECT DISTINCT table_name, shard_group, replicas FROM tributary_placement \
               WHERE shard_group IS NOT NULL";
    for row in query(first, sql).await? {
        let members = row[2].split(',').map(str::to_owned).collect();
        out.entry(row[0].clone())
            .or_default()
            .insert(row[1].clone(), members);
    }
    Ok(out)
}

/// Holds every replica of every node at one offset; returns it.
async fn hold_all(nodes: &[Node], at: Option<u64>) -> anyhow::Result<u64> {
    let hold = |at: Option<u64>| match at {
        Some(o) => format!("SELECT * FROM tributary.verify_hold({o})"),
        None => "SELECT * FROM tributary.verify_hold()".to_owned(),
    };
    // Round 1 may find a replica already past the offset (it kept applying
    // while the others were asked); it is held where it is, so round 2 at
    // the highest such offset holds every replica at the same place.
    let mut held: Vec<(String, u64)> = Vec::new();
    for n in nodes {
        for row in query(n, &hold(at)).await? {
            held.push((row[0].clone(), num(&row[1])?));
        }
    }
    let Some(highest) = held.iter().map(|(_, o)| *o).max() else {
        bail!("the routers answer for no replica");
    };
    if let Some(at) = at
        && let Some((name, o)) = held.iter().find(|(_, o)| *o != at)
    {
        bail!(
            "replica {name} has already applied up to offset {o}, past --at {at}: verify compares replicas at an offset none has passed; omit --at or give one at least {highest}"
        );
    }
    if held.iter().any(|(_, o)| *o != highest) {
        for n in nodes {
            for row in query(n, &hold(Some(highest))).await? {
                if num(&row[1])? != highest {
                    bail!(
                        "replica {} moved past offset {highest} while being held; try again",
                        row[0]
                    );
                }
            }
        }
    }
    Ok(highest)
}

/// One differing key and each replica's row (None: no such row there).
struct KeyDiff {
    key: String,
    rows: BTreeMap<String, Option<String>>,
    /// Replicas whose row is not the most common version.
    differs_on: Vec<String>,
}

struct TableReport {
    table: String,
    identical: bool,
    rows: BTreeMap<String, u64>,
    /// Replicas without the table, or whose columns differ from the rest.
    schema: Vec<String>,
    keys: Vec<KeyDiff>,
    differing_keys: usize,
    buckets_differing: usize,
}

impl TableReport {
    fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "table": self.table,
            "identical": self.identical,
            "rows": self.rows,
            "schema_differs_on": self.schema,
            "differing_key_count": self.differing_keys,
            "differing_buckets": self.buckets_differing,
            "differing_keys": self.keys.iter().map(|k| serde_json::json!({
                "key": serde_json::from_str::<serde_json::Value>(&k.key).unwrap_or_else(|_| k.key.clone().into()),
                "differs_on": k.differs_on,
                "replicas": k.rows.iter().map(|(r, v)| (r.clone(), match v {
                    Some(v) => serde_json::from_str::<serde_json::Value>(v).unwrap_or_else(|_| v.clone().into()),
                    None => serde_json::Value::Null,
                })).collect::<serde_json::Map<_, _>>(),
            })).collect::<Vec<_>>(),
        })
    }

    fn print(&self) {
        let counts: BTreeSet<u64> = self.rows.values().copied().collect();
        let rows = match counts.len() {
            1 => format!("{} rows", counts.first().copied().unwrap_or(0)),
            _ => self
                .rows
                .iter()
                .map(|(r, n)| format!("{r}: {n} rows"))
                .collect::<Vec<_>>()
                .join(", "),
        };
        if self.identical {
            println!("table {}: identical, {rows}", self.table);
            return;
        }
        println!("table {}: DIFFERS ({rows})", self.table);
        if !self.schema.is_empty() {
            println!(
                "  table missing or with other columns on: {}",
                self.schema.join(", ")
            );
        }
        for k in &self.keys {
            println!("  key {} differs on {}", k.key, k.differs_on.join(", "));
            for (r, v) in &k.rows {
                println!("    {r}: {}", v.as_deref().unwrap_or("(no such row)"));
            }
        }
        if self.differing_keys > self.keys.len() {
            println!(
                "  … {} differing keys in all ({} shown)",
                self.differing_keys,
                self.keys.len()
            );
        }
    }
}

/// The replicas whose value is not the most common one (ties: the first
/// value in replica order counts as the common one).
fn minority<V: Ord + Clone>(values: &BTreeMap<String, V>) -> Vec<String> {
    let mut counts: BTreeMap<&V, usize> = BTreeMap::new();
    for v in values.values() {
        *counts.entry(v).or_default() += 1;
    }
    let best = counts.values().copied().max().unwrap_or(0);
    let common = values.values().find(|v| counts[v] == best);
    values
        .iter()
        .filter(|(_, v)| Some(*v) != common)
        .map(|(r, _)| r.clone())
        .collect()
}

async fn compare_table(
    nodes: &[Node],
    owner: &BTreeMap<String, usize>,
    replicas: &[String],
    table: &str,
    per: &BTreeMap<String, (String, u64, String)>,
    max_keys: usize,
) -> anyhow::Result<TableReport> {
    let mut report = TableReport {
        table: table.to_owned(),
        identical: true,
        rows: per
            .iter()
            .filter(|(r, _)| replicas.contains(r))
            .map(|(r, (_, n, _))| (r.clone(), *n))
            .collect(),
        schema: Vec::new(),
        keys: Vec::new(),
        differing_keys: 0,
        buckets_differing: 0,
    };
    let columns: BTreeMap<String, Option<&String>> = replicas
        .iter()
        .map(|r| (r.clone(), per.get(r).map(|(c, _, _)| c)))
        .collect();
    report.schema = minority(&columns);
    let digests: BTreeSet<Option<&String>> = replicas
        .iter()
        .map(|r| per.get(r).map(|(_, _, d)| d))
        .collect();
    if digests.len() == 1 {
        return Ok(report);
    }
    report.identical = false;
    if !report.schema.is_empty() {
        return Ok(report);
    }
    let quoted = table.replace('\'', "''");
    // replica → bucket → digest
    let mut buckets: BTreeMap<u32, BTreeMap<String, String>> = BTreeMap::new();
    for (i, n) in nodes.iter().enumerate() {
        let sql = format!("SELECT * FROM tributary.verify_buckets('{quoted}')");
        for row in query(n, &sql).await? {
            if owner.get(&row[0]) == Some(&i) && replicas.contains(&row[0]) {
                let b = u32::try_from(num(&row[1])?).context("bucket out of range")?;
                buckets
                    .entry(b)
                    .or_default()
                    .insert(row[0].clone(), row[2].clone());
            }
        }
    }
    let differing: Vec<u32> = buckets
        .iter()
        .filter(|(_, by)| {
            by.len() != replicas.len() || by.values().collect::<BTreeSet<_>>().len() > 1
        })
        .map(|(b, _)| *b)
        .collect();
    report.buckets_differing = differing.len();
    let list = differing
        .iter()
        .take(MAX_BUCKETS)
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(",");
    // key → replica → (hash, row)
    let mut keys: BTreeMap<String, BTreeMap<String, (String, String)>> = BTreeMap::new();
    for (i, n) in nodes.iter().enumerate() {
        let sql = format!("SELECT * FROM tributary.verify_rows('{quoted}', '{list}')");
        for row in query(n, &sql).await? {
            if owner.get(&row[0]) == Some(&i) && replicas.contains(&row[0]) {
                keys.entry(row[2].clone())
                    .or_default()
                    .insert(row[0].clone(), (row[3].clone(), row[4].clone()));
            }
        }
    }
    for (key, by) in keys {
        let hashes: BTreeMap<String, Option<String>> = replicas
            .iter()
            .map(|r| (r.clone(), by.get(r).map(|(h, _)| h.clone())))
            .collect();
        if hashes.values().collect::<BTreeSet<_>>().len() == 1 {
            continue;
        }
        report.differing_keys += 1;
        if report.keys.len() < max_keys {
            report.keys.push(KeyDiff {
                differs_on: minority(&hashes),
                rows: replicas
                    .iter()
                    .map(|r| (r.clone(), by.get(r).map(|(_, v)| v.clone())))
                    .collect(),
                key,
            });
        }
    }
    Ok(report)
}
