//! What the replica needs to know about a user table: its columns and primary key.

use rusqlite::Connection;

/// Columns of one table, and which of them form the primary key (in key order).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableInfo {
    pub name: String,
    pub columns: Vec<String>,
    pub decl_types: Vec<String>,
    pub pk: Vec<String>,
}

/// Double-quotes an SQL identifier.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Reads a table's columns and primary key; `Ok(None)` if it does not exist.
pub fn table_info(conn: &Connection, table: &str) -> rusqlite::Result<Option<TableInfo>> {
    let mut stmt = conn.prepare_cached("SELECT name, type, pk FROM pragma_table_info(?1)")?;
    let mut rows = stmt.query([table])?;
    let mut columns = Vec::new();
    let mut decl_types = Vec::new();
    let mut pk: Vec<(i64, String)> = Vec::new();
    while let Some(row) = rows.next()? {
        let name: String = row.get(0)?;
        let ty: String = row.get(1)?;
        let pk_pos: i64 = row.get(2)?;
        if pk_pos > 0 {
            pk.push((pk_pos, name.clone()));
        }
        columns.push(name);
        decl_types.push(ty);
    }
    if columns.is_empty() {
        return Ok(None);
    }
    pk.sort();
    Ok(Some(TableInfo {
        name: table.to_owned(),
        columns,
        decl_types,
        pk: pk.into_iter().map(|(_, n)| n).collect(),
    }))
}
