//! `tributary status`: replica offsets and lag, read through a router.

use anyhow::Context;
use router::status::ReplicaStatus;
use tokio_postgres::SimpleQueryMessage;

#[derive(clap::Args)]
pub struct Args {
    /// Router to ask.
    #[arg(long, default_value = "127.0.0.1:5433")]
    router: String,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let json = args.json;
    let client = super::connect(&args.router).await?;
    let msgs = client
        .simple_query(
            "SELECT name, path, applied_offset, log_end, lag_records, lag_ms, state, skipped_entries, health, last_ack_ms FROM tributary_replicas ORDER BY name",
        )
        .await
        .context("querying tributary_replicas")?;
    let mut rows = Vec::new();
    for m in msgs {
        if let SimpleQueryMessage::Row(r) = m {
            let num = |i: usize| r.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
            rows.push(ReplicaStatus {
                name: r.get(0).unwrap_or("").to_owned(),
                path: r.get(1).unwrap_or("").to_owned(),
                applied_offset: num(2),
                log_end: num(3),
                lag_records: num(4),
                lag_ms: num(5),
                state: r.get(6).unwrap_or("").to_owned(),
                skipped_entries: num(7),
                health: r.get(8).unwrap_or("").to_owned(),
                last_ack_ms: num(9),
            });
        }
    }
    let log_end = rows.iter().map(|r| r.log_end).max().unwrap_or(0);
    let mut conflicts = Vec::new();
    for m in client
        .simple_query(
            "SELECT kind, strategy, count(*) FROM tributary_conflicts GROUP BY 1, 2 ORDER BY 1, 2",
        )
        .await
        .context("querying tributary_conflicts")?
    {
        if let SimpleQueryMessage::Row(r) = m {
            conflicts.push(serde_json::json!({
                "kind": r.get(0).unwrap_or(""),
                "strategy": r.get(1).unwrap_or(""),
                "count": r.get(2).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0),
            }));
        }
    }
    // Distributed tables, one line each (full tables are the rest).
    let mut placement = Vec::new();
    for m in client
        .simple_query(
            "SELECT version, table_name, placement, shard_key, shards, group_concat(DISTINCT shard_group || ':' || replicas)
             FROM tributary_placement WHERE placement <> 'full' GROUP BY 1, 2, 3, 4, 5 ORDER BY 2",
        )
        .await
        .context("querying tributary_placement")?
    {
        if let SimpleQueryMessage::Row(r) = m {
            placement.push(serde_json::json!({
                "version": r.get(0).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0),
                "table": r.get(1).unwrap_or(""),
                "method": r.get(2).unwrap_or(""),
                "shard_key": r.get(3).unwrap_or(""),
                "shards": r.get(4).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0),
                "groups": r.get(5).unwrap_or(""),
            }));
        }
    }
    if json {
        println!(
            "{}",
            serde_json::json!({ "log_end": log_end, "replicas": rows, "conflicts": conflicts, "placement": placement })
        );
        return Ok(());
    }
    println!("log end: {log_end}");
    println!(
        "{:<12} {:>14} {:>12} {:>8} {:>8}  {:<10} {:<24} path",
        "replica", "applied_offset", "lag_records", "lag_ms", "skipped", "state", "health"
    );
    for r in rows {
        println!(
            "{:<12} {:>14} {:>12} {:>8} {:>8}  {:<10} {:<24} {}",
            r.name,
            r.applied_offset,
            r.lag_records,
            r.lag_ms,
            r.skipped_entries,
            r.state,
            r.health,
            r.path
        );
    }
    if placement.is_empty() {
        println!("placement: every table on every replica");
    } else {
        println!("distributed tables (any other table is on every replica):");
        for p in &placement {
            println!(
                "  {} on {}: {} into {} shards, groups {} (placement version {})",
                p["table"].as_str().unwrap_or(""),
                p["shard_key"].as_str().unwrap_or(""),
                p["method"].as_str().unwrap_or(""),
                p["shards"],
                p["groups"].as_str().unwrap_or(""),
                p["version"]
            );
        }
    }
    if conflicts.is_empty() {
        println!("conflicts: none");
    } else {
        println!("conflicts (as resolved on the router's replica):");
        println!("{:<24} {:<28} {:>8}", "kind", "strategy", "count");
        for c in &conflicts {
            println!(
                "{:<24} {:<28} {:>8}",
                c["kind"].as_str().unwrap_or(""),
                c["strategy"].as_str().unwrap_or(""),
                c["count"]
            );
        }
    }
    Ok(())
}
