//! The one copy of SQLite's declared-type rule (a substring match on the
//! declared type, as SQLite's own column affinity works), used by policy
//! validation here and by the router's wire types and type hints.

/// What a column's declared type says its values are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnType {
    /// `BOOL`, `BOOLEAN`.
    Boolean,
    /// Anything containing `INT` (SQLite's INTEGER affinity).
    Integer,
    /// `REAL`, `FLOAT`, `DOUBLE`, `NUMERIC`, `DECIMAL`.
    Real,
    /// `BLOB`, `BYTEA`.
    Blob,
    /// `JSON`, `JSONB` (TEXT in SQLite; what set columns need).
    Json,
    /// Everything else, and no declared type.
    Text,
}

impl ColumnType {
    /// Classifies a declared type such as `BIGINT` or `varchar(20)`.
    pub fn of(decl: &str) -> ColumnType {
        let d = decl.to_ascii_uppercase();
        let has = |s: &str| d.contains(s);
        if has("BOOL") {
            ColumnType::Boolean
        } else if has("INT") {
            ColumnType::Integer
        } else if has("REAL") || has("FLOA") || has("DOUB") || has("NUMERIC") || has("DECIMAL") {
            ColumnType::Real
        } else if has("BLOB") || has("BYTEA") {
            ColumnType::Blob
        } else if has("JSON") {
            ColumnType::Json
        } else {
            ColumnType::Text
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follows_sqlite_substring_rules() {
        for (decl, want) in [
            ("BIGINT", ColumnType::Integer),
            ("integer", ColumnType::Integer),
            ("boolean", ColumnType::Boolean),
            ("DOUBLE PRECISION", ColumnType::Real),
            ("numeric(10,2)", ColumnType::Real),
            ("bytea", ColumnType::Blob),
            ("jsonb", ColumnType::Json),
            ("varchar(20)", ColumnType::Text),
            ("", ColumnType::Text),
        ] {
            assert_eq!(ColumnType::of(decl), want, "{decl}");
        }
    }
}
