//! `PRAGMA`: the read-only ones run on the router's replica; one that would
//! change a single replica's file is refused.

use super::{Kind, unsupported};
use crate::error::Result;

const READ_PRAGMAS: &[&str] = &[
    "table_info",
    "table_xinfo",
    "table_list",
    "index_list",
    "index_info",
    "index_xinfo",
    "foreign_key_list",
    "database_list",
    "collation_list",
    "function_list",
    "pragma_list",
    "compile_options",
    "integrity_check",
    "quick_check",
    "page_count",
    "page_size",
    "freelist_count",
    "schema_version",
    "user_version",
    "encoding",
    "journal_mode",
    "foreign_keys",
];

pub(super) fn kind(name: &str, has_value: bool, is_eq: bool) -> Result<Kind> {
    let pragma = name.to_ascii_lowercase();
    let base = pragma.rsplit('.').next().unwrap_or(&pragma).to_owned();
    let read = READ_PRAGMAS.contains(&base.as_str()) && !is_eq;
    let takes_arg = matches!(
        base.as_str(),
        "table_info"
            | "table_xinfo"
            | "index_list"
            | "index_info"
            | "index_xinfo"
            | "foreign_key_list"
    );
    if !read || (has_value && !takes_arg) {
        return Err(unsupported(
            format!("PRAGMA {pragma}"),
            "a writable PRAGMA would change one replica only; only read-only PRAGMAs are allowed",
        ));
    }
    Ok(Kind::Read)
}

/// `PRAGMA name`, `PRAGMA name(arg)` or `PRAGMA name = value` that sqlparser refused.
pub(super) fn fallback(sql: &str) -> Result<Option<Kind>> {
    let text = sql.trim().trim_end_matches(';').trim();
    let Some(head) = text.get(..6) else {
        return Ok(None);
    };
    if !head.eq_ignore_ascii_case("pragma") {
        return Ok(None);
    }
    let rest = text[6..].trim_start();
    let end = rest
        .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == '.'))
        .unwrap_or(rest.len());
    let (name, tail) = rest.split_at(end);
    let tail = tail.trim();
    if name.is_empty() || tail.contains(';') {
        return Ok(None);
    }
    kind(name, !tail.is_empty(), tail.starts_with('=')).map(Some)
}
