//! A write under a sharded placement, inside the router's speculation job
//! (which holds the gates `speculation_gates` chose): which groups it
//! runs on, each group's connection and overlay, and the refusals for
//! what a per-group run could get wrong.

use std::collections::BTreeSet;
use std::sync::{Arc, MutexGuard};

use rusqlite::Connection;
use rusqlite::types::Value as SqlValue;
use sqlparser::ast::Statement;
use wal_bus::Placement;

use super::{analyze, group_replicas, sharded};
use crate::error::{Error, Result};
use crate::shared::Shared;
use crate::speculate::{GroupRun, Prior, SpecOutcome, speculate_sharded};

/// Parses a statement the router already accepted, to see which tables
/// and shard keys it names.
/// Parsed statements are kept by text (prepared statements run the same
/// text over and over; parsing was a visible part of a sharded write).
pub fn parse(sql: &str) -> Result<Statement> {
    use sqlparser::dialect::{PostgreSqlDialect, SQLiteDialect};
    use sqlparser::parser::Parser;
    static PARSED: std::sync::OnceLock<
        std::sync::Mutex<std::collections::HashMap<String, Arc<Statement>>>,
    > = std::sync::OnceLock::new();
    let cache = PARSED.get_or_init(Default::default);
    if let Some(stmt) = cache.lock().unwrap_or_else(|p| p.into_inner()).get(sql) {
        return Ok(Statement::clone(stmt));
    }
    let parsed = Parser::parse_sql(&PostgreSqlDialect {}, sql)
        .or_else(|_| Parser::parse_sql(&SQLiteDialect {}, sql));
    match parsed {
        Ok(mut stmts) if stmts.len() == 1 => {
            let stmt = stmts.remove(0);
            let mut map = cache.lock().unwrap_or_else(|p| p.into_inner());
            // Bounded: ad-hoc statements with literals would grow it.
            if map.len() >= PARSED_KEPT {
                map.clear();
            }
            map.insert(sql.to_owned(), Arc::new(stmt.clone()));
            Ok(stmt)
        }
        _ => Err(Error::Unsupported {
            what: "this statement under a sharded placement".into(),
            why: "the router cannot tell which tables and shards it touches".into(),
        }),
    }
}

/// Statements [`parse`] keeps.
const PARSED_KEPT: usize = 1024;

/// The declared type of `table`'s shard-key column.
pub fn key_type(conn: &Connection, placement: &Placement, table: &str) -> Option<String> {
    let tp = sharded(placement, table)?;
    let info = replica::table_info(conn, table).ok()??;
    let i = info
        .columns
        .iter()
        .position(|c| c.eq_ignore_ascii_case(&tp.column))?;
    info.decl_types.get(i).cloned()
}

/// Which groups a write runs on: `Some` set, or `None` for every group.
fn targets(
    conn: &Connection,
    placement: &Placement,
    stmt: &Statement,
    params: &[SqlValue],
    home: usize,
) -> Result<Option<BTreeSet<usize>>> {
    let a = analyze(placement, stmt, params);
    match (a.sharded.as_slice(), a.target.as_deref()) {
        // Only full tables: every group computes the same, one is enough.
        ([], _) => Ok(Some(BTreeSet::from([home]))),
        ([t], Some(target)) if t.eq_ignore_ascii_case(target) => {
            let decl = key_type(conn, placement, t);
            Ok(a.groups(placement, decl.as_deref()))
        }
        ([t], Some(target)) => Err(Error::Unsupported {
            what: format!("a write to {target} that reads distributed table {t}"),
            why: "each shard group holds only its own rows of it; read them first, then write"
                .into(),
        }),
        ([_], None) => Ok(None),
        (many, _) => Err(Error::Unsupported {
            what: format!(
                "a write that names several distributed tables ({})",
                many.join(", ")
            ),
            why: "each statement may write one distributed table and read only full tables besides"
                .into(),
        }),
    }
}

/// Runs `f` with one speculation connection per group that has a local
/// replica (with the overlay that replica has not applied) and the group
/// full-table statements run on. Inside the router's speculation job only.
pub fn with_runs<R>(
    shared: &Shared,
    conn: &Connection,
    placement: &Placement,
    f: impl FnOnce(&[GroupRun<'_>], usize) -> Result<R>,
) -> Result<R> {
    let all = &shared.all_replicas;
    let own = all.iter().position(|r| Arc::ptr_eq(r, &shared.replica));
    let groups = group_replicas(placement, &shared.replica, all);
    // The gates were chosen before the job took them; a placement record
    // applied in between may need others.
    for i in groups.iter().flatten() {
        if !crate::db::holds_gate(&all[*i].write_gate()) {
            return Err(Error::SerializationFailure(
                "the table placement changed while the statement was planned; run it again".into(),
            ));
        }
    }
    let home = placement
        .group_of(&shared.replica.name)
        .filter(|g| groups.get(*g).is_some_and(Option::is_some))
        .or_else(|| groups.iter().position(Option::is_some))
        .ok_or_else(|| Error::Unsupported {
            what: "writes on a node that holds no shard group".into(),
            why: "forwarding to another node is not built".into(),
        })?;
    let mut guards: Vec<(usize, MutexGuard<'_, Option<Connection>>)> = Vec::new();
    for (g, i) in groups.iter().enumerate() {
        let Some(i) = *i else { continue };
        if Some(i) == own {
            continue;
        }
        let mut guard = shared.spec_conns[i]
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if guard.is_none() {
            *guard = Some(crate::db::open_writer(&all[i].path)?);
        }
        guards.push((g, guard));
    }
    let mut runs = Vec::with_capacity(groups.len());
    for (g, i) in groups.iter().enumerate() {
        let Some(i) = *i else { continue };
        let c = if Some(i) == own {
            conn
        } else {
            match guards
                .iter()
                .find(|(gg, _)| *gg == g)
                .and_then(|(_, c)| c.as_ref())
            {
                Some(c) => c,
                None => continue,
            }
        };
        runs.push(GroupRun {
            group: g,
            conn: c,
            overlay: shared
                .order
                .unapplied_after(all[i].applied_hlc(&shared.name)),
        });
    }
    f(&runs, home)
}

/// Speculates `sql` on one replica of each group it may touch.
pub fn speculate(
    shared: &Shared,
    conn: &Connection,
    placement: &Arc<Placement>,
    prior: &Prior,
    sql: &str,
    params: &[SqlValue],
    keys: Option<&crate::keys::Keys>,
) -> Result<SpecOutcome> {
    let stmt = parse(sql)?;
    let limit = shared.log.max_record_bytes();
    let mut remote = |g: usize| forward(shared, conn, placement, &stmt, prior, sql, params, g);
    let (out, ran) = with_runs(shared, conn, placement, |runs, home| {
        let targets = targets(conn, placement, &stmt, params, home)?;
        speculate_sharded(
            runs,
            targets.as_ref(),
            placement,
            prior,
            sql,
            params,
            keys,
            limit,
            &mut remote,
        )
    })?;
    count_runs(&shared.name, &ran, "write");
    Ok(out)
}

/// Counts statements per shard group (`tributary_router_group_statements_total`).
pub fn count_runs(router: &str, groups: &BTreeSet<usize>, kind: &'static str) {
    for g in groups {
        metrics::counter!("tributary_router_group_statements_total",
            "router" => router.to_owned(), "group" => (g + 1).to_string(), "kind" => kind)
        .increment(1);
    }
}

/// Runs a write's part for group `g` on a peer router (see `peers`). It
/// blocks this speculation job's thread (never a runtime thread: jobs of a
/// router with remote groups run on the pool's own thread) until the peer
/// answers.
#[allow(clippy::too_many_arguments)]
fn forward(
    shared: &Shared,
    conn: &Connection,
    placement: &Placement,
    stmt: &Statement,
    prior: &Prior,
    sql: &str,
    params: &[SqlValue],
    g: usize,
) -> Result<SpecOutcome> {
    use super::peers::{ReplayWire, Request, SpecAnswer, wire_params};
    let addr = shared
        .peers
        .address_for(&placement.groups[g])
        .ok_or_else(|| crate::speculate::no_local_replica(g))?;
    // Generated keys come from this router's reserved ranges; a peer
    // would take its own. Such an INSERT must name its key.
    if let Statement::Insert(ins) = stmt
        && let Some(info) = analyze_target(conn, stmt)
        && info.pk.len() == 1
        && leaves_key_out(ins, &info)
    {
        return Err(Error::Unsupported {
            what: format!(
                "an INSERT into {} that leaves its key to be generated, on another node",
                info.name
            ),
            why: "name the key column and give its value".into(),
        });
    }
    let overlay = shared
        .order
        .queued_with_hlc()
        .iter()
        .map(|(h, r)| (*h, ReplayWire::from(r)))
        .collect();
    let request = Request::Speculate {
        group: g,
        origin: shared.name.clone(),
        floor: shared.replica.applied(),
        overlay,
        prior: prior.steps(),
        sql: sql.to_owned(),
        params: wire_params(params),
    };
    let answer: SpecAnswer = shared
        .runtime
        .block_on(shared.peers.call(&addr, &request))?;
    match answer {
        SpecAnswer::Busy => Err(Error::PeerBusy),
        SpecAnswer::Done {
            changes,
            affected,
            result,
        } => Ok(SpecOutcome {
            locks: crate::speculate::row_locks(conn, &changes)?,
            result: result.map(Into::into),
            affected,
            changeset: Vec::new(),
            changes,
        }),
    }
}

/// Whether an INSERT may leave a one-column key to be generated: its
/// column list leaves the key out, or (without a list) a VALUES row gives
/// it as NULL.
fn leaves_key_out(ins: &sqlparser::ast::Insert, info: &replica::TableInfo) -> bool {
    let key = &info.pk[0];
    if !ins.columns.is_empty() {
        return !ins
            .columns
            .iter()
            .any(|c| crate::classify::object_name(c).eq_ignore_ascii_case(key));
    }
    let Some(pos) = info.columns.iter().position(|c| c == key) else {
        return true;
    };
    match ins.source.as_ref().map(|q| q.body.as_ref()) {
        Some(sqlparser::ast::SetExpr::Values(v)) => v.rows.iter().any(|row| {
            row.get(pos).is_none_or(|e| {
                matches!(e, sqlparser::ast::Expr::Value(x) if matches!(x.value, sqlparser::ast::Value::Null))
            })
        }),
        _ => false,
    }
}

/// The table an INSERT writes, with its columns and key.
fn analyze_target(conn: &Connection, stmt: &Statement) -> Option<replica::TableInfo> {
    let Statement::Insert(ins) = stmt else {
        return None;
    };
    let sqlparser::ast::TableObject::TableName(name) = &ins.table else {
        return None;
    };
    let n = crate::classify::object_name(name);
    replica::table_info(conn, n.rsplit('.').next().unwrap_or(&n)).ok()?
}
