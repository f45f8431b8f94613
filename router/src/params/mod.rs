//! Bind parameters: the client's bytes, in text or binary format, to the
//! SQLite value Tributary stores for them.
//!
//! The same value gives the same stored value whichever format the client
//! chose (docs/types.md lists the representation of each type):
//!
//! | PostgreSQL type | SQLite value |
//! |---|---|
//! | int2, int4, int8, oid | INTEGER |
//! | float4, float8 | REAL (NaN is refused: SQLite would store NULL) |
//! | numeric | TEXT, exact decimal digits as PostgreSQL prints them (`12.340`) |
//! | bool | INTEGER 0 or 1 |
//! | bytea | BLOB |
//! | text, varchar, bpchar, name, "char", unknown | TEXT |
//! | date | TEXT `YYYY-MM-DD` |
//! | time | TEXT `HH:MM:SS[.ffffff]` |
//! | timestamp | TEXT `YYYY-MM-DD HH:MM:SS[.ffffff]` |
//! | timestamptz | TEXT in UTC, `YYYY-MM-DD HH:MM:SS[.ffffff]+00` |
//! | uuid | TEXT, lowercase with hyphens |
//! | json, jsonb | TEXT, the JSON as sent (checked to be JSON) |
//!
//! A value that does not parse is refused with PostgreSQL's SQLSTATE for
//! it (22P02, 22003, 22007, 22021); a binary value of a type not listed is
//! refused with 0A000 naming the type. Nothing is ever stored as raw bytes
//! of another type.

mod datetime;

use pgwire::api::Type;
use rusqlite::types::Value as SqlValue;

use crate::error::{Error, Result};
use datetime::{
    date_days, date_text, time_micros, time_text, timestamp_micros, timestamp_text,
    timestamptz_text,
};

/// One parameter's failure, before its position is known.
#[derive(Debug)]
pub struct Refusal {
    pub sqlstate: &'static str,
    pub reason: String,
}

type R<T> = std::result::Result<T, Refusal>;

pub(crate) fn refuse(sqlstate: &'static str, reason: impl Into<String>) -> Refusal {
    Refusal {
        sqlstate,
        reason: reason.into(),
    }
}

fn syntax(ty: &Type, text: &str) -> Refusal {
    refuse(
        "22P02",
        format!("invalid input syntax for type {}: \"{text}\"", ty.name()),
    )
}

/// Decodes parameter `index` (0-based) of type `ty`.
pub fn decode(index: usize, ty: &Type, binary: bool, bytes: Option<&[u8]>) -> Result<SqlValue> {
    let Some(bytes) = bytes else {
        return Ok(SqlValue::Null);
    };
    let out = if binary {
        decode_binary(ty, bytes)
    } else {
        std::str::from_utf8(bytes)
            .map_err(|_| refuse("22021", "invalid byte sequence for encoding \"UTF8\""))
            .and_then(|text| decode_text(ty, text))
    };
    out.map_err(|r| Error::BadParameter {
        index: index + 1,
        type_name: ty.name().to_owned(),
        sqlstate: r.sqlstate,
        reason: r.reason,
    })
}

pub(crate) fn decode_text(ty: &Type, text: &str) -> R<SqlValue> {
    if let Some(elem) = crate::typing::array_values::element_of(ty) {
        return crate::typing::array_values::from_text(&elem, text)
            .map(SqlValue::Text)
            .map_err(|(state, reason)| refuse(state, reason));
    }
    let t = text.trim();
    Ok(match *ty {
        Type::INT2 | Type::INT4 | Type::INT8 | Type::OID => {
            let n: i64 = t.parse().map_err(|_| syntax(ty, text))?;
            SqlValue::Integer(in_range(ty, n)?)
        }
        Type::FLOAT4 | Type::FLOAT8 => SqlValue::Real(float(ty, t)?),
        Type::NUMERIC => exact_numeric(numeric_text(t).ok_or_else(|| syntax(ty, text))?)?,
        Type::BOOL => SqlValue::Integer(bool_text(t).ok_or_else(|| syntax(ty, text))?.into()),
        Type::BYTEA => SqlValue::Blob(bytea_text(text).ok_or_else(|| syntax(ty, text))?),
        Type::DATE => SqlValue::Text(date_text(t)?),
        Type::TIME => SqlValue::Text(time_text(t)?),
        Type::TIMESTAMP => SqlValue::Text(timestamp_text(t)?),
        Type::TIMESTAMPTZ => SqlValue::Text(timestamptz_text(t)?),
        Type::UUID => SqlValue::Text(uuid_text(t).ok_or_else(|| syntax(ty, text))?),
        Type::JSON | Type::JSONB => SqlValue::Text(json(ty, text)?),
        _ => SqlValue::Text(text.to_owned()),
    })
}

fn fixed<const N: usize>(ty: &Type, b: &[u8]) -> R<[u8; N]> {
    b.try_into().map_err(|_| {
        refuse(
            "22P02",
            format!(
                "binary value of {} bytes for type {} (expected {N})",
                b.len(),
                ty.name()
            ),
        )
    })
}

fn utf8(b: &[u8]) -> R<String> {
    String::from_utf8(b.to_vec())
        .map_err(|_| refuse("22021", "invalid byte sequence for encoding \"UTF8\""))
}

fn decode_binary(ty: &Type, b: &[u8]) -> R<SqlValue> {
    if let Some(elem) = crate::typing::array_values::element_of(ty) {
        return crate::typing::array_values::from_binary(&elem, b)
            .map(SqlValue::Text)
            .map_err(|(state, reason)| refuse(state, reason));
    }
    Ok(match *ty {
        Type::INT2 => SqlValue::Integer(i16::from_be_bytes(fixed(ty, b)?).into()),
        Type::INT4 => SqlValue::Integer(i32::from_be_bytes(fixed(ty, b)?).into()),
        Type::INT8 => SqlValue::Integer(i64::from_be_bytes(fixed(ty, b)?)),
        Type::OID => SqlValue::Integer(u32::from_be_bytes(fixed(ty, b)?).into()),
        Type::FLOAT4 => SqlValue::Real(finite(f32::from_be_bytes(fixed(ty, b)?).into())?),
        Type::FLOAT8 => SqlValue::Real(finite(f64::from_be_bytes(fixed(ty, b)?))?),
        Type::BOOL => SqlValue::Integer((fixed::<1>(ty, b)?[0] != 0).into()),
        Type::BYTEA => SqlValue::Blob(b.to_vec()),
        Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME | Type::UNKNOWN | Type::CHAR => {
            SqlValue::Text(utf8(b)?)
        }
        Type::JSON => SqlValue::Text(json(ty, &utf8(b)?)?),
        Type::JSONB => match b.split_first() {
            Some((1, rest)) => SqlValue::Text(json(ty, &utf8(rest)?)?),
            _ => return Err(refuse("22P02", "unsupported jsonb binary format version")),
        },
        Type::UUID => SqlValue::Text(uuid_bytes(&fixed::<16>(ty, b)?)),
        Type::DATE => SqlValue::Text(date_days(i32::from_be_bytes(fixed(ty, b)?))?),
        Type::TIME => SqlValue::Text(time_micros(i64::from_be_bytes(fixed(ty, b)?))?),
        Type::TIMESTAMP => SqlValue::Text(timestamp_micros(i64::from_be_bytes(fixed(ty, b)?), "")?),
        Type::TIMESTAMPTZ => {
            SqlValue::Text(timestamp_micros(i64::from_be_bytes(fixed(ty, b)?), "+00")?)
        }
        Type::NUMERIC => exact_numeric(
            numeric_binary(b).ok_or_else(|| refuse("22P02", "invalid binary numeric value"))?,
        )?,
        _ => {
            return Err(refuse(
                "0A000",
                format!(
                    "binary parameters of type {} are not supported; send it in text format",
                    ty.name()
                ),
            ));
        }
    })
}

pub(crate) fn in_range(ty: &Type, n: i64) -> R<i64> {
    let ok = match *ty {
        Type::INT2 => i16::try_from(n).is_ok(),
        Type::INT4 => i32::try_from(n).is_ok(),
        Type::OID => u32::try_from(n).is_ok(),
        _ => true,
    };
    if ok {
        Ok(n)
    } else {
        Err(refuse(
            "22003",
            format!("value \"{n}\" is out of range for type {}", ty.name()),
        ))
    }
}

fn finite(f: f64) -> R<f64> {
    if f.is_nan() {
        Err(refuse(
            "22P02",
            "NaN cannot be stored (SQLite would store NULL)",
        ))
    } else {
        Ok(f)
    }
}

fn float(ty: &Type, t: &str) -> R<f64> {
    let f = match t.to_ascii_lowercase().as_str() {
        "infinity" | "+infinity" | "inf" => f64::INFINITY,
        "-infinity" | "-inf" => f64::NEG_INFINITY,
        _ => t.parse::<f64>().map_err(|_| syntax(ty, t))?,
    };
    finite(f)
}

fn bool_text(t: &str) -> Option<bool> {
    let l = t.to_ascii_lowercase();
    // PostgreSQL accepts any unique prefix of true/false/yes/no, and on/off/1/0.
    let prefix = |word: &str| !l.is_empty() && word.starts_with(l.as_str());
    if prefix("true") || prefix("yes") || l == "on" || l == "1" {
        Some(true)
    } else if prefix("false") || prefix("no") || l == "off" || l == "0" {
        Some(false)
    } else {
        None
    }
}

fn bytea_text(t: &str) -> Option<Vec<u8>> {
    if let Some(hex) = t.strip_prefix("\\x") {
        let digits: Vec<u8> = hex.bytes().filter(|c| !c.is_ascii_whitespace()).collect();
        if !digits.len().is_multiple_of(2) {
            return None;
        }
        return digits
            .chunks(2)
            .map(|p| u8::from_str_radix(std::str::from_utf8(p).ok()?, 16).ok())
            .collect();
    }
    // Escape format: `\\` and `\ooo` (octal); everything else as is.
    let b = t.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'\\' {
            out.push(b[i]);
            i += 1;
        } else if b.get(i + 1) == Some(&b'\\') {
            out.push(b'\\');
            i += 2;
        } else {
            let oct = b.get(i + 1..i + 4)?;
            let s = std::str::from_utf8(oct).ok()?;
            out.push(u8::from_str_radix(s, 8).ok()?);
            i += 4;
        }
    }
    Some(out)
}

/// PostgreSQL's text form of a decimal number: `1e3` → `1000`,
/// `12.340` → `12.340`, `.5` → `0.5`, `-0` → `0`; NaN and infinities as
/// PostgreSQL spells them.
pub fn numeric_text(t: &str) -> Option<String> {
    match t.to_ascii_lowercase().as_str() {
        "nan" => return Some("NaN".into()),
        "infinity" | "+infinity" | "inf" => return Some("Infinity".into()),
        "-infinity" | "-inf" => return Some("-Infinity".into()),
        _ => {}
    }
    let (neg, rest) = match t.as_bytes().first()? {
        b'-' => (true, &t[1..]),
        b'+' => (false, &t[1..]),
        _ => (false, t),
    };
    let (mantissa, exp) = match rest.find(['e', 'E']) {
        Some(i) => (&rest[..i], rest[i + 1..].parse::<i64>().ok()?),
        None => (rest, 0),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    if (int.is_empty() && frac.is_empty())
        || !int.bytes().chain(frac.bytes()).all(|c| c.is_ascii_digit())
    {
        return None;
    }
    let mut digits = format!("{int}{frac}");
    let mut scale = frac.len() as i64 - exp;
    if scale < 0 {
        digits.extend(std::iter::repeat_n('0', (-scale) as usize));
        scale = 0;
    }
    let scale = scale as usize;
    if scale > 16383 || digits.len() > 200_000 {
        return None;
    }
    if digits.len() <= scale {
        digits.insert_str(0, &"0".repeat(scale + 1 - digits.len()));
    }
    let (i, f) = digits.split_at(digits.len() - scale);
    let i = i.trim_start_matches('0');
    let i = if i.is_empty() { "0" } else { i };
    let zero = i == "0" && f.bytes().all(|c| c == b'0');
    let sign = if neg && !zero { "-" } else { "" };
    Some(if f.is_empty() {
        format!("{sign}{i}")
    } else {
        format!("{sign}{i}.{f}")
    })
}

/// Whether SQLite keeps the numeric `canonical` (as `numeric_text`
/// prints it) exactly: a numeric column stores a well-formed number as a
/// 64-bit integer or a double, so a value that is neither one nor a double
/// whose shortest form is the value would be rounded. `NaN` and the
/// infinities stay text.
pub fn numeric_is_exact(canonical: &str) -> bool {
    if canonical == "NaN" || canonical.ends_with("Infinity") {
        return true;
    }
    if !canonical.contains('.') && canonical.parse::<i64>().is_ok() {
        return true;
    }
    let Ok(f) = canonical.parse::<f64>() else {
        return false;
    };
    let trimmed = |t: &str| -> String {
        match t.split_once('.') {
            Some((i, f)) => {
                let f = f.trim_end_matches('0');
                if f.is_empty() {
                    i.to_owned()
                } else {
                    format!("{i}.{f}")
                }
            }
            None => t.to_owned(),
        }
    };
    f.is_finite()
        && numeric_text(&f.to_string()).is_some_and(|back| trimmed(&back) == trimmed(canonical))
}

/// The SQLite value of a numeric parameter or cast: its exact decimal
/// text, or 0A000 when SQLite would round it (see `numeric_is_exact`):
/// the value is refused, never stored as something else.
fn exact_numeric(canonical: String) -> R<SqlValue> {
    if numeric_is_exact(&canonical) {
        Ok(SqlValue::Text(canonical))
    } else {
        Err(refuse("0A000", inexact_numeric(&canonical)))
    }
}

/// Why a numeric value is refused (parameters, casts and literals alike).
pub fn inexact_numeric(value: &str) -> String {
    format!(
        "numeric value {value} has more significant digits than Tributary keeps exactly: \
         SQLite stores a number as a 64-bit integer or a double (15 significant digits, \
         up to 17 for some values); keep such values in a text column"
    )
}

/// PostgreSQL's binary numeric: ndigits, weight, sign, dscale, then
/// base-10000 digits.
pub(crate) fn numeric_binary(b: &[u8]) -> Option<String> {
    let word = |i: usize| b.get(i..i + 2).map(|w| u16::from_be_bytes([w[0], w[1]]));
    let ndigits = word(0)? as usize;
    let weight = word(2)? as i16 as i64;
    let sign = word(4)?;
    let dscale = word(6)? as usize;
    if b.len() != 8 + 2 * ndigits {
        return None;
    }
    match sign {
        0x0000 | 0x4000 => {}
        0xC000 => return Some("NaN".into()),
        0xD000 => return Some("Infinity".into()),
        0xF000 => return Some("-Infinity".into()),
        _ => return None,
    }
    let digits: Vec<u16> = (0..ndigits)
        .map(|i| word(8 + 2 * i))
        .collect::<Option<_>>()?;
    if digits.iter().any(|d| *d > 9999) {
        return None;
    }
    let group = |k: i64| -> u16 {
        // Digit group k counts down from `weight` (the most significant).
        let idx = weight - k;
        usize::try_from(idx)
            .ok()
            .and_then(|i| digits.get(i).copied())
            .unwrap_or(0)
    };
    let mut int = String::new();
    if weight >= 0 {
        for k in (0..=weight).rev() {
            if int.is_empty() {
                int = group(k).to_string();
            } else {
                int.push_str(&format!("{:04}", group(k)));
            }
        }
    }
    let int = int.trim_start_matches('0');
    let int = if int.is_empty() { "0" } else { int };
    let mut frac = String::new();
    let mut k = -1;
    while frac.len() < dscale {
        frac.push_str(&format!("{:04}", group(k)));
        k -= 1;
    }
    frac.truncate(dscale);
    let zero = int == "0" && frac.bytes().all(|c| c == b'0');
    let sign = if sign == 0x4000 && !zero { "-" } else { "" };
    Some(if frac.is_empty() {
        format!("{sign}{int}")
    } else {
        format!("{sign}{int}.{frac}")
    })
}

fn uuid_text(t: &str) -> Option<String> {
    let t = t
        .strip_prefix('{')
        .and_then(|r| r.strip_suffix('}'))
        .unwrap_or(t);
    let hex: String = t.chars().filter(|c| *c != '-').collect();
    if hex.len() != 32 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    let mut b = [0u8; 16];
    for (i, byte) in b.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(uuid_bytes(&b))
}

pub(crate) fn uuid_bytes(b: &[u8; 16]) -> String {
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

fn json(ty: &Type, text: &str) -> R<String> {
    serde_json::from_str::<serde::de::IgnoredAny>(text)
        .map(|_| text.to_owned())
        .map_err(|e| {
            refuse(
                "22P02",
                format!("invalid input syntax for type {}: {e}", ty.name()),
            )
        })
}

#[cfg(test)]
mod tests;
