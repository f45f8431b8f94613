//! The PostgreSQL wire protocol (pgwire): simple and extended query
//! protocols for one client connection, on top of [`Session`].
//!
//! Each connection gets its own handler, so its session (settings, open
//! transaction) dies with the connection: a client that vanishes inside a
//! transaction leaves nothing behind.

use std::fmt::Debug;
use std::sync::Arc;

use async_trait::async_trait;
use futures::{Sink, SinkExt, stream};
use pgwire::api::copy::CopyHandler;
use pgwire::api::portal::{Format, Portal};
use pgwire::api::query::{ExtendedQueryHandler, SimpleQueryHandler};
use pgwire::api::results::{CopyResponse, QueryResponse, Response, Tag};
use pgwire::api::store::PortalStore;
use pgwire::api::{ClientInfo, ClientPortalStore, PgWireServerHandlers};
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use pgwire::messages::PgWireBackendMessage;
use pgwire::messages::copy::{CopyData, CopyDone, CopyFail};
use pgwire::messages::response::NoticeResponse;
use pgwire::messages::startup::ParameterStatus;
use rusqlite::types::Value as SqlValue;
use tokio::sync::Mutex;

use crate::classify::{Kind, classify};
use crate::error::Error;
use crate::session::{Feedback, Outcome, Session};
use crate::shared::Shared;
use crate::typing::pgtypes;

pub use crate::describe::{Parser, Prepared};

/// One client connection.
pub struct Connection {
    session: Mutex<Session>,
    parser: Arc<Parser>,
}

impl Connection {
    pub fn new(shared: Arc<Shared>) -> Connection {
        let session = Session::new(shared.clone());
        let block_schema = session.block_schema();
        Connection {
            session: Mutex::new(session),
            parser: Arc::new(Parser::new(shared, block_schema)),
        }
    }
}

async fn send_feedback<C>(client: &mut C, fb: Feedback) -> PgWireResult<()>
where
    C: Sink<PgWireBackendMessage> + Unpin + Send,
    PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
{
    for (severity, text) in fb.notices {
        let info = ErrorInfo::new(severity.to_owned(), "01000".to_owned(), text);
        client
            .feed(PgWireBackendMessage::NoticeResponse(NoticeResponse::from(
                info,
            )))
            .await?;
    }
    if let Some(offset) = fb.offset {
        client
            .feed(PgWireBackendMessage::ParameterStatus(ParameterStatus::new(
                "tributary.offset".to_owned(),
                offset.to_string(),
            )))
            .await?;
    }
    Ok(())
}

/// Turns a statement's outcome into a pgwire response; `described` fixes the
/// column types when the client already has them from Describe.
fn to_response(outcome: Outcome, described: Option<&Prepared>, format: &Format) -> Response {
    match outcome {
        Outcome::Rows { rows, tag } => {
            let types = match described {
                Some(p) if p.column_types.len() == rows.columns.len() => p.column_types.clone(),
                _ => pgtypes::column_types(&rows.decl_types, Some(&rows.rows)),
            };
            let fields = Arc::new(pgtypes::fields(&rows.columns, &types, format));
            let data = pgtypes::encode_rows(&rows, fields.clone());
            let mut resp = QueryResponse::new(fields, stream::iter(data));
            if let Some(tag) = tag {
                resp.set_command_tag(&tag);
            }
            Response::Query(resp)
        }
        Outcome::Command { tag, rows } => {
            let t = Tag::new(&tag);
            Response::Execution(match rows {
                Some(n) => t.with_rows(n),
                None => t,
            })
        }
        Outcome::TxnStart => Response::TransactionStart(Tag::new("BEGIN")),
        Outcome::TxnEnd { tag } => Response::TransactionEnd(Tag::new(tag)),
        Outcome::CopyOut { rows, format } => {
            let mut lines = Vec::with_capacity(rows.rows.len() + 1);
            if format.csv && format.header {
                lines.push(format.encode_header(&rows.columns));
            }
            lines.extend(rows.rows.iter().map(|r| format.encode_row(r)));
            let data = lines
                .into_iter()
                .map(|l| Ok(CopyData::new(l.into_bytes().into())));
            Response::CopyOut(CopyResponse::new(0, rows.columns.len(), stream::iter(data)))
        }
        Outcome::CopyIn { columns } => {
            Response::CopyIn(CopyResponse::new(0, columns, stream::empty()))
        }
    }
}

#[async_trait]
impl CopyHandler for Connection {
    async fn on_copy_data<C>(&self, _client: &mut C, copy_data: CopyData) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        self.session
            .lock()
            .await
            .copy_data(&copy_data.data)
            .map_err(|e| e.to_pgwire())
    }

    async fn on_copy_done<C>(&self, client: &mut C, _done: CopyDone) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let mut session = self.session.lock().await;
        let mut fb = Feedback::default();
        let result = session.copy_done(&mut fb).await;
        send_feedback(client, fb).await?;
        match result {
            Ok(n) => {
                let tag = Tag::new("COPY").with_rows(n);
                client
                    .send(PgWireBackendMessage::CommandComplete(tag.into()))
                    .await?;
                Ok(())
            }
            Err(e) => {
                log_failure(&e, "COPY FROM STDIN");
                Err(e.to_pgwire())
            }
        }
    }

    async fn on_copy_fail<C>(&self, _client: &mut C, fail: CopyFail) -> PgWireError
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        self.session.lock().await.copy_abort();
        Error::CopyFailed(fail.message).to_pgwire()
    }
}

/// `DEALLOCATE name` drops that protocol-level prepared statement;
/// `DEALLOCATE ALL` and `DISCARD ALL` drop the open portals. pgwire's store
/// cannot list statement names, so after `DEALLOCATE ALL` earlier
/// statements stay parsed; a client that parses a name again replaces it,
/// which is what drivers do after `DEALLOCATE ALL`.
fn forget_statements<C>(client: &C, kind: &Kind)
where
    C: ClientPortalStore,
    C::PortalStore: PortalStore,
{
    match kind {
        Kind::Deallocate { name: Some(n) } => client.portal_store().rm_statement(n),
        Kind::Deallocate { name: None } | Kind::DiscardAll => client.portal_store().clear_portals(),
        _ => {}
    }
}

/// A failed statement in the router's log, as PostgreSQL's server log has
/// it (ERROR with the statement): `warn` for what points at the server
/// (internal errors, I/O, a stopped replica), `info` for the client's own
/// (syntax, constraints, conflicts).
fn log_failure(e: &Error, sql: &str) {
    let sqlstate = e.sqlstate();
    if sqlstate.starts_with("XX") || sqlstate.starts_with("58") {
        tracing::warn!(sqlstate, error = %e, statement = %sql, "statement failed");
    } else {
        tracing::info!(sqlstate, error = %e, statement = %sql, "statement failed");
    }
}

fn error_response(e: &Error) -> Response {
    Response::Error(Box::new(e.to_error_info()))
}

#[async_trait]
impl SimpleQueryHandler for Connection {
    async fn do_query<C>(&self, client: &mut C, query: &str) -> PgWireResult<Vec<Response>>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let mut session = self.session.lock().await;
        let stmts = match classify(query, session.shared().config.max_statement_bytes) {
            Ok(s) => s,
            Err(e) => return Ok(vec![error_response(&e)]),
        };
        let mut responses = Vec::with_capacity(stmts.len());
        // As in PostgreSQL, several statements in one query string outside
        // a block run as one implicit transaction: all of them or none.
        // (With transaction control or COPY among them, each runs alone.)
        let implicit = stmts.len() > 1
            && !session.in_block()
            && stmts.iter().all(|s| {
                matches!(
                    s.kind,
                    Kind::Read | Kind::Write { .. } | Kind::Ddl { .. } | Kind::Truncate { .. }
                )
            });
        if implicit {
            session.begin_implicit();
        }
        let mut failed = false;
        for stmt in &stmts {
            let mut fb = Feedback::default();
            let result = session.execute(stmt, Vec::new(), &mut fb).await;
            if result.is_ok() {
                forget_statements(client, &stmt.kind);
            }
            send_feedback(client, fb).await?;
            match result {
                // The client sends COPY data next: later statements of this
                // query string are not run (PostgreSQL runs them after it).
                Ok(outcome @ Outcome::CopyIn { .. }) => {
                    responses.push(to_response(outcome, None, &Format::UnifiedText));
                    break;
                }
                Ok(outcome) => responses.push(to_response(outcome, None, &Format::UnifiedText)),
                Err(e) => {
                    log_failure(&e, &stmt.sql);
                    responses.push(error_response(&e));
                    failed = true;
                    break;
                }
            }
        }
        if implicit {
            let mut fb = Feedback::default();
            if failed {
                session.end_implicit();
            } else if let Err(e) = session.commit(&mut fb).await {
                log_failure(&e, query);
                responses.push(error_response(&e));
            }
            send_feedback(client, fb).await?;
        }
        Ok(responses)
    }
}

#[async_trait]
impl ExtendedQueryHandler for Connection {
    type Statement = Prepared;
    type QueryParser = Parser;

    fn query_parser(&self) -> Arc<Parser> {
        self.parser.clone()
    }

    async fn do_query<C>(
        &self,
        client: &mut C,
        portal: &Portal<Prepared>,
        _max_rows: usize,
    ) -> PgWireResult<Response>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Prepared>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let prepared = &portal.statement.statement;
        let params: Vec<SqlValue> =
            pgtypes::decode_params(portal, &prepared.param_types).map_err(|e| e.to_pgwire())?;
        let mut session = self.session.lock().await;
        let mut fb = Feedback::default();
        let result = session.execute(&prepared.stmt, params, &mut fb).await;
        if result.is_ok() {
            forget_statements(client, &prepared.stmt.kind);
        }
        send_feedback(client, fb).await?;
        match result {
            Ok(outcome) => Ok(to_response(
                outcome,
                Some(prepared),
                &portal.result_column_format,
            )),
            Err(e) => {
                log_failure(&e, &prepared.stmt.sql);
                Err(e.to_pgwire())
            }
        }
    }
}

/// The handler set pgwire asks for, one per connection.
pub struct Handlers {
    conn: Arc<Connection>,
    startup: Arc<crate::auth::Startup>,
}

impl Handlers {
    pub fn new(shared: Arc<Shared>) -> Handlers {
        Handlers {
            startup: shared.startup.clone(),
            conn: Arc::new(Connection::new(shared)),
        }
    }
}

impl crate::conn::SessionStatus for Handlers {
    fn transaction_status(&self) -> Option<pgwire::messages::response::TransactionStatus> {
        self.conn
            .session
            .try_lock()
            .ok()
            .map(|s| s.transaction_status())
    }
}

impl PgWireServerHandlers for Handlers {
    fn simple_query_handler(&self) -> Arc<impl SimpleQueryHandler> {
        self.conn.clone()
    }

    fn extended_query_handler(&self) -> Arc<impl ExtendedQueryHandler> {
        self.conn.clone()
    }

    fn copy_handler(&self) -> Arc<impl CopyHandler> {
        self.conn.clone()
    }

    fn startup_handler(&self) -> Arc<impl pgwire::api::auth::StartupHandler> {
        self.startup.clone()
    }
}
