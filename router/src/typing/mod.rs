//! Typing: what PostgreSQL type each parameter and result column has.
//! SQLite's values are loosely typed; the wire needs OIDs. `hints.rs` finds
//! where a type can be learned from, `schema.rs` holds the declared column
//! types hints resolve against, `pgtypes.rs` maps declared types and values
//! to wire types and encodes rows, `wire.rs` and `numeric.rs` give the
//! text and binary forms of the types SQLite has no class for.

pub mod array_values;
mod arrays;
mod hints;
mod names;
mod numeric;
pub mod pgtypes;
mod schema;
mod wire;

pub use hints::{Hint, params_of, projection_of};
pub use names::column_names_of;

/// Renames result columns to PostgreSQL's names where the statement says
/// so (see [`column_names_of`]); leaves them alone when the counts differ.
pub fn rename_columns(columns: &mut [String], names: Option<&[Option<String>]>) {
    if let Some(names) = names
        && names.len() == columns.len()
    {
        for (c, n) in columns.iter_mut().zip(names) {
            if let Some(n) = n {
                c.clone_from(n);
            }
        }
    }
}
pub use numeric::{precision_of, rescale};
pub use schema::{SchemaTypes, schema_types};
pub use wire::handles as stored_as_text;
