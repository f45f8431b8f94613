//! PostgreSQL casts (`x::int`, `CAST(x AS timestamp)`) with PostgreSQL's
//! rules, not SQLite's: SQLite's `CAST('abc' AS INTEGER)` is 0, PostgreSQL's
//! is an error. The translation layer rewrites each cast to
//! `tributary_cast(x, 'type')`, a SQLite function that converts the value
//! to the representation Tributary stores for that type (the same one bind
//! parameters get, `params.rs`), or fails with PostgreSQL's SQLSTATE.
//!
//! | to | from text | from integer / real |
//! |---|---|---|
//! | int2, int4, int8 | parsed, range-checked (22P02, 22003) | range-checked; reals round half to even, as float8 → int does |
//! | float4, float8, numeric | parsed (numeric keeps its digits) | converted |
//! | text, varchar, char | as is (`varchar(n)`, `char(n)` cut to n characters) | PostgreSQL's text form |
//! | bool | `t`, `true`, `yes`, `on`, `1`, … | integers: non-zero is true |
//! | bytea | hex (`\x…`) or escape format | 42846 |
//! | date, time, timestamp, timestamptz, uuid, json, jsonb | parsed as a bind parameter of that type is | 42846 |
//!
//! Any other target type (interval, arrays, `regtype`, `numeric(p,s)`, …)
//! is refused with 0A000 naming it when the statement is parsed.

use pgwire::api::Type;
use rusqlite::types::{Value as SqlValue, ValueRef};

use crate::error::{Error, Result};
use crate::params::{Refusal, decode_text, in_range, numeric_text, refuse};
use crate::typing::pgtypes::text_of_ref as text_of;

/// The SQLite function the rewrite calls.
pub const FUNCTION: &str = "tributary_cast";

/// The SQLite function `x::regtype` becomes (see `catalog`): an oid or a
/// type name as the type's name.
pub const REGTYPE: &str = "tributary_regtype";

/// A cast target: the type and, for `varchar(n)` / `char(n)`, the length.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    pub ty: Type,
    pub length: Option<usize>,
}

impl Target {
    /// The target named in a statement (`INT`, `varchar(20)`,
    /// `timestamp with time zone`, …); unsupported types are refused.
    pub fn parse(data_type: &str) -> Result<Target> {
        let lower = data_type.trim().to_ascii_lowercase();
        let lower = lower
            .strip_prefix("pg_catalog.")
            .map_or(lower.clone(), str::to_owned);
        let (base, args) = match lower.split_once('(') {
            Some((b, rest)) => (b.trim(), Some(rest.trim_end_matches(')').trim())),
            None => (lower.as_str(), None),
        };
        let unsupported = || {
            Error::Unsupported {
            what: format!("a cast to {data_type}"),
            why: "Tributary casts to the integer, float, numeric, text, bool, bytea, date, time, timestamp, timestamptz, uuid and json types".into(),
        }
        };
        let ty = match base {
            "int2" | "smallint" => Type::INT2,
            "int" | "int4" | "integer" => Type::INT4,
            // An oid is a number; a regclass/regtype is rewritten before
            // it gets here (`classify::catalog_sql`).
            "int8" | "bigint" | "oid" => Type::INT8,
            "float4" | "real" => Type::FLOAT4,
            "float8" | "double precision" | "float" => Type::FLOAT8,
            "numeric" | "decimal" => Type::NUMERIC,
            "text" | "varchar" | "character varying" | "char" | "character" | "bpchar" | "name"
            | "string" => Type::TEXT,
            "bool" | "boolean" => Type::BOOL,
            "bytea" => Type::BYTEA,
            "date" => Type::DATE,
            "time" | "time without time zone" => Type::TIME,
            "timestamp" | "timestamp without time zone" => Type::TIMESTAMP,
            "timestamptz" | "timestamp with time zone" => Type::TIMESTAMPTZ,
            "uuid" => Type::UUID,
            "json" => Type::JSON,
            "jsonb" => Type::JSONB,
            _ => return Err(unsupported()),
        };
        let length = match (args, &ty) {
            (None, _) => None,
            (Some(n), &Type::TEXT) => Some(n.parse().map_err(|_| unsupported())?),
            // Precision of floats and times changes nothing stored here;
            // numeric's scale would round, which is not done: refused.
            (
                Some(_),
                &Type::FLOAT4 | &Type::FLOAT8 | &Type::TIME | &Type::TIMESTAMP | &Type::TIMESTAMPTZ,
            ) => None,
            (Some(_), _) => return Err(unsupported()),
        };
        Ok(Target { ty, length })
    }

    /// The form passed to [`FUNCTION`]: the type's name, then `:n`.
    pub fn encode(&self) -> String {
        match self.length {
            Some(n) => format!("{}:{n}", self.ty.name()),
            None => self.ty.name().to_owned(),
        }
    }

    fn decode(s: &str) -> Option<Target> {
        let (name, length) = match s.split_once(':') {
            Some((n, l)) => (n, Some(l.parse().ok()?)),
            None => (s, None),
        };
        let ty = [
            Type::INT2,
            Type::INT4,
            Type::INT8,
            Type::FLOAT4,
            Type::FLOAT8,
            Type::NUMERIC,
            Type::TEXT,
            Type::BOOL,
            Type::BYTEA,
            Type::DATE,
            Type::TIME,
            Type::TIMESTAMP,
            Type::TIMESTAMPTZ,
            Type::UUID,
            Type::JSON,
            Type::JSONB,
        ]
        .into_iter()
        .find(|t| t.name() == name)?;
        Some(Target { ty, length })
    }
}

fn cannot(from: &str, to: &Type) -> Refusal {
    refuse("42846", format!("cannot cast type {from} to {}", to.name()))
}

/// Converts `v` to `target` (see the module table).
pub fn cast(v: ValueRef<'_>, target: &Target) -> std::result::Result<SqlValue, Refusal> {
    let ty = &target.ty;
    match (v, ty) {
        (ValueRef::Null, _) => Ok(SqlValue::Null),
        (ValueRef::Integer(i), &Type::INT2 | &Type::INT4 | &Type::INT8) => {
            Ok(SqlValue::Integer(in_range(ty, i)?))
        }
        (ValueRef::Real(f), &Type::INT2 | &Type::INT4 | &Type::INT8) => {
            let r = f.round_ties_even();
            if !(-9.223_372_036_854_776e18..9.223_372_036_854_776e18).contains(&r) {
                return Err(refuse("22003", format!("{} out of range", ty.name())));
            }
            Ok(SqlValue::Integer(in_range(ty, r as i64)?))
        }
        (ValueRef::Integer(i), &Type::FLOAT4) => Ok(SqlValue::Real(i as f32 as f64)),
        (ValueRef::Integer(i), &Type::FLOAT8) => Ok(SqlValue::Real(i as f64)),
        (ValueRef::Real(f), &Type::FLOAT4) => Ok(SqlValue::Real(f as f32 as f64)),
        (ValueRef::Real(f), &Type::FLOAT8) => Ok(SqlValue::Real(f)),
        (ValueRef::Integer(_) | ValueRef::Real(_), &Type::NUMERIC) => {
            let t = text_of(v).unwrap_or_default();
            numeric_text(&t).map(SqlValue::Text).ok_or_else(|| {
                refuse(
                    "22P02",
                    format!("invalid input syntax for type numeric: \"{t}\""),
                )
            })
        }
        (ValueRef::Integer(i), &Type::BOOL) => Ok(SqlValue::Integer(i64::from(i != 0))),
        (ValueRef::Blob(b), &Type::BYTEA) => Ok(SqlValue::Blob(b.to_vec())),
        (_, &Type::TEXT) => {
            let mut t = text_of(v).unwrap_or_default();
            if let Some(n) = target.length
                && let Some((cut, _)) = t.char_indices().nth(n)
            {
                t.truncate(cut);
            }
            Ok(SqlValue::Text(t))
        }
        (ValueRef::Text(t), _) => decode_text(ty, &String::from_utf8_lossy(t)),
        (ValueRef::Integer(_), _) => Err(cannot("integer", ty)),
        (ValueRef::Real(_), _) => Err(cannot("double precision", ty)),
        (ValueRef::Blob(_), _) => Err(cannot("bytea", ty)),
    }
}

/// Registers [`FUNCTION`]; its errors carry `SQLSTATE xxxxx:` so the
/// router reports PostgreSQL's code (see `error.rs`).
pub fn register(conn: &rusqlite::Connection) -> rusqlite::Result<()> {
    use rusqlite::functions::FunctionFlags;
    conn.create_scalar_function(
        FUNCTION,
        2,
        FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC,
        |ctx| {
            let name: String = ctx.get(1)?;
            let target = Target::decode(&name).ok_or_else(|| {
                rusqlite::Error::UserFunctionError(format!("SQLSTATE 0A000: cast to {name}").into())
            })?;
            cast(ctx.get_raw(0), &target).map_err(|r| {
                rusqlite::Error::UserFunctionError(
                    format!("SQLSTATE {}: {}", r.sqlstate, r.reason).into(),
                )
            })
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(sql: &str) -> rusqlite::Result<SqlValue> {
        let conn = rusqlite::Connection::open_in_memory()?;
        register(&conn)?;
        conn.query_row(sql, [], |r| r.get(0))
    }

    fn to(v: &str, ty: &str) -> std::result::Result<SqlValue, String> {
        let t = Target::parse(ty).map_err(|e| e.sqlstate().to_owned())?;
        run(&format!("SELECT {FUNCTION}({v}, '{}')", t.encode())).map_err(|e| {
            let s = e.to_string();
            s.split("SQLSTATE ")
                .nth(1)
                .map_or(s.clone(), |r| r[..5].to_owned())
        })
    }

    #[test]
    fn casts_follow_postgresql_not_sqlite() {
        assert_eq!(to("'42'", "int"), Ok(SqlValue::Integer(42)));
        assert_eq!(to("'abc'", "INTEGER"), Err("22P02".into()));
        assert_eq!(to("'12abc'", "int"), Err("22P02".into()));
        assert_eq!(to("70000", "smallint"), Err("22003".into()));
        assert_eq!(to("2.5", "int"), Ok(SqlValue::Integer(2)));
        assert_eq!(to("3.5", "int8"), Ok(SqlValue::Integer(4)));
        assert_eq!(to("'1.50'", "numeric"), Ok(SqlValue::Text("1.50".into())));
        assert_eq!(to("5", "text"), Ok(SqlValue::Text("5".into())));
        assert_eq!(
            to("'abcdef'", "varchar(3)"),
            Ok(SqlValue::Text("abc".into()))
        );
        assert_eq!(to("'yes'", "boolean"), Ok(SqlValue::Integer(1)));
        assert_eq!(to("0", "bool"), Ok(SqlValue::Integer(0)));
        assert_eq!(
            to("'2024-01-02T03:04:05+02'", "timestamptz"),
            Ok(SqlValue::Text("2024-01-02 01:04:05+00".into()))
        );
        assert_eq!(to("'Jan 2'", "date"), Err("22007".into()));
        assert_eq!(to("1", "date"), Err("42846".into()));
        assert_eq!(to("NULL", "uuid"), Ok(SqlValue::Null));
        assert_eq!(to("'x'", "regtype"), Err("0A000".into()));
        assert_eq!(to("'x'", "numeric(10,2)"), Err("0A000".into()));
        assert_eq!(to("'x'", "interval"), Err("0A000".into()));
    }
}
