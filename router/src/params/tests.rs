//! Bind-parameter decoding: one value, both formats, one stored form.

use chrono::NaiveDate;
use pgwire::api::Type;
use rusqlite::types::Value as SqlValue;

use super::datetime::pg_epoch;
use super::{decode, numeric_binary, numeric_text};

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
    let days =
        (NaiveDate::from_ymd_opt(2024, 1, 2).expect("date") - pg_epoch().date()).num_days() as i32;
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
        0x55u8, 0x0e, 0x84, 0x00, 0xe2, 0x9b, 0x41, 0xd4, 0xa7, 0x16, 0x44, 0x66, 0x55, 0x44, 0, 0,
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

#[test]
fn date_and_time_input_ignores_a_zone_as_postgresql_does() {
    // now() is a timestamptz; written to a timestamp, date or time column.
    let now = "2026-11-22 12:33:25.176373+00";
    assert_eq!(text(Type::TIMESTAMP, now), t("2026-11-22 12:33:25.176373"));
    assert_eq!(text(Type::DATE, now), t("2026-11-22"));
    assert_eq!(text(Type::TIME, now), t("12:33:25.176373"));
    assert_eq!(
        text(Type::TIMESTAMP, "2024-01-02T03:04:05-03:30"),
        t("2024-01-02 03:04:05")
    );
    assert_eq!(text(Type::TIME, "03:04:05+02"), t("03:04:05"));
    assert_eq!(text(Type::DATE, "2024-01-02"), t("2024-01-02"));
    assert_eq!(text(Type::TIMESTAMP, "2024-01-02 03:04:05 nope"), None);
}

#[test]
fn numerics_sqlite_would_round_are_refused() {
    use super::numeric_is_exact;
    for ok in [
        "0",
        "12.340",
        "-0.0015",
        "9223372036854775807",
        "0.30000000000000004",
        "NaN",
    ] {
        assert!(numeric_is_exact(ok), "{ok}");
    }
    for bad in [
        "12345678901234567.89",
        "99999999999999999999",
        "0.12345678901234567891",
    ] {
        assert!(!numeric_is_exact(bad), "{bad}");
    }
    let refused = decode(0, &Type::NUMERIC, false, Some(b"12345678901234567.89"));
    assert!(
        matches!(refused, Err(ref e) if e.sqlstate() == "0A000"),
        "{refused:?}"
    );
}

proptest::proptest! {
    /// Up to 15 significant digits a double always holds the decimal, so
    /// such a numeric is never refused; and every double's own shortest
    /// form is accepted.
    #[test]
    fn fifteen_digits_are_always_exact(digits in 0u64..1_000_000_000_000_000, scale in 0usize..20, neg: bool) {
        let mut t = digits.to_string();
        if scale > 0 {
            if t.len() <= scale {
                t = format!("{}{t}", "0".repeat(scale + 1 - t.len()));
            }
            t.insert(t.len() - scale, '.');
        }
        if neg {
            t.insert(0, '-');
        }
        let canonical = numeric_text(&t).unwrap_or_default();
        proptest::prop_assert!(super::numeric_is_exact(&canonical), "{canonical}");
    }

    #[test]
    fn a_doubles_shortest_form_is_exact(f in proptest::num::f64::NORMAL) {
        let canonical = numeric_text(&f.to_string()).unwrap_or_default();
        proptest::prop_assert!(super::numeric_is_exact(&canonical), "{canonical}");
    }
}
