//! `ALTER TABLE t ALTER COLUMN c …` (`TYPE`, `SET`/`DROP NOT NULL`,
//! `SET`/`DROP DEFAULT`), which SQLite cannot do in place: the changes are
//! made to the table's definition, which `rebuild` then builds and copies
//! the rows into. Checked against the rows first, as PostgreSQL checks:
//! `SET NOT NULL` over a NULL is 23502.
//!
//! A new type applies SQLite's affinity to the copied values (text that
//! reads as a number becomes one in a numeric column); `TYPE … USING expr`
//! other than a plain cast of the column itself is refused with 0A000.

use rusqlite::Connection;
use sqlparser::ast::{AlterColumnOperation, ColumnOption, ColumnOptionDef, Expr, Ident};

use crate::error::{Error, Result};
use crate::exec::sq;

fn refused(state: &'static str, message: String) -> Error {
    Error::Sqlite {
        context: "altering a column",
        source: rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_ERROR),
            Some(format!("SQLSTATE {state}: {message}")),
        ),
    }
}

/// Applies `ops` (column, operation) to the definition `ct` of `table`.
pub fn apply(
    conn: &Connection,
    ct: &mut sqlparser::ast::CreateTable,
    info: &replica::TableInfo,
    table: &str,
    ops: &[(Ident, AlterColumnOperation)],
) -> Result<()> {
    for (column, op) in ops {
        let Some(def) = ct
            .columns
            .iter_mut()
            .find(|c| c.name.value.eq_ignore_ascii_case(&column.value))
            .filter(|c| !replica::is_hidden_column(&c.name.value))
        else {
            return Err(refused(
                "42703",
                format!(
                    "column \"{}\" of relation \"{table}\" does not exist",
                    column.value
                ),
            ));
        };
        let name = def.name.value.clone();
        let in_key = info.pk.iter().any(|k| k == &name);
        match op {
            AlterColumnOperation::SetNotNull => {
                let has_null: bool = conn
                    .query_row(
                        &format!(
                            "SELECT EXISTS (SELECT 1 FROM {} WHERE {} IS NULL)",
                            replica::quote_ident(table),
                            replica::quote_ident(&name)
                        ),
                        [],
                        |r| r.get(0),
                    )
                    .map_err(sq("checking the column for NULLs"))?;
                if has_null {
                    return Err(refused(
                        "23502",
                        format!("column \"{name}\" of relation \"{table}\" contains null values"),
                    ));
                }
                if !def
                    .options
                    .iter()
                    .any(|o| o.option == ColumnOption::NotNull)
                {
                    def.options.push(ColumnOptionDef {
                        name: None,
                        option: ColumnOption::NotNull,
                    });
                }
            }
            AlterColumnOperation::DropNotNull => {
                if in_key {
                    return Err(refused(
                        "42P16",
                        format!("column \"{name}\" is in a primary key"),
                    ));
                }
                def.options.retain(|o| o.option != ColumnOption::NotNull);
            }
            AlterColumnOperation::SetDefault { value } => {
                def.options
                    .retain(|o| !matches!(o.option, ColumnOption::Default(_)));
                def.options.push(ColumnOptionDef {
                    name: None,
                    option: ColumnOption::Default(value.clone()),
                });
            }
            AlterColumnOperation::DropDefault => {
                def.options
                    .retain(|o| !matches!(o.option, ColumnOption::Default(_)));
            }
            AlterColumnOperation::SetDataType {
                data_type, using, ..
            } => {
                if let Some(u) = using
                    && !casts_itself(u, &name)
                {
                    return Err(Error::Unsupported {
                        what: format!("ALTER COLUMN {name} TYPE … USING {u}"),
                        why: "the rows are copied with the new type's affinity; only USING the column itself (cast) is taken".into(),
                    });
                }
                def.data_type =
                    crate::keys::integer_width(data_type).unwrap_or_else(|| data_type.clone());
            }
            AlterColumnOperation::AddGenerated { .. } => {
                return Err(Error::Unsupported {
                    what: format!("ALTER COLUMN {name} ADD GENERATED"),
                    why: "identity columns are made with CREATE TABLE".into(),
                });
            }
        }
    }
    Ok(())
}

/// `USING c` or `USING c::type`, which the copy does anyway.
fn casts_itself(e: &Expr, column: &str) -> bool {
    match e {
        Expr::Identifier(i) => i.value.eq_ignore_ascii_case(column),
        Expr::Cast { expr, .. } | Expr::Nested(expr) => casts_itself(expr, column),
        _ => false,
    }
}
