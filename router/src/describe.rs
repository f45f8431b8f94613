//! Parse and Describe for the extended protocol: a statement is classified,
//! described on the replica (or, inside a block that changed the schema, on
//! the block's own schema) and given PostgreSQL parameter and column types.

use std::sync::Arc;

use async_trait::async_trait;
use pgwire::api::ClientInfo;
use pgwire::api::Type;
use pgwire::api::portal::Format;
use pgwire::api::results::FieldInfo;
use pgwire::api::stmt::QueryParser;
use pgwire::error::PgWireResult;

use crate::classify::{Classified, Kind, classify};
use crate::error::Error;
use crate::exec;
use crate::shared::Shared;
use crate::typing::pgtypes;

/// A statement prepared through the extended protocol.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub stmt: Classified,
    pub param_types: Vec<Type>,
    pub columns: Vec<String>,
    pub column_types: Vec<Type>,
}

/// Parses and describes statements for the extended protocol.
pub struct Parser {
    shared: Arc<Shared>,
    block_schema: crate::session::BlockSchema,
}

impl Parser {
    pub fn new(shared: Arc<Shared>, block_schema: crate::session::BlockSchema) -> Parser {
        Parser {
            shared,
            block_schema,
        }
    }
}

#[async_trait]
impl QueryParser for Parser {
    type Statement = Prepared;

    async fn parse_sql<C>(
        &self,
        _client: &C,
        sql: &str,
        types: &[Option<Type>],
    ) -> PgWireResult<Option<Prepared>>
    where
        C: ClientInfo + Unpin + Send + Sync,
    {
        let mut stmts =
            classify(sql, self.shared.config.max_statement_bytes).map_err(|e| e.to_pgwire())?;
        if stmts.len() > 1 {
            return Err(Error::Syntax(
                "cannot insert multiple commands into a prepared statement".into(),
            )
            .to_pgwire());
        }
        let Some(stmt) = stmts.pop() else {
            return Ok(None);
        };
        // Its result columns are the stored statement's, which a Describe
        // here cannot see: protocol-level statements are the way there.
        if matches!(stmt.kind, Kind::Execute { .. }) {
            return Err(Error::Unsupported {
                what: "SQL-level EXECUTE through the extended protocol".into(),
                why: "send it as a simple query, or prepare with the protocol's Parse".into(),
            }
            .to_pgwire());
        }
        let describe = matches!(stmt.kind, Kind::Read | Kind::Write { .. });
        // An INSERT is described as it will run: with its generated keys
        // (`INSERT INTO t VALUES (…)` into a table with a hidden key names
        // the visible columns).
        let planned = matches!(
            stmt.kind,
            Kind::Write {
                tag: "INSERT" | "UPDATE"
            }
        );
        let shared = self.shared.clone();
        let text = stmt.sql.clone();
        let has_params = stmt.param_count > 0;
        let projection = stmt.projection.clone();
        type Looked = (
            crate::typing::SchemaTypes,
            Option<(Vec<String>, Vec<Option<String>>)>,
        );
        let look = move |c: &rusqlite::Connection| -> std::result::Result<Looked, Error> {
            let described = if describe {
                let plan = if planned {
                    // Not cached on a block's own schema (inside `in_block`).
                    shared.keys.plan(c, &text, c.is_autocommit())?
                } else {
                    crate::keys::Plan::default()
                };
                Some(exec::describe(c, plan.run.as_deref().unwrap_or(&text))?)
            } else {
                None
            };
            // The schema scan is only for hints: parameter types, and
            // result columns SQLite gives no declared type.
            let untyped_columns = described.as_ref().is_some_and(|(_, decls)| {
                decls.iter().enumerate().any(|(i, d)| {
                    d.as_deref().is_none_or(str::is_empty)
                        && projection.get(i).is_some_and(Option::is_some)
                })
            });
            let types = if has_params || untyped_columns {
                crate::typing::schema_types(c, crate::catalog::names_catalog(&text))?
            } else {
                crate::typing::SchemaTypes::default()
            };
            Ok((types, described))
        };
        // Inside a block that changed the schema, on the block's schema.
        let block = self
            .block_schema
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let looked = match block {
            Some(prior) => {
                let shared = self.shared.clone();
                self.shared
                    .writer
                    .run(move |c| crate::speculate::in_block(c, &shared.overlay(), &prior, look))
                    .await
            }
            None => self.shared.readers.run(move |c| look(c)).await,
        };
        let (col_types, described) = looked.and_then(|r| r).map_err(|e| e.to_pgwire())?;
        let param_types =
            pgtypes::infer_param_types(stmt.param_count, types, &stmt.param_columns, &col_types);
        let (columns, column_types) = match (&stmt.kind, described) {
            (_, Some((names, mut decls))) => {
                // Expressions have no declared type; take the query's hint.
                for (i, d) in decls.iter_mut().enumerate() {
                    if d.as_deref().is_none_or(str::is_empty) {
                        *d = stmt
                            .projection
                            .get(i)
                            .cloned()
                            .flatten()
                            .and_then(|h| col_types.resolve(&h));
                    }
                }
                let t = pgtypes::column_types(&decls, None);
                let mut names = names;
                crate::typing::rename_columns(&mut names, stmt.column_names.as_deref());
                (names, t)
            }
            (Kind::Placement(op), None) => (vec![op.name().to_owned()], vec![Type::TEXT]),
            (Kind::Show { name }, None) => (
                vec![name.rsplit('.').next().unwrap_or(name).to_owned()],
                vec![Type::TEXT],
            ),
            _ => (Vec::new(), Vec::new()),
        };
        Ok(Some(Prepared {
            stmt,
            param_types,
            columns,
            column_types,
        }))
    }

    fn get_parameter_types(&self, stmt: &Prepared) -> PgWireResult<Vec<Type>> {
        Ok(stmt.param_types.clone())
    }

    fn get_result_schema(
        &self,
        stmt: &Prepared,
        format: Option<&Format>,
    ) -> PgWireResult<Vec<FieldInfo>> {
        Ok(pgtypes::fields(
            &stmt.columns,
            &stmt.column_types,
            format.unwrap_or(&Format::UnifiedText),
        ))
    }
}
