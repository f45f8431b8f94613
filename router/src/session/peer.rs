//! Answering another router's forwarded part of a statement
//! (`SELECT tributary.peer('<json>')`, see `placement::peers`).

use std::time::Duration;

use rusqlite::types::Value as SqlValue;

use super::{Outcome, Session};
use crate::error::{Error, Result};
use crate::exec::ResultSet;
use crate::placement::peers::{
    ReadAnswer, Request, RowsWire, SpecAnswer, gate_briefly, local_replica,
};
use crate::speculate::{Block, filter_replays, speculate_after};
use crate::write_order::Replay;

impl Session {
    pub(super) async fn peer(&mut self, json: &str) -> Result<Outcome> {
        let request: Request = serde_json::from_str(json)
            .map_err(|e| Error::Internal(format!("a peer request that does not parse: {e}")))?;
        let answer = match request {
            Request::Read {
                group,
                sql,
                params,
                at,
            } => serde_json::to_string(&self.peer_read(group, sql, params, at).await?),
            Request::Speculate {
                group,
                origin,
                floor,
                overlay,
                prior,
                sql,
                params,
            } => {
                let shared = self.shared.clone();
                let (_, placement) = shared.replica.placement();
                let state = local_replica(&shared, &placement, group)?;
                let timeout = Duration::from_millis(shared.config.read_timeout_ms);
                state.wait_applied(floor, timeout).await?;
                let limit = shared.log.max_record_bytes();
                let params: Vec<SqlValue> = params.iter().map(replica::to_sql_value).collect();
                let answer = tokio::task::spawn_blocking(move || -> Result<SpecAnswer> {
                    let conn = crate::db::open_writer(&state.path)?;
                    let gate = state.write_gate();
                    let Some(_held) = gate_briefly(&gate) else {
                        return Ok(SpecAnswer::Busy);
                    };
                    // Exact while the gate is held: the caller's records
                    // this replica has not applied yet.
                    let applied = state.applied_hlc(&origin);
                    let overlay: Vec<Replay> = overlay
                        .into_iter()
                        .filter(|(hlc, _)| applied.is_none_or(|a| *hlc > a))
                        .map(|(_, r)| r.into())
                        .collect();
                    let filter = replica::placement::GroupFilter {
                        placement: placement.clone(),
                        group: Some(group),
                    };
                    let overlay = filter_replays(&overlay, &filter);
                    let mut block = Block::default();
                    for step in prior {
                        match step {
                            crate::placement::peers::StepWire::Rows(changes) => {
                                block.add_rows(Vec::new(), changes)
                            }
                            crate::placement::peers::StepWire::Ddl(sql) => block.add_ddl(&sql),
                        }
                    }
                    let prior = block.prior().filtered(|c| filter.keeps(c));
                    let out = speculate_after(&conn, &overlay, &prior, &sql, &params, None, limit)?;
                    Ok(SpecAnswer::Done {
                        changes: out.changes,
                        affected: out.affected,
                        result: out.result.map(RowsWire::from),
                    })
                })
                .await
                .map_err(|e| Error::Internal(format!("a forwarded speculation failed: {e}")))??;
                serde_json::to_string(&answer)
            }
        }
        .map_err(|e| Error::Internal(format!("encoding a peer answer: {e}")))?;
        Ok(Outcome::Rows {
            rows: ResultSet {
                columns: vec!["peer".into()],
                decl_types: vec![Some("TEXT".into())],
                rows: vec![vec![SqlValue::Text(answer)]],
            },
            tag: None,
        })
    }

    /// A forwarded read: this node's replica of `group`, held at `at`.
    async fn peer_read(
        &mut self,
        group: usize,
        sql: String,
        params: Vec<wal_bus::Value>,
        at: u64,
    ) -> Result<ReadAnswer> {
        let shared = self.shared.clone();
        let (_, placement) = shared.replica.placement();
        let state = local_replica(&shared, &placement, group)?;
        let hold = state.hold_for(at, Duration::from_secs(60));
        if hold.at() != at {
            return Ok(ReadAnswer::Moved(hold.at()));
        }
        let timeout = Duration::from_millis(shared.config.read_timeout_ms);
        hold.reached(timeout).await?;
        let on = shared
            .balance
            .named(&state.name)
            .ok_or_else(|| Error::Internal(format!("no read pool for {}", state.name)))?;
        let params: Vec<SqlValue> = params.iter().map(replica::to_sql_value).collect();
        let max_rows = shared.config.max_result_rows;
        let (rows, _) = shared
            .balance
            .read(on, false, move |c| {
                crate::exec::run_statement(c, &sql, &params, max_rows)
            })
            .await??;
        drop(hold);
        Ok(ReadAnswer::Rows(RowsWire::from(rows.unwrap_or(
            ResultSet {
                columns: Vec::new(),
                decl_types: Vec::new(),
                rows: Vec::new(),
            },
        ))))
    }
}
