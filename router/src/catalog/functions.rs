//! The functions catalog queries call: visibility and privilege checks
//! (one search path, one role that may do everything), `format_type`,
//! `to_regtype` and `::regtype`, the descriptions of objects Tributary does
//! not have (none), and the array helpers psql uses on JSON arrays.

use pgwire::api::Type;
use rusqlite::Connection;
use rusqlite::functions::FunctionFlags;

/// The type called `name` (as `to_regtype` takes it), if `pg_type` has it.
fn type_named(name: &str) -> Option<&'static Type> {
    let n = name.trim().trim_matches('"').to_ascii_lowercase();
    let n = n.strip_prefix("pg_catalog.").unwrap_or(&n);
    let alias = match n {
        "integer" | "int" => "int4",
        "bigint" => "int8",
        "smallint" => "int2",
        "boolean" => "bool",
        "real" => "float4",
        "double precision" => "float8",
        "character varying" => "varchar",
        "character" => "bpchar",
        "timestamp without time zone" => "timestamp",
        "timestamp with time zone" => "timestamptz",
        "time without time zone" => "time",
        "decimal" => "numeric",
        other => other,
    };
    super::tables::TYPES.iter().find(|t| t.name() == alias)
}

pub(super) fn register(conn: &Connection) -> rusqlite::Result<()> {
    let flags = FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC;
    // The search path is `public`: Tributary's own tables are not on it.
    conn.create_scalar_function(
        "pg_table_is_visible",
        1,
        FunctionFlags::SQLITE_UTF8,
        |ctx| {
            let oid: Option<i64> = ctx.get(0)?;
            Ok(oid.is_some_and(|o| !super::OFF_PATH.with(|h| h.borrow().contains(&o))))
        },
    )?;
    conn.create_scalar_function("pg_type_is_visible", 1, flags, |_| Ok(true))?;
    conn.create_scalar_function("pg_get_userbyid", 1, flags, |_| Ok("tributary".to_owned()))?;
    // No object carries a comment (COMMENT ON is not supported).
    for (name, args) in [
        ("obj_description", 1),
        ("obj_description", 2),
        ("col_description", 2),
    ] {
        conn.create_scalar_function(name, args, flags, |_| Ok(rusqlite::types::Null))?;
    }
    conn.create_scalar_function("to_regtype", 1, flags, |ctx| {
        let name: Option<String> = ctx.get(0)?;
        Ok(name.as_deref().and_then(type_named).map(Type::oid))
    })?;
    // `x::regtype`: an oid (or a type name) as the type's name.
    conn.create_scalar_function(crate::casts::REGTYPE, 1, flags, |ctx| {
        let v: rusqlite::types::Value = ctx.get(0)?;
        Ok(match v {
            rusqlite::types::Value::Integer(oid) => u32::try_from(oid)
                .ok()
                .and_then(Type::from_oid)
                .map_or_else(|| oid.to_string(), |t| t.name().to_owned()),
            rusqlite::types::Value::Text(name) => match type_named(&name) {
                Some(t) => t.name().to_owned(),
                None => {
                    return Err(rusqlite::Error::UserFunctionError(
                        format!("SQLSTATE 42704: type \"{name}\" does not exist").into(),
                    ));
                }
            },
            _ => String::new(),
        })
    })?;
    // Objects Tributary has none of: no sequences behind generated keys,
    // no publications, no extended statistics, no user functions.
    for (name, args) in [
        ("pg_get_serial_sequence", 2),
        ("pg_get_statisticsobjdef_columns", 1),
        ("pg_get_function_result", 1),
        ("pg_get_function_arguments", 1),
        ("pg_get_function_identity_arguments", 1),
        ("pg_get_triggerdef", 1),
        ("pg_get_triggerdef", 2),
    ] {
        conn.create_scalar_function(name, args, flags, |_| Ok(rusqlite::types::Null))?;
    }
    conn.create_scalar_function("pg_relation_is_publishable", 1, flags, |_| Ok(false))?;
    // No partitions: a table's only ancestor is itself.
    conn.create_scalar_function("pg_partition_ancestors", 1, flags, |ctx| {
        ctx.get::<rusqlite::types::Value>(0)
    })?;
    // Sizes are not tracked per table: unknown, not a made-up number.
    for name in [
        "pg_table_size",
        "pg_relation_size",
        "pg_total_relation_size",
        "pg_indexes_size",
    ] {
        conn.create_scalar_function(name, 1, flags, |_| Ok(rusqlite::types::Null))?;
    }
    conn.create_scalar_function("pg_size_pretty", 1, flags, |ctx| {
        let bytes: Option<i64> = ctx.get(0)?;
        Ok(bytes.map(size_pretty))
    })?;
    for name in [
        "pg_function_is_visible",
        "pg_collation_is_visible",
        "pg_opclass_is_visible",
    ] {
        conn.create_scalar_function(name, 1, flags, |_| Ok(true))?;
    }
    // One role, which may do everything.
    for args in [2, 3] {
        for name in [
            "has_table_privilege",
            "has_schema_privilege",
            "has_database_privilege",
            "has_column_privilege",
        ] {
            conn.create_scalar_function(name, args, flags, |_| Ok(true))?;
        }
    }
    conn.create_scalar_function("pg_encoding_to_char", 1, flags, |_| Ok("UTF8".to_owned()))?;
    conn.create_scalar_function("format_type", 2, flags, |ctx| {
        let oid: Option<i64> = ctx.get(0)?;
        let typmod: Option<i64> = ctx.get(1)?;
        Ok(oid.map(|o| format_type(o, typmod.unwrap_or(-1))))
    })?;
    // Arrays are JSON arrays here (see `classify::catalog_sql`).
    conn.create_scalar_function("array_to_string", 2, flags, |ctx| {
        let array: Option<String> = ctx.get(0)?;
        let sep: String = ctx.get::<Option<String>>(1)?.unwrap_or_default();
        Ok(array.map(|a| {
            json_elements(&a)
                .iter()
                .filter(|v| !v.is_null())
                .map(|v| match v {
                    serde_json::Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .collect::<Vec<_>>()
                .join(&sep)
        }))
    })?;
    for name in ["array_upper", "array_length"] {
        conn.create_scalar_function(name, 2, flags, |ctx| {
            let array: Option<String> = ctx.get(0)?;
            Ok(array
                .map(|a| json_elements(&a).len() as i64)
                .filter(|n| *n > 0))
        })?;
    }
    conn.create_scalar_function(ARRAY, 1, flags, |ctx| {
        let text: Option<String> = ctx.get(0)?;
        text.map(|t| {
            pg_array_json(&t).ok_or_else(|| {
                rusqlite::Error::UserFunctionError(
                    format!("SQLSTATE 22P02: malformed array literal: \"{t}\"").into(),
                )
            })
        })
        .transpose()
    })?;
    conn.create_scalar_function(ARRAY_AT, 2, flags, |ctx| {
        let array: Option<String> = ctx.get(0)?;
        let index: Option<i64> = ctx.get(1)?;
        Ok(array.zip(index).and_then(|(a, i)| array_at(&a, i)))
    })?;
    conn.create_scalar_function(RELNAME, 1, flags, |ctx| {
        let name: Option<String> = ctx.get(0)?;
        Ok(name.map(|n| unqualified(&n)))
    })?;
    Ok(())
}

/// An array as a JSON array: PostgreSQL's text form (`{a,"b c",NULL}`, what
/// drivers send for a list) parsed, a JSON array passed through.
pub const ARRAY: &str = "tributary_array";

/// PostgreSQL's array text as a JSON array of strings and nulls (one
/// dimension; the column's affinity makes numbers of numeric elements).
pub fn pg_array_json(text: &str) -> Option<String> {
    let t = text.trim();
    // int2vector/oidvector (`pg_index.indkey`): numbers between spaces.
    if !t.is_empty()
        && t.bytes()
            .all(|b| b.is_ascii_digit() || b == b' ' || b == b'-')
    {
        let items: Vec<serde_json::Value> = t
            .split_whitespace()
            .map(|n| serde_json::Value::String(n.to_owned()))
            .collect();
        return Some(serde_json::Value::Array(items).to_string());
    }
    if t.starts_with('[') {
        return serde_json::from_str::<serde_json::Value>(t)
            .ok()
            .filter(serde_json::Value::is_array)
            .map(|_| t.to_owned());
    }
    let inner = t.strip_prefix('{')?.strip_suffix('}')?;
    let mut items = Vec::new();
    let mut chars = inner.chars().peekable();
    while chars.peek().is_some() {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let item = if chars.peek() == Some(&'"') {
            chars.next();
            let mut s = String::new();
            loop {
                match chars.next()? {
                    '\\' => s.push(chars.next()?),
                    '"' => break,
                    c => s.push(c),
                }
            }
            serde_json::Value::String(s)
        } else {
            let mut s = String::new();
            while let Some(&c) = chars.peek() {
                if c == ',' {
                    break;
                }
                if c == '{' || c == '"' {
                    return None;
                }
                s.push(c);
                chars.next();
            }
            let s = s.trim();
            if s.eq_ignore_ascii_case("NULL") {
                serde_json::Value::Null
            } else if s.is_empty() {
                return None;
            } else {
                serde_json::Value::String(s.to_owned())
            }
        };
        items.push(item);
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        match chars.next() {
            None => break,
            Some(',') => {}
            Some(_) => return None,
        }
    }
    Some(serde_json::Value::Array(items).to_string())
}

/// `a[i]`: PostgreSQL's subscript, 1-based (0-based for the int2vector and
/// oidvector text of `pg_index`), NULL outside the array.
pub const ARRAY_AT: &str = "tributary_array_at";

fn array_at(array: &str, index: i64) -> Option<String> {
    let vector = !array.trim_start().starts_with(['{', '[']);
    let json = pg_array_json(array)?;
    let items = json_elements(&json);
    let position = if vector { index } else { index - 1 };
    let item = items.get(usize::try_from(position).ok()?)?;
    match item {
        serde_json::Value::Null => None,
        serde_json::Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

/// Strips `public.`/`pg_catalog.` and double quotes from a relation name
/// as `'name'::regclass` takes it.
pub const RELNAME: &str = "tributary_relname";

fn unqualified(name: &str) -> String {
    let n = name.trim();
    let n = ["public.", "pg_catalog.", "\"public\"."]
        .iter()
        .find_map(|p| n.strip_prefix(p))
        .unwrap_or(n);
    match n.strip_prefix('"').and_then(|r| r.strip_suffix('"')) {
        Some(quoted) => quoted.replace("\"\"", "\""),
        None => n.to_ascii_lowercase(),
    }
}

/// The elements of an array held as JSON text (none if it is not one).
fn json_elements(text: &str) -> Vec<serde_json::Value> {
    match serde_json::from_str(text) {
        Ok(serde_json::Value::Array(items)) => items,
        _ => Vec::new(),
    }
}

/// PostgreSQL's `pg_size_pretty`: bytes, kB, MB, … rounding half up once a
/// unit holds at least 10 240 of the one below.
fn size_pretty(bytes: i64) -> String {
    let mut value = bytes;
    for unit in ["bytes", "kB", "MB", "GB", "TB"] {
        if value.abs() < 10 * 1024 {
            return format!("{value} {unit}");
        }
        value = (value + value.signum() * 512) / 1024;
    }
    format!("{value} PB")
}

/// PostgreSQL's `format_type`: the SQL name of a type, with its modifier.
pub fn format_type(oid: i64, typmod: i64) -> String {
    let Some(ty) = u32::try_from(oid).ok().and_then(Type::from_oid) else {
        return "???".to_owned();
    };
    if let postgres_types::Kind::Array(elem) = ty.kind() {
        return format!("{}[]", format_type(i64::from(elem.oid()), typmod));
    }
    let with_len = |name: &str| {
        if typmod >= 4 {
            format!("{name}({})", typmod - 4)
        } else {
            name.to_owned()
        }
    };
    match ty {
        Type::INT2 => "smallint".into(),
        Type::INT4 => "integer".into(),
        Type::INT8 => "bigint".into(),
        Type::FLOAT4 => "real".into(),
        Type::FLOAT8 => "double precision".into(),
        Type::BOOL => "boolean".into(),
        Type::VARCHAR => with_len("character varying"),
        Type::BPCHAR => with_len("character"),
        Type::TIMESTAMP => "timestamp without time zone".into(),
        Type::TIMESTAMPTZ => "timestamp with time zone".into(),
        Type::TIME => "time without time zone".into(),
        Type::NUMERIC if typmod >= 4 => {
            let m = typmod - 4;
            format!("numeric({},{})", m >> 16, m & 0xffff)
        }
        other => other.name().to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_type_names_types_as_postgresql_does() {
        assert_eq!(format_type(23, -1), "integer");
        assert_eq!(format_type(1700, ((10 << 16) | 2) + 4), "numeric(10,2)");
        assert_eq!(format_type(1043, 24), "character varying(20)");
        assert_eq!(format_type(1007, -1), "integer[]");
        assert_eq!(format_type(1184, -1), "timestamp with time zone");
        assert_eq!(format_type(999_999, -1), "???");
    }

    #[test]
    fn sizes_print_as_postgresql_prints_them() {
        assert_eq!(size_pretty(8192), "8192 bytes");
        assert_eq!(size_pretty(10 * 1024), "10 kB");
        assert_eq!(size_pretty(123_456_789), "118 MB");
    }

    #[test]
    fn array_literals_become_json() {
        assert_eq!(
            pg_array_json(r#"{a,"b c",NULL,"q\"x"}"#).as_deref(),
            Some(r#"["a","b c",null,"q\"x"]"#)
        );
        assert_eq!(pg_array_json("{}").as_deref(), Some("[]"));
        assert_eq!(pg_array_json("{1, 2}").as_deref(), Some(r#"["1","2"]"#));
        assert_eq!(pg_array_json("[1,2]").as_deref(), Some("[1,2]"));
        assert_eq!(
            pg_array_json("1 3").as_deref(),
            Some(r#"["1","3"]"#),
            "int2vector"
        );
        assert_eq!(pg_array_json("{{1},{2}}"), None, "one dimension");
        assert_eq!(pg_array_json("{a,"), None);
        assert_eq!(pg_array_json("nope"), None);
    }

    #[test]
    fn subscripts_count_as_postgresql_counts() {
        assert_eq!(array_at("{a,b}", 1).as_deref(), Some("a"));
        assert_eq!(array_at("[1,2]", 2).as_deref(), Some("2"));
        assert_eq!(array_at("{a,b}", 0), None);
        assert_eq!(array_at("{a,b}", 3), None);
        assert_eq!(
            array_at("3 5", 0).as_deref(),
            Some("3"),
            "int2vector is 0-based"
        );
        assert_eq!(array_at("3 5", -1), None);
    }

    #[test]
    fn regclass_names_lose_schema_and_quotes() {
        assert_eq!(unqualified("public.Orders"), "orders");
        assert_eq!(unqualified("\"Orders\""), "Orders");
        assert_eq!(unqualified("pg_catalog.pg_class"), "pg_class");
    }
}
