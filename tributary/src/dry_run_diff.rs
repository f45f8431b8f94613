//! What a policy dry-run reports: rows whose final values differ between
//! the replay as it happened and the replay under the candidate policy,
//! conflicts (from the window's start on) whose outcome differs — kind,
//! table, key, old winner → new winner — and counts per table.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context;
use rusqlite::Connection;
use rusqlite::types::Value as SqlValue;
use serde_json::{Value, json};

/// One value as JSON (blobs as hex text).
fn to_json(v: SqlValue) -> Value {
    match v {
        SqlValue::Null => Value::Null,
        SqlValue::Integer(i) => json!(i),
        SqlValue::Real(f) => json!(f),
        SqlValue::Text(t) => json!(t),
        SqlValue::Blob(b) => json!(b.iter().map(|x| format!("{x:02x}")).collect::<String>()),
    }
}

fn q(name: &str) -> String {
    replica::quote_ident(name)
}

/// The differences between `actual` and `candidate` (replica files), for
/// conflicts at offsets `from` and later.
pub fn compare(actual: &Path, candidate: &Path, from: u64) -> anyhow::Result<Value> {
    let conn = Connection::open_with_flags(actual, rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE)
        .with_context(|| format!("opening {}", actual.display()))?;
    conn.execute("ATTACH DATABASE ?1 AS cand", [candidate.to_string_lossy()])?;
    let tables: Vec<String> = conn
        .prepare("SELECT name FROM main.sqlite_schema WHERE type = 'table' ORDER BY name")?
        .query_map([], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    let mut rows = Vec::new();
    let mut per_table: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for t in tables.iter().filter(|t| !replica::is_internal_table(t)) {
        let Some(info) = replica::table_info(&conn, t)? else {
            continue;
        };
        if info.pk.is_empty() {
            continue;
        }
        let each = |cols: &[String], f: &dyn Fn(&str) -> String, sep: &str| {
            cols.iter().map(|c| f(&q(c))).collect::<Vec<_>>().join(sep)
        };
        let sql = format!(
            "SELECT a.{first} IS NOT NULL, c.{first} IS NOT NULL, {}, {} FROM main.{t} AS a FULL OUTER JOIN cand.{t} AS c ON {} WHERE {} ORDER BY {}",
            each(&info.columns, &|c| format!("a.{c}"), ", "),
            each(&info.columns, &|c| format!("c.{c}"), ", "),
            each(&info.pk, &|c| format!("a.{c} IS c.{c}"), " AND "),
            each(&info.columns, &|c| format!("a.{c} IS NOT c.{c}"), " OR "),
            each(&info.pk, &|c| format!("coalesce(a.{c}, c.{c})"), ", "),
            first = q(&info.pk[0]),
            t = q(t),
        );
        let nc = info.columns.len();
        let mut stmt = conn.prepare(&sql)?;
        let mut found = stmt.query([])?;
        while let Some(r) = found.next()? {
            let (in_a, in_c): (bool, bool) = (r.get(0)?, r.get(1)?);
            let row_of = |base: usize| -> rusqlite::Result<Value> {
                let mut m = serde_json::Map::new();
                for (i, c) in info.columns.iter().enumerate() {
                    m.insert(c.clone(), to_json(r.get(base + i)?));
                }
                Ok(Value::Object(m))
            };
            let actual_row = row_of(2)?;
            let cand_row = row_of(2 + nc)?;
            let key_src = if in_a { &actual_row } else { &cand_row };
            let key: serde_json::Map<String, Value> = info
                .pk
                .iter()
                .map(|k| (k.clone(), key_src[k].clone()))
                .collect();
            rows.push(json!({
                "table": t, "key": key,
                "actual": if in_a { actual_row } else { Value::Null },
                "candidate": if in_c { cand_row } else { Value::Null },
            }));
            per_table.entry(t.clone()).or_default().0 += 1;
        }
    }
    let conflicts = conflict_changes(&conn, from)?;
    for c in &conflicts {
        if let Some(t) = c["table"].as_str() {
            per_table.entry(t.to_owned()).or_default().1 += 1;
        }
    }
    Ok(json!({
        "rows": rows,
        "conflicts": conflicts,
        "tables": per_table.iter().map(|(t, (r, c))| json!({
            "table": t, "rows_changed": r, "conflict_outcomes_changed": c})).collect::<Vec<_>>(),
    }))
}

/// Conflicts whose decision differs, matched by offset, table, key and
/// kind; a conflict only one replay met is listed with the other side null.
fn conflict_changes(conn: &Connection, from: u64) -> anyhow::Result<Vec<Value>> {
    let sql = "
        WITH a AS (SELECT log_offset, table_name, key, kind, strategy, outcome
                   FROM main.tributary_conflicts WHERE log_offset >= ?1),
             c AS (SELECT log_offset, table_name, key, kind, strategy, outcome
                   FROM cand.tributary_conflicts WHERE log_offset >= ?1)
        SELECT coalesce(a.log_offset, c.log_offset), coalesce(a.table_name, c.table_name),
               coalesce(a.key, c.key), coalesce(a.kind, c.kind),
               a.strategy, a.outcome, c.strategy, c.outcome
        FROM a FULL OUTER JOIN c
          ON a.log_offset = c.log_offset AND a.table_name = c.table_name
         AND a.key = c.key AND a.kind = c.kind
        WHERE a.outcome IS NOT c.outcome OR a.strategy IS NOT c.strategy
        ORDER BY 1, 2, 3";
    let mut stmt = conn.prepare(sql)?;
    let found = stmt.query_map([from as i64], |r| {
        Ok(json!({
            "offset": r.get::<_, i64>(0)?, "table": r.get::<_, String>(1)?,
            "key": r.get::<_, String>(2)?, "kind": r.get::<_, String>(3)?,
            "actual": {"strategy": r.get::<_, Option<String>>(4)?, "winner": r.get::<_, Option<String>>(5)?},
            "candidate": {"strategy": r.get::<_, Option<String>>(6)?, "winner": r.get::<_, Option<String>>(7)?},
        }))
    })?;
    Ok(found.collect::<Result<_, _>>()?)
}

/// The report as text.
pub fn print(report: &Value, out: &mut impl std::io::Write) -> std::io::Result<()> {
    let empty = Vec::new();
    let list = |k: &str| report[k].as_array().unwrap_or(&empty).clone();
    writeln!(out, "per table:")?;
    for t in list("tables") {
        writeln!(
            out,
            "  {}: {} row(s) would end differently, {} conflict outcome(s) would change",
            t["table"].as_str().unwrap_or(""),
            t["rows_changed"],
            t["conflict_outcomes_changed"]
        )?;
    }
    if list("tables").is_empty() {
        writeln!(out, "  nothing would differ")?;
    }
    for c in list("conflicts") {
        let side = |s: &str| {
            format!(
                "{} ({})",
                c[s]["winner"].as_str().unwrap_or("no conflict"),
                c[s]["strategy"].as_str().unwrap_or("-")
            )
        };
        writeln!(
            out,
            "conflict at offset {}: {} on {} key {}: {} -> {}",
            c["offset"],
            c["kind"].as_str().unwrap_or(""),
            c["table"].as_str().unwrap_or(""),
            c["key"].as_str().unwrap_or(""),
            side("actual"),
            side("candidate")
        )?;
    }
    for r in list("rows") {
        writeln!(
            out,
            "row {} {}: {} -> {}",
            r["table"].as_str().unwrap_or(""),
            r["key"],
            r["actual"],
            r["candidate"]
        )?;
    }
    Ok(())
}
