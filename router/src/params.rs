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

use chrono::{DateTime, Duration, NaiveDate, NaiveDateTime, NaiveTime, Timelike};
use pgwire::api::Type;
use rusqlite::types::Value as SqlValue;

use crate::error::{Error, Result};

/// One parameter's failure, before its position is known.
#[derive(Debug)]
pub struct Refusal {
    pub sqlstate: &'static str,
    pub reason: String,
}

type R<T> = std::result::Result<T, Refusal>;

fn refuse(sqlstate: &'static str, reason: impl Into<String>) -> Refusal {
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

fn decode_text(ty: &Type, text: &str) -> R<SqlValue> {
    let t = text.trim();
    Ok(match *ty {
        Type::INT2 | Type::INT4 | Type::INT8 | Type::OID => {
            let n: i64 = t.parse().map_err(|_| syntax(ty, text))?;
            SqlValue::Integer(in_range(ty, n)?)
        }
        Type::FLOAT4 | Type::FLOAT8 => SqlValue::Real(float(ty, t)?),
        Type::NUMERIC => SqlValue::Text(numeric_text(t).ok_or_else(|| syntax(ty, text))?),
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
        Type::NUMERIC => SqlValue::Text(
            numeric_binary(b).ok_or_else(|| refuse("22P02", "invalid binary numeric value"))?,
        ),
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

fn in_range(ty: &Type, n: i64) -> R<i64> {
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

/// PostgreSQL's binary numeric: ndigits, weight, sign, dscale, then
/// base-10000 digits.
fn numeric_binary(b: &[u8]) -> Option<String> {
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

fn uuid_bytes(b: &[u8; 16]) -> String {
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

fn pg_epoch() -> NaiveDateTime {
    NaiveDate::from_ymd_opt(2000, 1, 1)
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .unwrap_or_default()
}

fn datetime_refusal(what: &str, text: &str) -> Refusal {
    refuse(
        "22007",
        format!(
            "invalid input syntax for type {what}: \"{text}\" (send ISO 8601, e.g. 2024-01-02 03:04:05.678+00, or binary)"
        ),
    )
}

fn render_date(d: NaiveDate) -> String {
    use chrono::Datelike;
    if d.year() <= 0 {
        format!("{:04}-{:02}-{:02} BC", 1 - d.year(), d.month(), d.day())
    } else {
        format!("{:04}-{:02}-{:02}", d.year(), d.month(), d.day())
    }
}

fn render_time(t: NaiveTime) -> String {
    let micros = t.nanosecond() / 1000;
    let base = format!("{:02}:{:02}:{:02}", t.hour(), t.minute(), t.second());
    if micros == 0 {
        base
    } else {
        let frac = format!("{micros:06}");
        format!("{base}.{}", frac.trim_end_matches('0'))
    }
}

fn render_timestamp(ts: NaiveDateTime, zone: &str) -> String {
    format!(
        "{} {}{zone}",
        render_date(ts.date()),
        render_time(ts.time())
    )
}

fn date_days(days: i32) -> R<String> {
    match days {
        i32::MAX => return Ok("infinity".into()),
        i32::MIN => return Ok("-infinity".into()),
        _ => {}
    }
    pg_epoch()
        .date()
        .checked_add_signed(Duration::days(days.into()))
        .map(render_date)
        .ok_or_else(|| {
            refuse(
                "22008",
                format!("date out of range: {days} days from 2000-01-01"),
            )
        })
}

fn time_micros(us: i64) -> R<String> {
    if !(0..=86_400_000_000).contains(&us) {
        return Err(refuse("22008", format!("time out of range: {us} µs")));
    }
    if us == 86_400_000_000 {
        return Ok("24:00:00".into());
    }
    let secs = (us / 1_000_000) as u32;
    let nanos = ((us % 1_000_000) * 1000) as u32;
    NaiveTime::from_num_seconds_from_midnight_opt(secs, nanos)
        .map(render_time)
        .ok_or_else(|| refuse("22008", format!("time out of range: {us} µs")))
}

fn timestamp_micros(us: i64, zone: &str) -> R<String> {
    match us {
        i64::MAX => return Ok("infinity".into()),
        i64::MIN => return Ok("-infinity".into()),
        _ => {}
    }
    pg_epoch()
        .checked_add_signed(Duration::microseconds(us))
        .map(|ts| render_timestamp(ts, zone))
        .ok_or_else(|| refuse("22008", "timestamp out of range"))
}

fn special(t: &str) -> Option<String> {
    match t.to_ascii_lowercase().as_str() {
        "infinity" | "+infinity" => Some("infinity".into()),
        "-infinity" => Some("-infinity".into()),
        _ => None,
    }
}

fn bc(t: &str) -> (&str, bool) {
    match t.strip_suffix(" BC").or_else(|| t.strip_suffix(" bc")) {
        Some(rest) => (rest, true),
        None => (t, false),
    }
}

fn to_bc(d: NaiveDate) -> Option<NaiveDate> {
    use chrono::Datelike;
    d.with_year(1 - d.year())
}

fn date_text(t: &str) -> R<String> {
    if let Some(s) = special(t) {
        return Ok(s);
    }
    let (body, is_bc) = bc(t);
    let d = NaiveDate::parse_from_str(body, "%Y-%m-%d")
        .ok()
        .and_then(|d| if is_bc { to_bc(d) } else { Some(d) })
        .ok_or_else(|| datetime_refusal("date", t))?;
    Ok(render_date(d))
}

fn parse_time(t: &str) -> Option<NaiveTime> {
    NaiveTime::parse_from_str(t, "%H:%M:%S%.f")
        .or_else(|_| NaiveTime::parse_from_str(t, "%H:%M"))
        .ok()
}

fn time_text(t: &str) -> R<String> {
    if t == "24:00:00" || t == "24:00" {
        return Ok("24:00:00".into());
    }
    parse_time(t)
        .map(render_time)
        .ok_or_else(|| datetime_refusal("time", t))
}

fn parse_naive(t: &str) -> Option<NaiveDateTime> {
    let (body, is_bc) = bc(t);
    let (date, time) = match body.split_once([' ', 'T']) {
        Some((d, rest)) => (d, Some(rest)),
        None => (body, None),
    };
    let d = NaiveDate::parse_from_str(date, "%Y-%m-%d").ok()?;
    let d = if is_bc { to_bc(d)? } else { d };
    let time = match time {
        Some(s) => parse_time(s)?,
        None => NaiveTime::MIN,
    };
    Some(d.and_time(time))
}

fn timestamp_text(t: &str) -> R<String> {
    if let Some(s) = special(t) {
        return Ok(s);
    }
    parse_naive(t)
        .map(|ts| render_timestamp(ts, ""))
        .ok_or_else(|| datetime_refusal("timestamp", t))
}

fn timestamptz_text(t: &str) -> R<String> {
    if let Some(s) = special(t) {
        return Ok(s);
    }
    let (body, is_bc) = bc(t);
    // The offset: `Z`, or a sign after the time part (`+05`, `-03:30`).
    let (local, offset_secs) =
        if let Some(rest) = body.strip_suffix('Z').or_else(|| body.strip_suffix('z')) {
            (rest.to_owned(), 0)
        } else {
            match body.rfind(['+', '-']).filter(|&i| i > 10) {
                Some(i) => {
                    let off = &body[i..];
                    let parsed = DateTime::parse_from_str(
                        &format!("2000-01-01 00:00:00{off}"),
                        "%Y-%m-%d %H:%M:%S%#z",
                    )
                    .map_err(|_| datetime_refusal("timestamp with time zone", t))?;
                    (
                        body[..i].trim_end().to_owned(),
                        parsed.offset().local_minus_utc(),
                    )
                }
                // No offset: the session's TimeZone, which is UTC.
                None => (body.to_owned(), 0),
            }
        };
    let local = if is_bc { format!("{local} BC") } else { local };
    let ts = parse_naive(&local).ok_or_else(|| datetime_refusal("timestamp with time zone", t))?;
    let utc = ts
        .checked_sub_signed(Duration::seconds(offset_secs.into()))
        .ok_or_else(|| refuse("22008", "timestamp out of range"))?;
    Ok(render_timestamp(utc, "+00"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(ty: Type, s: &str) -> Option<SqlValue> {
        decode(0, &ty, false, Some(s.as_bytes())).ok()
    }

    fn bin(ty: Type, b: &[u8]) -> Option<SqlValue> {
        decode(0, &ty, true, Some(b)).ok()
    }

    fn t(s: &str) -> Option<SqlValue> {
        Some(SqlValue::Text(s.into()))
    }

    #[test]
    fn text_and_binary_of_one_value_store_the_same() {
        let days = (NaiveDate::from_ymd_opt(2024, 1, 2).expect("date") - pg_epoch().date())
            .num_days() as i32;
        assert_eq!(bin(Type::DATE, &days.to_be_bytes()), t("2024-01-02"));
        assert_eq!(text(Type::DATE, "2024-01-02"), t("2024-01-02"));
        let us: i64 = ((days as i64) * 86_400 + 3 * 3600 + 4 * 60 + 5) * 1_000_000 + 678_000;
        assert_eq!(
            bin(Type::TIMESTAMP, &us.to_be_bytes()),
            t("2024-01-02 03:04:05.678")
        );
        assert_eq!(
            text(Type::TIMESTAMP, "2024-01-02T03:04:05.678"),
            t("2024-01-02 03:04:05.678")
        );
        assert_eq!(
            bin(Type::TIMESTAMPTZ, &us.to_be_bytes()),
            t("2024-01-02 03:04:05.678+00")
        );
        assert_eq!(
            text(Type::TIMESTAMPTZ, "2024-01-02 05:04:05.678+02"),
            t("2024-01-02 03:04:05.678+00")
        );
        assert_eq!(
            text(Type::TIMESTAMPTZ, "2024-01-02 00:34:05.678-02:30"),
            t("2024-01-02 03:04:05.678+00")
        );
        assert_eq!(
            bin(Type::TIME, &(3_723_000_001i64).to_be_bytes()),
            t("01:02:03.000001")
        );
        assert_eq!(text(Type::TIME, "01:02:03.000001"), t("01:02:03.000001"));
        let u = [
            0x55u8, 0x0e, 0x84, 0x00, 0xe2, 0x9b, 0x41, 0xd4, 0xa7, 0x16, 0x44, 0x66, 0x55, 0x44,
            0, 0,
        ];
        assert_eq!(
            bin(Type::UUID, &u),
            t("550e8400-e29b-41d4-a716-446655440000")
        );
        assert_eq!(
            text(Type::UUID, "{550E8400E29B41D4A716446655440000}"),
            t("550e8400-e29b-41d4-a716-446655440000")
        );
        assert_eq!(bin(Type::JSONB, b"\x01{\"a\": 1}"), t("{\"a\": 1}"));
        assert_eq!(text(Type::JSONB, "{\"a\": 1}"), t("{\"a\": 1}"));
        assert_eq!(
            bin(Type::INT2, &7i16.to_be_bytes()),
            Some(SqlValue::Integer(7))
        );
        assert_eq!(text(Type::INT2, " 7 "), Some(SqlValue::Integer(7)));
        assert_eq!(bin(Type::BOOL, &[1]), Some(SqlValue::Integer(1)));
        assert_eq!(text(Type::BOOL, "yes"), Some(SqlValue::Integer(1)));
        assert_eq!(
            text(Type::BYTEA, "\\x00ff"),
            Some(SqlValue::Blob(vec![0, 255]))
        );
        assert_eq!(
            text(Type::BYTEA, "a\\\\b\\001"),
            Some(SqlValue::Blob(b"a\\b\x01".to_vec()))
        );
    }

    #[test]
    fn numeric_keeps_its_digits_in_both_formats() {
        // 12.340: ndigits 2, weight 0, sign +, dscale 3, digits 12, 3400.
        let b = [0, 2, 0, 0, 0, 0, 0, 3, 0, 12, 0x0d, 0x48];
        assert_eq!(numeric_binary(&b).as_deref(), Some("12.340"));
        assert_eq!(numeric_text("12.340").as_deref(), Some("12.340"));
        // -0.0015: ndigits 1, weight -1, sign -, dscale 4, digits 15.
        let b = [0, 1, 0xff, 0xff, 0x40, 0, 0, 4, 0, 15];
        assert_eq!(numeric_binary(&b).as_deref(), Some("-0.0015"));
        assert_eq!(numeric_text("-1.5e-3").as_deref(), Some("-0.0015"));
        // 123456789: ndigits 3, weight 2, digits 1, 2345, 6789.
        let b = [0, 3, 0, 2, 0, 0, 0, 0, 0, 1, 0x09, 0x29, 0x1a, 0x85];
        assert_eq!(numeric_binary(&b).as_deref(), Some("123456789"));
        assert_eq!(numeric_text("1.23456789e8").as_deref(), Some("123456789"));
        assert_eq!(numeric_text(".5").as_deref(), Some("0.5"));
        assert_eq!(numeric_text("-0.00").as_deref(), Some("0.00"));
        assert_eq!(numeric_text("1e3").as_deref(), Some("1000"));
        assert_eq!(numeric_text("abc"), None);
    }

    #[test]
    fn bad_values_are_refused_with_postgres_sqlstates() {
        let state = |ty: Type, binary: bool, b: &[u8]| {
            decode(0, &ty, binary, Some(b)).err().map(|e| e.sqlstate())
        };
        assert_eq!(state(Type::INT4, false, b"12x"), Some("22P02"));
        assert_eq!(state(Type::INT2, false, b"70000"), Some("22003"));
        assert_eq!(state(Type::INT4, true, &[0, 1]), Some("22P02"));
        assert_eq!(state(Type::TEXT, true, &[0xff, 0xfe]), Some("22021"));
        assert_eq!(
            state(Type::FLOAT8, true, &f64::NAN.to_be_bytes()),
            Some("22P02")
        );
        assert_eq!(state(Type::DATE, false, b"Jan 2"), Some("22007"));
        assert_eq!(state(Type::JSON, false, b"{nope"), Some("22P02"));
        assert_eq!(state(Type::INTERVAL, true, &[0; 16]), Some("0A000"));
        assert_eq!(
            decode(0, &Type::INT8, true, None).ok(),
            Some(SqlValue::Null)
        );
    }
}
