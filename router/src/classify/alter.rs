//! `ALTER TABLE` forms SQLite lacks: `ADD [CONSTRAINT c] UNIQUE (cols)` as
//! the unique index PostgreSQL backs it with, `DROP COLUMN … CASCADE`
//! without the word, `ADD COLUMN` with PostgreSQL's integer widths kept.
//! (`ADD PRIMARY KEY` and `ADD FOREIGN KEY` are table rebuilds made at
//! execution: see `rebuild`.)

use sqlparser::ast::Statement;

use super::expr_text;
use crate::error::Result;

/// The SQL to run instead of `at`, if it needs rewriting.
pub(super) fn translate(at: &sqlparser::ast::AlterTable) -> Result<Option<String>> {
    // As in CREATE TABLE (see `keys::create_table`).
    for op in &at.operations {
        if let sqlparser::ast::AlterTableOperation::AddColumn { column_def, .. } = op
            && matches!(
                column_def.data_type,
                sqlparser::ast::DataType::Interval { .. }
            )
        {
            return Err(super::unsupported(
                format!("the interval column {}", column_def.name.value),
                "store a duration as seconds (bigint) or text",
            ));
        }
    }
    Ok(unique_as_index(at)
        .or_else(|| drop_column_plainly(at))
        .or_else(|| added_integer_width(at)))
}

/// `ALTER TABLE t ADD COLUMN c integer`: declared `INT4` as `CREATE TABLE`
/// declares it (see `keys::create_table::integer_width`).
fn added_integer_width(at: &sqlparser::ast::AlterTable) -> Option<String> {
    use sqlparser::ast::AlterTableOperation;
    let mut at = at.clone();
    let mut changed = false;
    for op in &mut at.operations {
        if let AlterTableOperation::AddColumn { column_def, .. } = op
            && let Some(t) = crate::keys::integer_width(&column_def.data_type)
        {
            column_def.data_type = t;
            changed = true;
        }
    }
    changed.then(|| Statement::AlterTable(at).to_string())
}

/// `ALTER TABLE t DROP COLUMN c CASCADE|RESTRICT`: SQLite takes neither
/// word. Without them SQLite refuses to drop a column something still uses
/// (an index, a view), so CASCADE becomes an error naming the dependent,
/// never a silent partial drop.
pub(super) fn drop_column_plainly(at: &sqlparser::ast::AlterTable) -> Option<String> {
    use sqlparser::ast::AlterTableOperation;
    let mut at = at.clone();
    let mut changed = false;
    for op in &mut at.operations {
        if let AlterTableOperation::DropColumn { drop_behavior, .. } = op
            && drop_behavior.is_some()
        {
            *drop_behavior = None;
            changed = true;
        }
    }
    changed.then(|| Statement::AlterTable(at).to_string())
}

/// `ALTER TABLE t ADD [CONSTRAINT c] UNIQUE (cols)`, which SQLite cannot
/// run, as the unique index PostgreSQL backs the constraint with (named
/// `c`, or `t_cols_key` as PostgreSQL would name it).
pub(super) fn unique_as_index(at: &sqlparser::ast::AlterTable) -> Option<String> {
    use sqlparser::ast::{AlterTableOperation, TableConstraint};
    let [
        AlterTableOperation::AddConstraint {
            constraint: TableConstraint::Unique(u),
            ..
        },
    ] = at.operations.as_slice()
    else {
        return None;
    };
    if u.characteristics.is_some() || !u.include.is_empty() {
        return None;
    }
    let table = at.name.0.last()?.as_ident()?.value.clone();
    let columns: Vec<String> = u
        .columns
        .iter()
        .map(|c| expr_text(&c.column.expr))
        .collect();
    let name = u.name.as_ref().map_or_else(
        || format!("{table}_{}_key", columns.join("_")),
        |n| n.value.clone(),
    );
    let quoted: Vec<String> = columns.iter().map(|c| replica::quote_ident(c)).collect();
    Some(format!(
        "CREATE UNIQUE INDEX {} ON {} ({})",
        replica::quote_ident(&name),
        replica::quote_ident(&table),
        quoted.join(", ")
    ))
}
