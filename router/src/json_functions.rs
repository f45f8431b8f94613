//! PostgreSQL's jsonb operators and `jsonb_set` over the JSON text Tributary
//! stores: `a @> b` / `a <@ b` (containment, as PostgreSQL defines it for
//! jsonb), `a ? k`, `a ?| keys`, `a ?& keys` (top-level keys, or string
//! elements of a top-level array), and `jsonb_set(target, '{path}',
//! value[, create_missing])`, which replaces SQLite's own `jsonb_set` (that
//! one returns SQLite's binary JSONB and takes `$.a` paths). The operators
//! reach these functions through `classify::sql_functions`. Text that is
//! no JSON is 22P02; a NULL argument gives NULL.

use rusqlite::Connection;
use rusqlite::functions::{Context, FunctionFlags};
use serde_json::Value as Json;

pub const CONTAINS: &str = "tributary_json_contains";
pub const HAS_KEY: &str = "tributary_json_has_key";
pub const HAS_ANY: &str = "tributary_json_has_any";
pub const HAS_ALL: &str = "tributary_json_has_all";

fn bad(what: &str, text: &str) -> rusqlite::Error {
    let shown: String = text.chars().take(60).collect();
    rusqlite::Error::UserFunctionError(
        format!("SQLSTATE 22P02: invalid input syntax for type {what}: \"{shown}\"").into(),
    )
}

fn json_arg(ctx: &Context<'_>, i: usize) -> rusqlite::Result<Option<Json>> {
    let text: Option<String> = match ctx.get_raw(i) {
        rusqlite::types::ValueRef::Null => None,
        rusqlite::types::ValueRef::Integer(n) => Some(n.to_string()),
        rusqlite::types::ValueRef::Real(f) => Some(f.to_string()),
        _ => ctx.get(i)?,
    };
    text.map(|t| serde_json::from_str(&t).map_err(|_| bad("json", &t)))
        .transpose()
}

/// PostgreSQL's text-array literal `{a,b,"c d"}` (or a JSON array of
/// strings, as arrays are stored here).
fn text_array(text: &str) -> rusqlite::Result<Vec<String>> {
    if let Ok(Json::Array(items)) = serde_json::from_str::<Json>(text) {
        return Ok(items
            .into_iter()
            .map(|v| match v {
                Json::String(s) => s,
                other => other.to_string(),
            })
            .collect());
    }
    let inner = text
        .trim()
        .strip_prefix('{')
        .and_then(|t| t.strip_suffix('}'))
        .ok_or_else(|| bad("text[]", text))?;
    if inner.trim().is_empty() {
        return Ok(Vec::new());
    }
    Ok(inner
        .split(',')
        .map(|p| p.trim().trim_matches('"').to_owned())
        .collect())
}

/// PostgreSQL's jsonb containment (a top-level array also contains a
/// scalar it holds; nested ones do not).
fn contains(a: &Json, b: &Json) -> bool {
    contains_at(a, b, true)
}

fn contains_at(a: &Json, b: &Json, top: bool) -> bool {
    match (a, b) {
        (Json::Object(x), Json::Object(y)) => y
            .iter()
            .all(|(k, v)| x.get(k).is_some_and(|w| contains_at(w, v, false))),
        (Json::Array(x), Json::Array(y)) => {
            y.iter().all(|v| x.iter().any(|w| contains_at(w, v, false)))
        }
        (Json::Array(x), s) if top && !s.is_object() && !s.is_array() => {
            x.iter().any(|w| contains_at(w, s, false))
        }
        (Json::Number(x), Json::Number(y)) => x.as_f64() == y.as_f64(),
        (x, y) => x == y,
    }
}

fn has_key(a: &Json, key: &str) -> bool {
    match a {
        Json::Object(m) => m.contains_key(key),
        Json::Array(items) => items.iter().any(|v| v.as_str() == Some(key)),
        Json::String(s) => s == key,
        _ => false,
    }
}

/// `jsonb_set`: `value` at `path`, creating the last step when missing
/// (and `create`); a path through a scalar or out of range leaves the
/// target as it was, as in PostgreSQL.
fn set(target: &mut Json, path: &[String], value: Json, create: bool) {
    let Some((last, init)) = path.split_last() else {
        return;
    };
    let mut at = target;
    for step in init {
        let next = match at {
            Json::Object(m) => m.get_mut(step),
            Json::Array(items) => index(items.len(), step).and_then(|i| items.get_mut(i)),
            _ => None,
        };
        match next {
            Some(n) => at = n,
            None => return,
        }
    }
    match at {
        Json::Object(m) if create || m.contains_key(last) => {
            m.insert(last.clone(), value);
        }
        Json::Array(items) => match index(items.len(), last) {
            Some(i) => items[i] = value,
            None if create => {
                if last.trim_start().starts_with('-') {
                    items.insert(0, value);
                } else {
                    items.push(value);
                }
            }
            None => {}
        },
        _ => {}
    }
}

/// An array subscript as PostgreSQL reads it (negative from the end).
fn index(len: usize, step: &str) -> Option<usize> {
    let i: i64 = step.trim().parse().ok()?;
    let len = i64::try_from(len).ok()?;
    let i = if i < 0 { len + i } else { i };
    (0..len).contains(&i).then_some(i as usize)
}

pub fn register(conn: &Connection) -> rusqlite::Result<()> {
    let flags = FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC;
    conn.create_scalar_function(CONTAINS, 2, flags, |ctx| {
        Ok(match (json_arg(ctx, 0)?, json_arg(ctx, 1)?) {
            (Some(a), Some(b)) => Some(contains(&a, &b)),
            _ => None,
        })
    })?;
    conn.create_scalar_function(HAS_KEY, 2, flags, |ctx| {
        let key: Option<String> = ctx.get(1)?;
        Ok(match (json_arg(ctx, 0)?, key) {
            (Some(a), Some(k)) => Some(has_key(&a, &k)),
            _ => None,
        })
    })?;
    for (name, all) in [(HAS_ANY, false), (HAS_ALL, true)] {
        conn.create_scalar_function(name, 2, flags, move |ctx| {
            let keys: Option<String> = ctx.get(1)?;
            let (Some(a), Some(keys)) = (json_arg(ctx, 0)?, keys) else {
                return Ok(None);
            };
            let keys = text_array(&keys)?;
            Ok(Some(if all {
                keys.iter().all(|k| has_key(&a, k))
            } else {
                keys.iter().any(|k| has_key(&a, k))
            }))
        })?;
    }
    for args in [3, 4] {
        conn.create_scalar_function("jsonb_set", args, flags, move |ctx| {
            let path: Option<String> = ctx.get(1)?;
            let (Some(mut target), Some(path), Some(value)) =
                (json_arg(ctx, 0)?, path, json_arg(ctx, 2)?)
            else {
                return Ok(None);
            };
            let create = args < 4 || ctx.get::<Option<bool>>(3)?.unwrap_or(true);
            set(&mut target, &text_array(&path)?, value, create);
            Ok(Some(target.to_string()))
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn j(s: &str) -> Json {
        serde_json::from_str(s).expect("json")
    }

    #[test]
    fn containment_and_keys_follow_postgresql() {
        // Each line checked against PostgreSQL 15's jsonb operators.
        assert!(contains(
            &j(r#"{"a":1,"b":{"c":[1,2]}}"#),
            &j(r#"{"b":{"c":[2]}}"#)
        ));
        assert!(!contains(&j(r#"{"a":1}"#), &j(r#"{"a":2}"#)));
        assert!(contains(&j("[1,2,[3]]"), &j("[[3],1]")));
        assert!(contains(&j(r#"["a","b"]"#), &j(r#""a""#)));
        assert!(!contains(&j(r#"{"a":[1,2]}"#), &j(r#"{"a":1}"#)));
        assert!(contains(&j("1.0"), &j("1")));
        assert!(has_key(&j(r#"{"k":null}"#), "k"));
        assert!(has_key(&j(r#"["k"]"#), "k"));
        assert!(!has_key(&j(r#"{"a":{"k":1}}"#), "k"));
    }

    #[test]
    fn jsonb_set_follows_postgresql() {
        let run = |t: &str, path: &str, v: &str, create: bool| {
            let mut t = j(t);
            set(&mut t, &text_array(path).expect("path"), j(v), create);
            t.to_string()
        };
        assert_eq!(run(r#"{"a":1}"#, "{k}", "5", true), r#"{"a":1,"k":5}"#);
        assert_eq!(run(r#"{"a":1}"#, "{k}", "5", false), r#"{"a":1}"#);
        assert_eq!(
            run(r#"{"a":{"b":1}}"#, "{a,b}", r#""x""#, true),
            r#"{"a":{"b":"x"}}"#
        );
        assert_eq!(run("[1,2,3]", "{-1}", "9", true), "[1,2,9]");
        assert_eq!(run("[1,2,3]", "{10}", "9", true), "[1,2,3,9]");
        assert_eq!(run(r#"{"a":1}"#, "{x,y}", "5", true), r#"{"a":1}"#);
        assert_eq!(
            text_array(r#"["a","b"]"#).expect("json array"),
            vec!["a", "b"]
        );
        assert!(text_array("nope").is_err());
    }
}
