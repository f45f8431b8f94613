//! Typing: what PostgreSQL type each parameter and result column has.
//! SQLite's values are loosely typed; the wire needs OIDs. `hints.rs` finds
//! where a type can be learned from, `schema.rs` holds the declared column
//! types hints resolve against, `pgtypes.rs` maps declared types and values
//! to wire types and encodes rows.

mod hints;
pub mod pgtypes;
mod schema;

pub use hints::{Hint, params_of, projection_of};
pub use schema::{SchemaTypes, schema_types};
