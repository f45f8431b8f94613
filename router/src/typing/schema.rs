//! The declared column types of the replica's user tables, which type
//! hints resolve against.

use std::collections::HashMap;

use rusqlite::Connection;

use crate::error::Result;
use crate::exec::sq;
use crate::typing::Hint;

/// Declared column types of the user tables, for type inference.
#[derive(Debug, Default)]
pub struct SchemaTypes {
    /// Column name → declared type (first table wins on a clash).
    pub by_name: HashMap<String, String>,
    /// Table → declared types in column order.
    pub by_table: HashMap<String, Vec<String>>,
}

impl SchemaTypes {
    /// The declared type a hint points at, if the schema has it.
    pub fn resolve(&self, hint: &Hint) -> Option<String> {
        match hint {
            Hint::Column(c) => self.by_name.get(c).cloned(),
            Hint::Position { table, index } => self
                .by_table
                .get(table)
                .and_then(|t| t.get(*index))
                .cloned(),
            Hint::Decl(d) => Some((*d).to_owned()),
            Hint::Shifted(inner) => self.resolve(inner).map(|d| super::hints::shifted(&d)),
            Hint::Array(inner) => Some(format!(
                "{}[]",
                self.resolve(inner).unwrap_or_else(|| "TEXT".to_owned())
            )),
            Hint::Sum(c) => self.by_name.get(c).map(|d| {
                use pgwire::api::Type;
                match crate::typing::pgtypes::type_for_decl(d) {
                    Type::INT2 | Type::INT4 => "INT8".to_owned(),
                    _ => d.clone(),
                }
            }),
        }
    }
}

/// The declared column types of the user's tables, and with `catalog` of
/// the `pg_catalog`/`information_schema` tables too (for statements that
/// name them: scanning those costs a Describe that does not need them).
pub fn schema_types(conn: &Connection, catalog: bool) -> Result<SchemaTypes> {
    // The user's tables first: a name clash with a catalog column (`oid`,
    // `relname`) resolves to the user's.
    let user = "SELECT m.name, p.name, p.type, 0 AS catalog, p.cid FROM main.sqlite_schema m
             JOIN pragma_table_info(m.name, 'main') p
         WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%'";
    let catalogs = "
         UNION ALL
         SELECT m.name, p.name, p.type, 1, p.cid FROM pg_catalog.sqlite_schema m
             JOIN pragma_table_info(m.name, 'pg_catalog') p WHERE m.type = 'table'
         UNION ALL
         SELECT m.name, p.name, p.type, 2, p.cid FROM information_schema.sqlite_schema m
             JOIN pragma_table_info(m.name, 'information_schema') p WHERE m.type = 'table'";
    let sql = format!(
        "{user}{} ORDER BY 4, 1, 5",
        if catalog { catalogs } else { "" }
    );
    let mut stmt = conn
        .prepare_cached(&sql)
        .map_err(sq("reading the schema"))?;
    let rows = stmt
        .query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
            ))
        })
        .map_err(sq("reading the schema"))?;
    let mut out = SchemaTypes::default();
    for r in rows {
        let (table, name, ty) = r.map_err(sq("reading the schema"))?;
        out.by_name.entry(name).or_insert_with(|| ty.clone());
        out.by_table.entry(table).or_default().push(ty);
    }
    Ok(out)
}
