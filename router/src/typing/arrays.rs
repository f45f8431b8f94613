//! Array results in PostgreSQL's text and binary array forms. Arrays inside
//! a statement are JSON arrays (`array_agg` runs as SQLite's
//! `json_group_array`, see `classify::catalog_sql`); a stored value may
//! also be PostgreSQL's array text (`{a,"b c"}`). Each element is sent as
//! the column's element type says; one that is not of it is an error
//! naming the value, never a guess.

use pgwire::api::Type;
use postgres_types::Kind;
use rusqlite::types::Value as SqlValue;
use serde_json::Value as Json;

use super::wire::Wire;

/// The array type whose elements are `elem` (text where Tributary has no
/// array type of it).
pub fn array_of(elem: &Type) -> Type {
    match *elem {
        Type::BOOL => Type::BOOL_ARRAY,
        Type::INT2 => Type::INT2_ARRAY,
        Type::INT4 => Type::INT4_ARRAY,
        Type::INT8 => Type::INT8_ARRAY,
        Type::FLOAT4 | Type::FLOAT8 => Type::FLOAT8_ARRAY,
        Type::NUMERIC => Type::NUMERIC_ARRAY,
        _ => Type::TEXT_ARRAY,
    }
}

/// The types encoded here.
pub fn handles(ty: &Type) -> bool {
    matches!(
        *ty,
        Type::BOOL_ARRAY
            | Type::INT2_ARRAY
            | Type::INT4_ARRAY
            | Type::INT8_ARRAY
            | Type::FLOAT8_ARRAY
            | Type::NUMERIC_ARRAY
            | Type::TEXT_ARRAY
    )
}

/// `v`, an array, in both forms for the array type `ty`.
pub fn encode(ty: &Type, v: &SqlValue) -> Option<Wire> {
    let SqlValue::Text(t) = v else {
        return None;
    };
    let json = crate::catalog::pg_array_json(t)?;
    let Ok(Json::Array(items)) = serde_json::from_str::<Json>(&json) else {
        return None;
    };
    let elem = match ty.kind() {
        Kind::Array(e) => e.clone(),
        _ => Type::TEXT,
    };
    let mut texts = Vec::with_capacity(items.len());
    let mut binary = Vec::new();
    let has_null = items.iter().any(Json::is_null);
    if items.is_empty() {
        binary.extend_from_slice(&0i32.to_be_bytes());
        binary.extend_from_slice(&0i32.to_be_bytes());
        binary.extend_from_slice(&elem.oid().to_be_bytes());
    } else {
        binary.extend_from_slice(&1i32.to_be_bytes());
        binary.extend_from_slice(&i32::from(has_null).to_be_bytes());
        binary.extend_from_slice(&elem.oid().to_be_bytes());
        binary.extend_from_slice(&i32::try_from(items.len()).ok()?.to_be_bytes());
        binary.extend_from_slice(&1i32.to_be_bytes());
    }
    for item in &items {
        match element(&elem, item)? {
            None => {
                texts.push("NULL".to_owned());
                binary.extend_from_slice(&(-1i32).to_be_bytes());
            }
            Some((text, bytes)) => {
                texts.push(quote(&text));
                binary.extend_from_slice(&i32::try_from(bytes.len()).ok()?.to_be_bytes());
                binary.extend_from_slice(&bytes);
            }
        }
    }
    Some(Wire {
        text: format!("{{{}}}", texts.join(",")),
        binary,
    })
}

/// One element's text and binary forms; `Some(None)` for NULL.
#[allow(clippy::option_option)]
fn element(elem: &Type, v: &Json) -> Option<Option<(String, Vec<u8>)>> {
    if v.is_null() {
        return Some(None);
    }
    let as_text = || match v {
        Json::String(s) => s.clone(),
        other => other.to_string(),
    };
    let integer = || match v {
        Json::Number(n) => n.as_i64(),
        Json::Bool(b) => Some(i64::from(*b)),
        Json::String(s) => s.trim().parse().ok(),
        _ => None,
    };
    Some(Some(match *elem {
        Type::BOOL => {
            let b = match v {
                Json::Bool(b) => *b,
                Json::Number(n) => n.as_f64()? != 0.0,
                Json::String(s) => match s.trim().to_ascii_lowercase().as_str() {
                    "t" | "true" | "1" | "yes" | "on" => true,
                    "f" | "false" | "0" | "no" | "off" => false,
                    _ => return None,
                },
                _ => return None,
            };
            ((if b { "t" } else { "f" }).to_owned(), vec![u8::from(b)])
        }
        Type::INT2 => {
            let i = i16::try_from(integer()?).ok()?;
            (i.to_string(), i.to_be_bytes().to_vec())
        }
        Type::INT4 => {
            let i = i32::try_from(integer()?).ok()?;
            (i.to_string(), i.to_be_bytes().to_vec())
        }
        Type::INT8 => {
            let i = integer()?;
            (i.to_string(), i.to_be_bytes().to_vec())
        }
        Type::FLOAT8 => {
            let f = match v {
                Json::Number(n) => n.as_f64()?,
                _ => as_text().trim().parse().ok()?,
            };
            (f.to_string(), f.to_be_bytes().to_vec())
        }
        Type::NUMERIC => {
            let text = crate::params::numeric_text(&as_text())?;
            let bytes = super::numeric::binary(&text)?;
            (text, bytes)
        }
        _ => {
            let s = as_text();
            (s.clone(), s.into_bytes())
        }
    }))
}

/// An element as PostgreSQL's array text writes it: quoted when it must be.
fn quote(s: &str) -> String {
    let plain = !s.is_empty()
        && !s.eq_ignore_ascii_case("null")
        && !s
            .chars()
            .any(|c| matches!(c, ',' | '{' | '}' | '"' | '\\') || c.is_whitespace());
    if plain {
        s.to_owned()
    } else {
        format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn forms(ty: Type, stored: &str) -> Option<(String, Vec<u8>)> {
        encode(&ty, &SqlValue::Text(stored.into())).map(|w| (w.text, w.binary))
    }

    #[test]
    fn json_arrays_are_sent_as_postgresql_arrays() {
        assert_eq!(
            forms(Type::TEXT_ARRAY, r#"["a","b c",null,""]"#)
                .map(|f| f.0)
                .as_deref(),
            Some(r#"{a,"b c",NULL,""}"#)
        );
        assert_eq!(
            forms(Type::BOOL_ARRAY, "[0,1]").map(|f| f.0).as_deref(),
            Some("{f,t}")
        );
        assert_eq!(
            forms(Type::INT8_ARRAY, "{1,2}").map(|f| f.0).as_deref(),
            Some("{1,2}"),
            "PostgreSQL's array text too"
        );
        let (_, bin) = forms(Type::INT4_ARRAY, "[7]").expect("int4[]");
        assert_eq!(bin[..4], 1i32.to_be_bytes(), "one dimension");
        assert_eq!(bin[8..12], 23u32.to_be_bytes(), "int4 elements");
        assert_eq!(bin[bin.len() - 4..], 7i32.to_be_bytes());
        assert_eq!(
            forms(Type::INT4_ARRAY, "[]").map(|f| f.0).as_deref(),
            Some("{}")
        );
        assert!(forms(Type::INT2_ARRAY, "[70000]").is_none(), "out of range");
        assert!(forms(Type::INT8_ARRAY, "not an array").is_none());
    }
}
