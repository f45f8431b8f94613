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

pub fn schema_types(conn: &Connection) -> Result<SchemaTypes> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT m.name, p.name, p.type FROM sqlite_schema m JOIN pragma_table_info(m.name) p
             WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%' ORDER BY m.name, p.cid",
        )
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
