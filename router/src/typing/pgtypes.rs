//! Mapping between SQLite's dynamic values and PostgreSQL wire types.
//!
//! A result column's type comes from its declared SQLite type (INT2 →
//! int2, INT4 → int4, other integers → int8, NUMERIC → numeric, REAL →
//! float8, BLOB → bytea, BOOLEAN → bool, else text); a column
//! without one (an expression) takes the type of its first value when rows
//! are at hand, else text. Each value is converted to its column's type, so
//! a text value in an INTEGER column still encodes correctly in binary.

use std::collections::BTreeMap;
use std::sync::Arc;

use pgwire::api::Type;
use pgwire::api::portal::{Format, Portal};
use pgwire::api::results::{DataRowEncoder, FieldInfo};
use pgwire::error::PgWireResult;
use pgwire::messages::data::DataRow;
use rusqlite::types::Value as SqlValue;

use crate::error::Result;
use crate::exec::ResultSet;
use crate::typing::{Hint, SchemaTypes};
use resolver::ColumnType;

/// The wire type for a declared type: its own PostgreSQL type for dates
/// and times, UUID, JSON, numeric and the 2- and 4-byte integers (the DDL
/// translation declares PostgreSQL's `smallint`/`integer` as `INT2`/`INT4`,
/// see `keys::create_table`), else by SQLite's affinity rules.
pub fn type_for_decl(decl: &str) -> Type {
    if let Some(elem) = decl.trim().strip_suffix("[]") {
        return super::arrays::array_of(&type_for_decl(elem));
    }
    if let Some(t) = named_type(decl) {
        return t;
    }
    match ColumnType::of(decl) {
        ColumnType::Boolean => Type::BOOL,
        ColumnType::Integer => Type::INT8,
        ColumnType::Real => Type::FLOAT8,
        ColumnType::Blob => Type::BYTEA,
        ColumnType::Json | ColumnType::Text => Type::TEXT,
    }
}

fn type_for_value(v: &SqlValue) -> Type {
    match v {
        SqlValue::Integer(_) => Type::INT8,
        SqlValue::Real(_) => Type::FLOAT8,
        SqlValue::Blob(_) => Type::BYTEA,
        SqlValue::Text(_) | SqlValue::Null => Type::TEXT,
    }
}

/// Column types of a result, from declared types and, if given, the rows.
pub fn column_types(decl_types: &[Option<String>], rows: Option<&[Vec<SqlValue>]>) -> Vec<Type> {
    decl_types
        .iter()
        .enumerate()
        .map(|(i, d)| match d {
            Some(d) if !d.is_empty() => type_for_decl(d),
            _ => rows
                .and_then(|rs| {
                    rs.iter()
                        .map(|r| &r[i])
                        .find(|v| !matches!(v, SqlValue::Null))
                })
                .map_or(Type::TEXT, type_for_value),
        })
        .collect()
}

pub fn fields(columns: &[String], types: &[Type], format: &Format) -> Vec<FieldInfo> {
    columns
        .iter()
        .zip(types)
        .enumerate()
        .map(|(i, (name, ty))| {
            FieldInfo::new(name.clone(), None, None, ty.clone(), format.format_for(i))
        })
        .collect()
}

/// PostgreSQL's text form of a stored value (`None` for NULL): what a
/// `::text` cast, a text-format result and COPY's text output show.
pub fn text_of(v: &SqlValue) -> Option<String> {
    text_of_ref(v.into())
}

/// [`text_of`] for a value still in SQLite's hands.
pub fn text_of_ref(v: rusqlite::types::ValueRef<'_>) -> Option<String> {
    match v {
        rusqlite::types::ValueRef::Null => None,
        rusqlite::types::ValueRef::Integer(i) => Some(i.to_string()),
        rusqlite::types::ValueRef::Real(f) => Some(f.to_string()),
        rusqlite::types::ValueRef::Text(t) => Some(String::from_utf8_lossy(t).into_owned()),
        rusqlite::types::ValueRef::Blob(b) => Some(format!(
            "\\x{}",
            b.iter().map(|x| format!("{x:02x}")).collect::<String>()
        )),
    }
}

/// `scale`: a `numeric(p,s)` column's `s`, its values printed with that many
/// decimals as PostgreSQL prints them.
fn encode_value(
    enc: &mut DataRowEncoder,
    ty: &Type,
    scale: Option<u32>,
    v: &SqlValue,
) -> PgWireResult<()> {
    if matches!(v, SqlValue::Null) {
        return enc.encode_field(&None::<i64>);
    }
    match *ty {
        Type::INT8 => match integer(v) {
            Some(i) => enc.encode_field(&i),
            None => Err(unrepresentable(v, ty)),
        },
        Type::INT2 => match integer(v).and_then(|i| i16::try_from(i).ok()) {
            Some(i) => enc.encode_field(&i),
            None => Err(unrepresentable(v, ty)),
        },
        Type::INT4 => match integer(v).and_then(|i| i32::try_from(i).ok()) {
            Some(i) => enc.encode_field(&i),
            None => Err(unrepresentable(v, ty)),
        },
        Type::INTERVAL => match text_of(v).and_then(|t| crate::interval::Interval::parse(&t)) {
            Some(i) => enc.encode_field(&super::wire::Wire {
                text: i.format(),
                binary: i.binary(),
            }),
            None => Err(unrepresentable(v, ty)),
        },
        Type::NUMERIC => match super::numeric::encode(v, scale) {
            Some(w) => enc.encode_field(&w),
            None => Err(unrepresentable(v, ty)),
        },
        Type::FLOAT8 => match v {
            SqlValue::Real(f) => enc.encode_field(&super::wire::float8(*f)),
            SqlValue::Integer(i) => enc.encode_field(&super::wire::float8(*i as f64)),
            other => match text_of(other).and_then(|t| t.trim().parse::<f64>().ok()) {
                Some(f) => enc.encode_field(&super::wire::float8(f)),
                None => Err(unrepresentable(other, ty)),
            },
        },
        Type::BOOL => match v {
            SqlValue::Integer(i) => enc.encode_field(&(*i != 0)),
            SqlValue::Real(f) => enc.encode_field(&(*f != 0.0)),
            other => {
                let b = text_of(other).and_then(|t| match t.trim().to_ascii_lowercase().as_str() {
                    "t" | "true" | "1" | "yes" | "on" => Some(true),
                    "f" | "false" | "0" | "no" | "off" => Some(false),
                    _ => None,
                });
                match b {
                    Some(b) => enc.encode_field(&b),
                    None => Err(unrepresentable(other, ty)),
                }
            }
        },
        Type::BYTEA => match v {
            SqlValue::Blob(b) => enc.encode_field(&b.as_slice()),
            other => enc.encode_field(&text_of(other).map(String::into_bytes)),
        },
        ref t if super::arrays::handles(t) => match super::arrays::encode(t, v) {
            Some(w) => enc.encode_field(&w),
            None => Err(unrepresentable(v, ty)),
        },
        ref t if super::wire::handles(t) => match super::wire::encode(t, v) {
            Some(w) => enc.encode_field(&w),
            None => Err(unrepresentable(v, ty)),
        },
        _ => enc.encode_field(&text_of(v)),
    }
}

/// A stored integer, however SQLite's affinity left it.
fn integer(v: &SqlValue) -> Option<i64> {
    match v {
        SqlValue::Integer(i) => Some(*i),
        SqlValue::Real(f) if f.fract() == 0.0 && f.abs() < 9.2e18 => Some(*f as i64),
        other => text_of(other).and_then(|t| t.trim().parse::<i64>().ok()),
    }
}

/// A stored value the column's reported type cannot carry (SQLite's type
/// affinity keeps, say, the text `abc` in an INTEGER column): the query
/// fails naming it, rather than sending NULL or a guess in its place.
fn unrepresentable(v: &SqlValue, ty: &Type) -> pgwire::error::PgWireError {
    let shown: String = text_of(v).unwrap_or_default().chars().take(60).collect();
    pgwire::error::PgWireError::UserError(Box::new(pgwire::error::ErrorInfo::new(
        "ERROR".to_owned(),
        "22P02".to_owned(),
        format!(
            "a stored value \"{shown}\" cannot be sent as {}, the type its column reports (the replica holds it as {}); cast the column to text to read it",
            ty.name(),
            match v {
                SqlValue::Text(_) => "text",
                SqlValue::Blob(_) => "a blob",
                SqlValue::Real(_) => "a real",
                _ => "another type",
            }
        ),
    )))
}

/// Encodes every row of a result for the given fields.
pub fn encode_rows(rs: &ResultSet, fields: Arc<Vec<FieldInfo>>) -> Vec<PgWireResult<DataRow>> {
    let types: Vec<Type> = fields.iter().map(|f| f.datatype().clone()).collect();
    let scales: Vec<Option<u32>> = (0..types.len())
        .map(|i| {
            rs.decl_types
                .get(i)
                .and_then(Option::as_deref)
                .and_then(super::numeric::precision_of)
                .map(|(_, s)| s)
        })
        .collect();
    let mut enc = DataRowEncoder::new(fields);
    let mut out = Vec::with_capacity(rs.rows.len());
    for row in &rs.rows {
        let mut result = Ok(());
        for ((v, ty), scale) in row.iter().zip(&types).zip(&scales) {
            result = encode_value(&mut enc, ty, *scale, v);
            if result.is_err() {
                break;
            }
        }
        out.push(result.map(|()| enc.take_row()));
    }
    out
}

/// Parameter types: the client's where given, else inferred from the column
/// each placeholder meets (see `classify`), else text.
pub fn infer_param_types(
    count: usize,
    client: &[Option<Type>],
    hints: &BTreeMap<usize, Hint>,
    schema: &SchemaTypes,
) -> Vec<Type> {
    (1..=count)
        .map(|n| {
            client
                .get(n - 1)
                .cloned()
                .flatten()
                .filter(|t| *t != Type::UNKNOWN)
                .or_else(|| {
                    hints
                        .get(&n)
                        .and_then(|h| schema.resolve(h))
                        .map(|d| param_type_for_decl(&d))
                })
                .unwrap_or(Type::TEXT)
        })
        .collect()
}

/// Decodes a bound portal's parameters into SQLite values (see `params`).
pub fn decode_params<S: Clone>(portal: &Portal<S>, types: &[Type]) -> Result<Vec<SqlValue>> {
    let binary = |i: usize| match &portal.parameter_format {
        Format::UnifiedText => false,
        Format::UnifiedBinary => true,
        // One code means every parameter (pgwire unifies it); a missing
        // code is text, and never an index panic.
        Format::Individual(codes) => codes.get(i).is_some_and(|c| *c == 1),
    };
    portal
        .parameters
        .iter()
        .enumerate()
        .map(|(i, bytes)| {
            let ty = types.get(i).cloned().unwrap_or(Type::TEXT);
            crate::params::decode(i, &ty, binary(i), bytes.as_deref())
        })
        .collect()
}

/// The type a parameter compared with or assigned to a column declared
/// `decl` gets in ParameterDescription: the column's reported type.
pub fn param_type_for_decl(decl: &str) -> Type {
    // `= ANY($1::oid[])` (asyncpg's type introspection): described as
    // oid[], which drivers bind without looking the type up first.
    if decl.eq_ignore_ascii_case("OID[]") {
        return Type::OID_ARRAY;
    }
    type_for_decl(decl)
}

/// A declared type that [`type_for_decl`] reports as `ty` (what a cast
/// to `ty` stands for when a result column's type is worked out).
pub fn decl_for_type(ty: &Type) -> &'static str {
    match *ty {
        Type::INT2 => "INT2",
        Type::INT4 => "INT4",
        Type::INT8 | Type::OID => "INT8",
        Type::FLOAT4 | Type::FLOAT8 => "REAL",
        Type::NUMERIC => "NUMERIC",
        Type::BOOL => "BOOLEAN",
        Type::BYTEA => "BLOB",
        Type::DATE => "DATE",
        Type::TIME => "TIME",
        Type::TIMESTAMP => "TIMESTAMP",
        Type::TIMESTAMPTZ => "TIMESTAMPTZ",
        Type::UUID => "UUID",
        Type::JSON => "JSON",
        Type::JSONB => "JSONB",
        Type::INTERVAL => "INTERVAL",
        _ => "TEXT",
    }
}

/// Declared type names PostgreSQL has its own type for, beyond what
/// SQLite's affinity says: dates and times, UUID, JSON, int2/int4, numeric.
fn named_type(decl: &str) -> Option<Type> {
    let upper = decl.to_ascii_uppercase();
    Some(match upper.split('(').next().unwrap_or("").trim() {
        "DATE" => Type::DATE,
        "TIME" | "TIME WITHOUT TIME ZONE" => Type::TIME,
        "TIMESTAMP" | "TIMESTAMP WITHOUT TIME ZONE" | "DATETIME" => Type::TIMESTAMP,
        "TIMESTAMPTZ" | "TIMESTAMP WITH TIME ZONE" => Type::TIMESTAMPTZ,
        "UUID" => Type::UUID,
        "JSON" => Type::JSON,
        "JSONB" => Type::JSONB,
        "INTERVAL" => Type::INTERVAL,
        "INT2" => Type::INT2,
        "INT4" => Type::INT4,
        "NUMERIC" | "DECIMAL" => Type::NUMERIC,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(ty: Type, v: SqlValue) -> PgWireResult<DataRow> {
        let rs = ResultSet {
            columns: vec!["c".into()],
            decl_types: vec![None],
            rows: vec![vec![v]],
        };
        let fields = Arc::new(fields(&rs.columns, &[ty], &Format::UnifiedText));
        encode_rows(&rs, fields).remove(0)
    }

    #[test]
    fn values_a_column_type_cannot_carry_are_errors_not_nulls() {
        assert!(encode(Type::INT8, SqlValue::Text("42".into())).is_ok());
        assert!(encode(Type::INT8, SqlValue::Text("abc".into())).is_err());
        assert!(encode(Type::FLOAT8, SqlValue::Text("1.5".into())).is_ok());
        assert!(encode(Type::FLOAT8, SqlValue::Text("x".into())).is_err());
        assert!(encode(Type::BOOL, SqlValue::Text("off".into())).is_ok());
        assert!(encode(Type::BOOL, SqlValue::Text("maybe".into())).is_err());
        assert!(encode(Type::INT8, SqlValue::Null).is_ok());
        assert!(encode(Type::INT4, SqlValue::Integer(1 << 31)).is_err());
        assert!(encode(Type::INT4, SqlValue::Integer(-(1 << 31))).is_ok());
        assert!(encode(Type::INT2, SqlValue::Integer(40_000)).is_err());
        assert!(encode(Type::NUMERIC, SqlValue::Real(12.5)).is_ok());
        assert!(encode(Type::NUMERIC, SqlValue::Text("1e400".into())).is_ok());
        assert!(encode(Type::NUMERIC, SqlValue::Text("12.x".into())).is_err());
    }

    #[test]
    fn declared_types_report_postgresqls_integer_widths() {
        assert_eq!(type_for_decl("INT2"), Type::INT2);
        assert_eq!(type_for_decl("int4"), Type::INT4);
        assert_eq!(
            type_for_decl("INTEGER"),
            Type::INT8,
            "rowid keys are 64-bit"
        );
        assert_eq!(type_for_decl("BIGINT"), Type::INT8);
        assert_eq!(type_for_decl("NUMERIC(10,2)"), Type::NUMERIC);
        for ty in [
            Type::INT2,
            Type::INT4,
            Type::INT8,
            Type::NUMERIC,
            Type::DATE,
            Type::JSONB,
        ] {
            assert_eq!(type_for_decl(decl_for_type(&ty)), ty);
        }
    }
}
