//! Reads of distributed tables under a sharded placement: planned by
//! `placement::scatter`, run on one replica per group (chosen by the
//! balancer among that group's replicas, at the session's consistency),
//! merged by `placement::merge`. Inside a transaction block that has
//! written, each group's run replays the block through its filter, on the
//! speculation connections.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use rusqlite::types::Value as SqlValue;
use wal_bus::Placement;

use super::{Feedback, Outcome, Session, rows_outcome};
use crate::classify::Classified;
use crate::error::{Error, Result};
use crate::exec::ResultSet;
use crate::placement::{merge, scatter, write};

impl Session {
    /// `Some` when the read names a distributed table (and was answered
    /// here); `None` for any other read.
    pub(super) async fn sharded_read(
        &mut self,
        stmt: &Classified,
        params: &[SqlValue],
    ) -> Result<Option<Outcome>> {
        let (_, placement) = self.shared.replica.placement();
        if !placement.is_sharded() {
            return Ok(None);
        }
        let parsed = match write::parse(&stmt.sql) {
            Ok(p) => p,
            // A statement sqlparser cannot read again (a PRAGMA, say)
            // names no table it could tell; if it names a distributed
            // table, refuse rather than read one group's rows.
            Err(e) => {
                let lower = stmt.sql.to_ascii_lowercase();
                let names_one = placement
                    .tables
                    .keys()
                    .any(|t| lower.contains(&t.to_ascii_lowercase()));
                return if names_one { Err(e) } else { Ok(None) };
            }
        };
        let tables = crate::placement::relations(&parsed);
        if !tables
            .iter()
            .any(|t| crate::placement::sharded(&placement, t).is_some())
        {
            return Ok(None);
        }
        let types = self.key_types(&placement, tables).await?;
        // EXPLAIN of a read of distributed tables: where it runs and how
        // the answers merge.
        let (parsed, explain) = match parsed {
            sqlparser::ast::Statement::Explain {
                statement,
                analyze: false,
                ..
            } if matches!(*statement, sqlparser::ast::Statement::Query(_)) => (*statement, true),
            other => (other, false),
        };
        let Some(plan) = scatter::plan(&placement, &parsed, params, &|t| {
            types
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(t))
                .and_then(|(_, v)| v.clone())
        })?
        else {
            return Ok(None);
        };
        let groups: BTreeSet<usize> = plan
            .groups
            .clone()
            .unwrap_or_else(|| (0..placement.groups.len()).collect());
        if explain {
            let rows = crate::placement::explain(&placement, &groups, &plan)
                .into_iter()
                .map(|line| vec![SqlValue::Text(line)])
                .collect();
            return Ok(Some(Outcome::Rows {
                rows: ResultSet {
                    columns: vec!["QUERY PLAN".into()],
                    decl_types: vec![Some("TEXT".into())],
                    rows,
                },
                tag: None,
            }));
        }
        let parts = if let Some(txn) = &self.txn
            && txn.block.started()
        {
            self.group_reads_in_block(&placement, &groups, &plan.sql, params)
                .await?
        } else {
            self.group_reads(&placement, &groups, &plan.sql, params)
                .await?
        };
        write::count_runs(&self.shared.name, &groups, "read");
        let rows = merge::merge(&plan.merge, parts)?;
        Ok(Some(rows_outcome(Some(rows), stmt)))
    }

    /// The declared type of each distributed table's shard key.
    async fn key_types(
        &self,
        placement: &Arc<Placement>,
        tables: Vec<String>,
    ) -> Result<HashMap<String, Option<String>>> {
        let p = placement.clone();
        self.shared
            .readers
            .run(move |c| {
                tables
                    .into_iter()
                    .map(|t| {
                        let ty = write::key_type(c, &p, &t);
                        (t, ty)
                    })
                    .collect()
            })
            .await
    }

    /// One read per group, on a replica of the group that has applied
    /// what the session's consistency asks for.
    async fn group_reads(
        &mut self,
        placement: &Placement,
        groups: &BTreeSet<usize>,
        sql: &str,
        params: &[SqlValue],
    ) -> Result<Vec<ResultSet>> {
        let waited = std::time::Instant::now();
        let target = self.read_target();
        let shared = self.shared.clone();
        let timeout = std::time::Duration::from_millis(shared.config.read_timeout_ms);
        let mut chosen = Vec::with_capacity(groups.len());
        let mut remote = Vec::new();
        for &g in groups {
            let names = &placement.groups[g];
            if !shared.all_replicas.iter().any(|r| names.contains(&r.name)) {
                // No replica of the group here: a peer reads it.
                let addr = shared
                    .peers
                    .address_for(names)
                    .ok_or_else(|| crate::speculate::no_local_replica(g))?;
                remote.push((g, addr));
                continue;
            }
            let mut on = shared
                .balance
                .pick_among(target, &shared.acks.unhealthy(), names);
            if on.is_none() {
                // Wait for the first local replica of the group, then pick.
                let local = shared.all_replicas.iter().find(|r| names.contains(&r.name));
                let Some(r) = local else {
                    return Err(Error::Unsupported {
                        what: format!("a read of shard group {} from a node with none of its replicas", g + 1),
                        why: "forwarding reads to another node is not built: send it to a router on a node that holds every group".into(),
                    });
                };
                r.wait_applied(target.max(shared.replica.applied()), timeout)
                    .await?;
                on = shared
                    .balance
                    .pick_among(target, &shared.acks.unhealthy(), names);
            }
            let on = on.ok_or_else(|| {
                Error::Internal(format!(
                    "no replica of shard group {} can serve reads",
                    g + 1
                ))
            })?;
            chosen.push(on);
        }
        // Several groups are read at one log offset (see `aligned`); a
        // peer whose replica is already past it says so, and the read is
        // held again there.
        let mut floor = target;
        let mut parts = Vec::new();
        let mut settled = false;
        let mut _holds = None;
        for _ in 0..5 {
            parts.clear();
            _holds = None;
            let (holds, at) = if chosen.len() > 1 || !remote.is_empty() {
                let states: Vec<_> = chosen.iter().map(|on| on.state.clone()).collect();
                crate::placement::hold_aligned(&states, floor, shared.log.end(), timeout).await?
            } else {
                (Vec::new(), floor)
            };
            _holds = Some(holds);
            let wire = crate::placement::peers::wire_params(params);
            let asks = remote.iter().map(|(g, addr)| {
                let request = crate::placement::peers::Request::Read {
                    group: *g,
                    sql: sql.to_owned(),
                    params: wire.clone(),
                    at,
                };
                let shared = shared.clone();
                let addr = addr.clone();
                async move {
                    shared
                        .peers
                        .call::<crate::placement::peers::ReadAnswer>(&addr, &request)
                        .await
                }
            });
            let mut moved = None;
            for answer in futures::future::join_all(asks).await {
                match answer? {
                    crate::placement::peers::ReadAnswer::Moved(m) => {
                        moved = Some(moved.unwrap_or(m).max(m))
                    }
                    crate::placement::peers::ReadAnswer::Rows(rows) => parts.push(rows.into()),
                }
            }
            match moved {
                Some(m) => floor = m,
                None => {
                    settled = true;
                    break;
                }
            }
        }
        if !settled {
            return Err(Error::SerializationFailure(
                "could not read every shard group at one log offset; run the read again".into(),
            ));
        }
        self.stages.consistency_wait += waited.elapsed();
        let mut reads = Vec::with_capacity(chosen.len());
        for on in chosen {
            let (sql, params) = (sql.to_owned(), params.to_vec());
            let max_rows = shared.config.max_result_rows;
            reads.push(shared.balance.read(on, false, move |c| {
                crate::exec::run_statement(c, &sql, &params, max_rows)
            }));
        }
        for r in futures::future::join_all(reads).await {
            let (rows, _) = r??;
            parts.push(rows.unwrap_or_else(|| ResultSet {
                columns: Vec::new(),
                decl_types: Vec::new(),
                rows: Vec::new(),
            }));
        }
        Ok(parts)
    }

    /// One read per group inside a block that has written: on the
    /// speculation connections, over the overlay and the block as each
    /// group sees them.
    async fn group_reads_in_block(
        &mut self,
        placement: &Arc<Placement>,
        groups: &BTreeSet<usize>,
        sql: &str,
        params: &[SqlValue],
    ) -> Result<Vec<ResultSet>> {
        let prior = self
            .txn
            .as_ref()
            .map(|t| t.block.prior())
            .unwrap_or_default();
        let shared = self.shared.clone();
        // The groups' speculation replicas, held at one log offset so the
        // read sees one prefix of the log under the block (see `aligned`).
        let speculating: Vec<_> =
            crate::placement::group_replicas(placement, &shared.replica, &shared.all_replicas)
                .into_iter()
                .enumerate()
                .filter(|(g, _)| groups.contains(g))
                .filter_map(|(_, i)| i.map(|i| shared.all_replicas[i].clone()))
                .collect();
        let timeout = std::time::Duration::from_millis(shared.config.read_timeout_ms);
        let _holds = if speculating.len() > 1 {
            Some(crate::placement::hold_aligned(&speculating, 0, shared.log.end(), timeout).await?)
        } else {
            None
        };
        let (placement, groups) = (placement.clone(), groups.clone());
        let (sql, params) = (sql.to_owned(), params.to_vec());
        let max_rows = shared.config.max_result_rows;
        self.shared
            .writer
            .run(move |c| {
                write::with_runs(&shared, c, &placement, |runs, _| {
                    let mut parts = Vec::new();
                    for &g in &groups {
                        let run = runs.iter().find(|r| r.group == g).ok_or_else(|| {
                            Error::Unsupported {
                                what: format!("a read inside a transaction block that has written, of shard group {}, which has no replica on this node", g + 1),
                                why: "forwarding covers statements outside blocks and writes; read before writing, or use a router on a node with every group".into(),
                            }
                        })?;
                        let filter = replica::placement::GroupFilter {
                            placement: placement.clone(),
                            group: Some(g),
                        };
                        let overlay = crate::speculate::filter_replays(&run.overlay, &filter);
                        let prior = prior.filtered(|ch| filter.keeps(ch));
                        let (rows, _) = crate::speculate::read_in_txn(
                            run.conn, &overlay, &prior, &sql, &params, max_rows,
                        )?;
                        parts.push(rows.unwrap_or_else(|| ResultSet {
                            columns: Vec::new(),
                            decl_types: Vec::new(),
                            rows: Vec::new(),
                        }));
                    }
                    Ok(parts)
                })
            })
            .await?
    }

    /// `SELECT tributary.distribute(…)` (and the other placement
    /// functions): checked against the schema and the placement in force,
    /// appended as the next placement version, waited for here.
    pub(super) async fn placement(
        &mut self,
        op: &crate::placement::PlacementOp,
        fb: &mut Feedback,
    ) -> Result<Outcome> {
        if let crate::placement::PlacementOp::Peer(json) = op {
            return self.peer(json).await;
        }
        if self.txn.is_some() {
            return Err(Error::NotInTransactionBlock(
                "changing table placement".into(),
            ));
        }
        self.shared.wait_applied(self.shared.log.end()).await?;
        let replica = self.shared.replica.clone();
        let owned = op.clone();
        let next = self
            .shared
            .readers
            .run(move |c| {
                let (version, current) = replica.placement();
                crate::placement::ops::next(c, &current, &owned)
                    .map(|n| n.map(|n| (version + 1, n)))
            })
            .await??;
        let text = match next {
            None => "unchanged".to_owned(),
            Some((version, placement)) => {
                self.append_plain(wal_bus::RecordBody::Placement { version, placement }, fb)
                    .await?;
                let target = self.last_write;
                self.shared.wait_applied(target).await?;
                fb.notices.push((
                    "NOTICE",
                    format!(
                        "table placement version {version} in force from log offset {}",
                        target - 1
                    ),
                ));
                format!("placement version {version}")
            }
        };
        Ok(Outcome::Rows {
            rows: crate::exec::ResultSet {
                columns: vec![op.name().to_owned()],
                decl_types: vec![Some("TEXT".into())],
                rows: vec![vec![rusqlite::types::Value::Text(text)]],
            },
            tag: None,
        })
    }
}
