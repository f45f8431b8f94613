//! Results of the date/time, UUID and JSON types in PostgreSQL's text and
//! binary forms. Replicas store them as text (the canonical forms the
//! parameter decoders write, see `params`); a stored value is read back
//! through the same decoder, so whatever spelling an SQL literal stored is
//! sent as PostgreSQL would send it, and one no PostgreSQL value has is an
//! error naming it, never a guess.

use std::error::Error as StdError;

use bytes::BytesMut;
use chrono::{NaiveDate, NaiveDateTime, NaiveTime};
use pgwire::api::Type;
use pgwire::types::ToSqlText;
use pgwire::types::format::FormatOptions;
use postgres_types::{IsNull, ToSql, to_sql_checked};
use rusqlite::types::Value as SqlValue;

/// The types encoded here.
pub fn handles(ty: &Type) -> bool {
    matches!(
        *ty,
        Type::DATE
            | Type::TIME
            | Type::TIMESTAMP
            | Type::TIMESTAMPTZ
            | Type::UUID
            | Type::JSON
            | Type::JSONB
    )
}

/// A float8 as PostgreSQL 12+ prints it (extra_float_digits ≥ 1, the
/// default): the shortest text that reads back as the same double, in
/// `%g` style: fixed notation for decimal exponents -4 to 14 (`5`, not
/// pgwire's `5.0`), otherwise `1e+15` / `1.5e-05`; `Infinity`, `NaN`.
pub fn float8_text(v: f64) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "Infinity" } else { "-Infinity" }.into();
    }
    let sci = format!("{v:e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((sci.as_str(), "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if v == 0.0 || (-4..15).contains(&exp) {
        return format!("{v}");
    }
    format!(
        "{mantissa}e{}{:02}",
        if exp < 0 { '-' } else { '+' },
        exp.unsigned_abs()
    )
}

/// A float8's text and binary forms.
pub fn float8(v: f64) -> Wire {
    Wire {
        text: float8_text(v),
        binary: v.to_be_bytes().to_vec(),
    }
}

/// One value's text and binary forms (the row encoder picks by format).
#[derive(Debug)]
pub struct Wire {
    pub(super) text: String,
    pub(super) binary: Vec<u8>,
}

impl ToSql for Wire {
    fn to_sql(
        &self,
        _ty: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn StdError + Sync + Send>> {
        out.extend_from_slice(&self.binary);
        Ok(IsNull::No)
    }

    fn accepts(_ty: &Type) -> bool {
        true
    }

    to_sql_checked!();
}

impl ToSqlText for Wire {
    fn to_sql_text(
        &self,
        _ty: &Type,
        out: &mut BytesMut,
        _format_options: &FormatOptions,
    ) -> Result<IsNull, Box<dyn StdError + Sync + Send>> {
        out.extend_from_slice(self.text.as_bytes());
        Ok(IsNull::No)
    }
}

fn pg_epoch() -> NaiveDateTime {
    NaiveDate::from_ymd_opt(2000, 1, 1)
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .unwrap_or_default()
}

fn days(text: &str) -> Option<i32> {
    match text {
        "infinity" => return Some(i32::MAX),
        "-infinity" => return Some(i32::MIN),
        _ => {}
    }
    let d = NaiveDate::parse_from_str(text, "%Y-%m-%d").ok()?;
    i32::try_from((d - pg_epoch().date()).num_days()).ok()
}

fn time_micros(text: &str) -> Option<i64> {
    if text == "24:00:00" {
        return Some(86_400_000_000);
    }
    let t = NaiveTime::parse_from_str(text, "%H:%M:%S%.f").ok()?;
    (t - NaiveTime::MIN).num_microseconds()
}

fn timestamp_micros(text: &str) -> Option<i64> {
    match text {
        "infinity" => return Some(i64::MAX),
        "-infinity" => return Some(i64::MIN),
        _ => {}
    }
    let ts = NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f").ok()?;
    (ts - pg_epoch()).num_microseconds()
}

fn uuid_bytes(text: &str) -> Option<Vec<u8>> {
    let hex: String = text.chars().filter(|c| *c != '-').collect();
    if hex.len() != 32 {
        return None;
    }
    (0..16)
        .map(|i| u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok())
        .collect()
}

/// `v`, stored in a column of type `ty`, in both forms; `None` when no
/// value of `ty` reads that way (BC dates and times are sent as text only
/// by PostgreSQL's rules here, so they are refused in binary too).
pub fn encode(ty: &Type, v: &SqlValue) -> Option<Wire> {
    // SQLite's NUMERIC affinity of a `jsonb`/`json` column keeps a JSON
    // number (`j = j->'a'`) as an integer or real: it is that JSON text.
    let number;
    let stored = match v {
        SqlValue::Text(t) => t.as_str(),
        SqlValue::Integer(i) if matches!(*ty, Type::JSON | Type::JSONB) => {
            number = i.to_string();
            number.as_str()
        }
        SqlValue::Real(f) if matches!(*ty, Type::JSON | Type::JSONB) && f.is_finite() => {
            number = f.to_string();
            number.as_str()
        }
        _ => return None,
    };
    let SqlValue::Text(text) = crate::params::decode_text(ty, stored).ok()? else {
        return None;
    };
    let binary = match *ty {
        Type::DATE => days(&text)?.to_be_bytes().to_vec(),
        Type::TIME => time_micros(&text)?.to_be_bytes().to_vec(),
        Type::TIMESTAMP => timestamp_micros(&text)?.to_be_bytes().to_vec(),
        Type::TIMESTAMPTZ => timestamp_micros(text.strip_suffix("+00").unwrap_or(&text))?
            .to_be_bytes()
            .to_vec(),
        Type::UUID => uuid_bytes(&text)?,
        Type::JSON => text.clone().into_bytes(),
        Type::JSONB => {
            let mut b = Vec::with_capacity(text.len() + 1);
            b.push(1);
            b.extend_from_slice(text.as_bytes());
            b
        }
        _ => return None,
    };
    Some(Wire { text, binary })
}

#[cfg(test)]
mod tests {
    #[test]
    fn float8_prints_as_postgresql() {
        // Each checked against PostgreSQL 15 (`SELECT x::float8`).
        for (v, text) in [
            (5.0, "5"),
            (1.5, "1.5"),
            (-0.25, "-0.25"),
            (0.1 + 0.2, "0.30000000000000004"),
            (1e14, "100000000000000"),
            (1e15, "1e+15"),
            (1234567890123456.7, "1.2345678901234568e+15"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (1.5e-300, "1.5e-300"),
            (f64::INFINITY, "Infinity"),
            (f64::NEG_INFINITY, "-Infinity"),
            (0.0, "0"),
        ] {
            assert_eq!(super::float8_text(v), text, "{v}");
        }
    }

    use super::*;

    fn forms(ty: Type, stored: &str) -> Option<(String, Vec<u8>)> {
        encode(&ty, &SqlValue::Text(stored.into())).map(|w| (w.text, w.binary))
    }

    #[test]
    fn binary_forms_are_postgresqls() {
        assert_eq!(
            forms(Type::DATE, "2000-01-02"),
            Some(("2000-01-02".into(), 1i32.to_be_bytes().to_vec()))
        );
        assert_eq!(
            forms(Type::TIMESTAMP, "2000-01-01 00:00:01.5"),
            Some((
                "2000-01-01 00:00:01.5".into(),
                1_500_000i64.to_be_bytes().to_vec()
            ))
        );
        assert_eq!(
            forms(Type::TIMESTAMPTZ, "2000-01-01 00:00:00+00").map(|f| f.1),
            Some(0i64.to_be_bytes().to_vec())
        );
        assert_eq!(
            forms(Type::TIME, "00:00:02").map(|f| f.1),
            Some(2_000_000i64.to_be_bytes().to_vec())
        );
        let u = forms(Type::UUID, "550E8400-E29B-41D4-A716-446655440000").expect("uuid");
        assert_eq!(u.0, "550e8400-e29b-41d4-a716-446655440000");
        assert_eq!(u.1[0], 0x55);
        assert_eq!(u.1.len(), 16);
        assert_eq!(
            forms(Type::JSONB, "{\"a\":1}").map(|f| f.1[0]),
            Some(1),
            "jsonb's version byte"
        );
    }

    #[test]
    fn literal_spellings_are_sent_canonically() {
        assert_eq!(
            forms(Type::TIMESTAMP, "2024-01-02T03:04:05").map(|f| f.0),
            Some("2024-01-02 03:04:05".into())
        );
        assert_eq!(
            forms(Type::DATE, "infinity").map(|f| f.0),
            Some("infinity".into())
        );
    }

    #[test]
    fn what_is_not_a_value_of_the_type_is_refused() {
        assert!(forms(Type::DATE, "yesterday-ish").is_none());
        assert!(forms(Type::UUID, "xyz").is_none());
        assert!(encode(&Type::DATE, &SqlValue::Integer(5)).is_none());
    }
}
