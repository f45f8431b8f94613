//! Schema changes under a sharded placement: a distributed table keeps
//! its name, shard key and primary key (its rows are placed by them), and
//! a table the placement names before it exists (the node config's
//! `[placement]`) must be created with the shard key in its primary key.

use sqlparser::ast::Statement;
use wal_bus::Placement;

use crate::classify::unsupported;
use crate::error::{Error, Result};

/// Refuses schema changes that would leave a distributed table's rows
/// where its placement no longer finds them: renaming the table, and
/// changing, renaming or dropping its shard key or primary key. Adding,
/// dropping, renaming or changing other columns is fine.
pub fn check_ddl(placement: &Placement, sql: &str) -> Result<()> {
    use sqlparser::ast::AlterTableOperation as Op;
    if !placement.is_sharded() {
        return Ok(());
    }
    let alter = match crate::placement::write::parse(sql) {
        Ok(Statement::AlterTable(alter)) => alter,
        Ok(Statement::CreateTable(create)) => return check_create(placement, &create, sql),
        _ => return Ok(()),
    };
    let name = crate::classify::object_name(&alter.name);
    let name = name.rsplit('.').next().unwrap_or(&name);
    let Some(tp) = crate::placement::sharded(placement, name) else {
        return Ok(());
    };
    let key = |i: &sqlparser::ast::Ident| i.value.eq_ignore_ascii_case(&tp.column);
    for op in &alter.operations {
        let touches_key = match op {
            Op::AddColumn { .. } => false,
            Op::DropColumn { column_names, .. } => column_names.iter().any(key),
            Op::RenameColumn {
                old_column_name, ..
            } => key(old_column_name),
            Op::AlterColumn { column_name, .. } => key(column_name),
            _ => true,
        };
        if touches_key {
            return Err(unsupported(
                format!("{op} on distributed table {name}"),
                "a distributed table's name, shard key and primary key stay as they are (its rows are placed by them)",
            ));
        }
    }
    Ok(())
}

/// A CREATE TABLE of a table the placement already distributes (from the
/// node config) must put the shard key in its primary key: SQLite itself
/// says which columns that is, on a scratch in-memory database.
fn check_create(
    placement: &Placement,
    create: &sqlparser::ast::CreateTable,
    sql: &str,
) -> Result<()> {
    let name = crate::classify::object_name(&create.name);
    let name = name.rsplit('.').next().unwrap_or(&name).to_owned();
    let Some(tp) = crate::placement::sharded(placement, &name) else {
        return Ok(());
    };
    let scratch = rusqlite::Connection::open_in_memory()
        .map_err(|e| Error::sqlite("checking a distributed table's key", e))?;
    let pk = scratch
        .execute_batch(sql)
        .and_then(|()| replica::table_info(&scratch, &name))
        .ok()
        .flatten()
        .map(|i| i.pk)
        .unwrap_or_default();
    if pk.iter().any(|c| c.eq_ignore_ascii_case(&tp.column)) {
        return Ok(());
    }
    Err(unsupported(
        format!(
            "creating {name} without its shard key {} in the primary key",
            tp.column
        ),
        "the placement distributes it on that column: include it in the primary key",
    ))
}
