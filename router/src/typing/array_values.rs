//! How an array value is stored: one JSON array per value (`[1,2]`,
//! `["a","b c",null]`), whatever the client sent (PostgreSQL's array text
//! `{1,2}`, the binary array format, `ARRAY[…]`, which runs as JSON), so
//! a column holds one form, change events carry JSON arrays, and
//! `x = ANY(column)` can read it with `json_each`. Integer, float and
//! numeric elements are JSON numbers, booleans JSON booleans, the rest
//! strings. One dimension: a nested array is refused (0A000).

use pgwire::api::Type;
use postgres_types::Kind;
use serde_json::Value as Json;

/// Why a value is refused: SQLSTATE and message.
pub type Refused = (&'static str, String);

/// The element type of the array type `ty` (`None`: not an array type
/// Tributary stores).
pub fn element_of(ty: &Type) -> Option<Type> {
    match ty.kind() {
        Kind::Array(e) => Some(e.clone()),
        _ => None,
    }
}

fn malformed(text: &str) -> Refused {
    ("22P02", format!("malformed array literal: \"{text}\""))
}

/// One element as stored, from its JSON or text form.
fn element(elem: &Type, v: &Json) -> Result<Json, Refused> {
    if v.is_null() {
        return Ok(Json::Null);
    }
    if v.is_array() {
        return Err((
            "0A000",
            "multidimensional arrays are not supported: Tributary stores one dimension".into(),
        ));
    }
    let text = match v {
        Json::String(s) => s.clone(),
        other => other.to_string(),
    };
    let invalid = || {
        (
            "22P02",
            format!("invalid input syntax for type {}: \"{text}\"", elem.name()),
        )
    };
    Ok(match *elem {
        Type::INT2 | Type::INT4 | Type::INT8 | Type::OID => {
            let i: i64 = match v {
                Json::Number(n) => n.as_i64().ok_or_else(invalid)?,
                _ => text.trim().parse().map_err(|_| invalid())?,
            };
            let fits = match *elem {
                Type::INT2 => i16::try_from(i).is_ok(),
                Type::INT4 => i32::try_from(i).is_ok(),
                Type::OID => u32::try_from(i).is_ok(),
                _ => true,
            };
            if !fits {
                return Err((
                    "22003",
                    format!("value \"{i}\" is out of range for type {}", elem.name()),
                ));
            }
            Json::from(i)
        }
        Type::FLOAT4 | Type::FLOAT8 => {
            let f: f64 = match v {
                Json::Number(n) => n.as_f64().ok_or_else(invalid)?,
                _ => text.trim().parse().map_err(|_| invalid())?,
            };
            serde_json::Number::from_f64(f).map(Json::Number).ok_or((
                "0A000",
                format!("{f} in an array: JSON has no form for NaN or infinities"),
            ))?
        }
        Type::NUMERIC => {
            let canonical = crate::params::numeric_text(&text).ok_or_else(invalid)?;
            if !crate::params::numeric_is_exact(&canonical) {
                return Err(("0A000", crate::params::inexact_numeric(&canonical)));
            }
            serde_json::from_str::<Json>(&canonical)
                .ok()
                .filter(Json::is_number)
                .ok_or((
                    "0A000",
                    format!("{canonical} in an array: JSON has no form for it"),
                ))?
        }
        Type::BOOL => match v {
            Json::Bool(b) => Json::Bool(*b),
            _ => match text.trim().to_ascii_lowercase().as_str() {
                "t" | "true" | "yes" | "on" | "1" => Json::Bool(true),
                "f" | "false" | "no" | "off" | "0" => Json::Bool(false),
                _ => return Err(invalid()),
            },
        },
        _ => Json::String(text),
    })
}

/// The stored form of an array value given as text: PostgreSQL's array
/// text or a JSON array.
pub fn from_text(elem: &Type, text: &str) -> Result<String, Refused> {
    let t = text.trim();
    if t.starts_with('{') && t[1..].trim_start().starts_with('{') {
        return Err((
            "0A000",
            "multidimensional arrays are not supported: Tributary stores one dimension".into(),
        ));
    }
    // int2vector-style text (`1 2`) is the catalog's; a value is `{…}` or `[…]`.
    if !t.starts_with('{') && !t.starts_with('[') {
        return Err(malformed(text));
    }
    let json = crate::catalog::pg_array_json(t).ok_or_else(|| malformed(text))?;
    let Ok(Json::Array(items)) = serde_json::from_str::<Json>(&json) else {
        return Err(malformed(text));
    };
    let items = items
        .iter()
        .map(|v| element(elem, v))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Json::Array(items).to_string())
}

/// The stored form of an array value in PostgreSQL's binary array format.
pub fn from_binary(elem: &Type, b: &[u8]) -> Result<String, Refused> {
    let bad = || ("22P02", "invalid binary array value".to_owned());
    let int = |i: usize| -> Result<i32, Refused> {
        b.get(i..i + 4)
            .map(|w| i32::from_be_bytes([w[0], w[1], w[2], w[3]]))
            .ok_or_else(bad)
    };
    let ndim = int(0)?;
    let oid = int(8)? as u32;
    if ndim == 0 {
        return Ok("[]".into());
    }
    if ndim != 1 {
        return Err((
            "0A000",
            "multidimensional arrays are not supported: Tributary stores one dimension".into(),
        ));
    }
    let len = usize::try_from(int(12)?).map_err(|_| bad())?;
    let sent = Type::from_oid(oid).unwrap_or(Type::UNKNOWN);
    let mut at = 20;
    let mut items = Vec::with_capacity(len.min(1 << 16));
    for _ in 0..len {
        let n = int(at)?;
        at += 4;
        if n < 0 {
            items.push(Json::Null);
            continue;
        }
        let n = n as usize;
        let bytes = b.get(at..at + n).ok_or_else(bad)?;
        at += n;
        let v = crate::params::decode(0, &sent, true, Some(bytes)).map_err(|e| {
            let state = e.sqlstate();
            (
                if state == "XX000" { "22P02" } else { state },
                format!("array element: {e}"),
            )
        })?;
        let json = match v {
            rusqlite::types::Value::Null => Json::Null,
            rusqlite::types::Value::Integer(i) if sent == Type::BOOL => Json::Bool(i != 0),
            rusqlite::types::Value::Integer(i) => Json::from(i),
            rusqlite::types::Value::Real(f) => serde_json::Number::from_f64(f)
                .map(Json::Number)
                .unwrap_or(Json::Null),
            rusqlite::types::Value::Text(t) => Json::String(t),
            rusqlite::types::Value::Blob(_) => {
                return Err((
                    "0A000",
                    "bytea elements in an array are not supported".into(),
                ));
            }
        };
        items.push(element(elem, &json)?);
    }
    if at != b.len() {
        return Err(bad());
    }
    Ok(Json::Array(items).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_form_is_stored_as_one_json_array() {
        assert_eq!(
            from_text(&Type::INT4, "{1, 2,NULL}"),
            Ok("[1,2,null]".into())
        );
        assert_eq!(from_text(&Type::INT4, "[1,\"2\"]"), Ok("[1,2]".into()));
        assert_eq!(
            from_text(&Type::TEXT, r#"{a,"b c","x\"y"}"#),
            Ok(r#"["a","b c","x\"y"]"#.into())
        );
        assert_eq!(
            from_text(&Type::BOOL, "{t,false}"),
            Ok("[true,false]".into())
        );
        assert_eq!(from_text(&Type::NUMERIC, "{1.50,2}"), Ok("[1.5,2]".into()));
        assert_eq!(from_text(&Type::INT4, "{}"), Ok("[]".into()));
        assert_eq!(from_text(&Type::INT4, "{x}").map_err(|e| e.0), Err("22P02"));
        assert_eq!(
            from_text(&Type::INT2, "{70000}").map_err(|e| e.0),
            Err("22003")
        );
        assert_eq!(
            from_text(&Type::INT4, "{{1},{2}}").map_err(|e| e.0),
            Err("0A000")
        );
        assert_eq!(from_text(&Type::TEXT, "abc").map_err(|e| e.0), Err("22P02"));
    }

    #[test]
    fn binary_arrays_decode_to_the_same_json() {
        // int4[] {7, NULL}
        let mut b = Vec::new();
        for w in [1i32, 1, 23, 2, 1] {
            b.extend_from_slice(&w.to_be_bytes());
        }
        b.extend_from_slice(&4i32.to_be_bytes());
        b.extend_from_slice(&7i32.to_be_bytes());
        b.extend_from_slice(&(-1i32).to_be_bytes());
        assert_eq!(from_binary(&Type::INT4, &b), Ok("[7,null]".into()));
        assert_eq!(
            from_binary(&Type::INT4, &b[..b.len() - 2]).map_err(|e| e.0),
            Err("22P02")
        );
        let empty = [0u8; 12];
        assert_eq!(from_binary(&Type::TEXT, &empty), Ok("[]".into()));
    }
}
