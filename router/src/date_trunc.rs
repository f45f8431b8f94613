//! PostgreSQL's `date_trunc(field, timestamp)` as a SQLite function over
//! the router's timestamp text (`YYYY-MM-DD HH:MM:SS[.ffffff][+00]`, or a
//! date): the value truncated to the field, printed as PostgreSQL prints
//! it (no trailing fractional zeros; `+00` kept when given). Weeks start
//! on Monday (ISO), as in PostgreSQL. An unknown field is 22023.

use chrono::{Datelike, NaiveDate, NaiveDateTime, Timelike};
use rusqlite::Connection;
use rusqlite::functions::FunctionFlags;

fn truncate(field: &str, ts: NaiveDateTime) -> Option<NaiveDateTime> {
    let date = ts.date();
    let day = |d: NaiveDate| d.and_hms_opt(0, 0, 0);
    let year_start = |y: i32| NaiveDate::from_ymd_opt(y, 1, 1).and_then(day);
    // Year y of decade/century/millennium k starts at floor-division in
    // PostgreSQL's numbering (centuries and millennia start at year 1).
    let y = date.year();
    match field {
        "microseconds" => Some(ts),
        "milliseconds" => ts.with_nanosecond(ts.nanosecond() / 1_000_000 * 1_000_000),
        "second" => ts.with_nanosecond(0),
        "minute" => ts.with_nanosecond(0)?.with_second(0),
        "hour" => ts.with_nanosecond(0)?.with_second(0)?.with_minute(0),
        "day" => day(date),
        "week" => {
            day(date - chrono::Duration::days(i64::from(date.weekday().num_days_from_monday())))
        }
        "month" => NaiveDate::from_ymd_opt(y, date.month(), 1).and_then(day),
        "quarter" => NaiveDate::from_ymd_opt(y, (date.month() - 1) / 3 * 3 + 1, 1).and_then(day),
        "year" => year_start(y),
        "decade" => year_start(y.div_euclid(10) * 10),
        "century" => year_start((y - 1).div_euclid(100) * 100 + 1),
        "millennium" => year_start((y - 1).div_euclid(1000) * 1000 + 1),
        _ => None,
    }
}

const FIELDS: &str = "microseconds, milliseconds, second, minute, hour, day, week, month, quarter, year, decade, century, millennium";

fn date_trunc(field: &str, value: &str) -> Result<Option<String>, String> {
    let field = field.trim().to_ascii_lowercase();
    let (text, zone) = match value.strip_suffix("+00") {
        Some(t) => (t, "+00"),
        None => (value, ""),
    };
    let Some(ts) = NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f")
        .ok()
        .or_else(|| {
            NaiveDate::parse_from_str(text, "%Y-%m-%d")
                .ok()
                .and_then(|d| d.and_hms_opt(0, 0, 0))
        })
    else {
        return Err(format!(
            "SQLSTATE 22007: invalid input syntax for type timestamp: \"{value}\""
        ));
    };
    let Some(out) = truncate(&field, ts) else {
        return Err(format!(
            "SQLSTATE 22023: unit \"{field}\" not recognized for type timestamp (units: {FIELDS})"
        ));
    };
    let mut text = out.format("%Y-%m-%d %H:%M:%S%.6f").to_string();
    while text.ends_with('0') && text.contains('.') {
        text.pop();
    }
    if text.ends_with('.') {
        text.pop();
    }
    text.push_str(zone);
    Ok(Some(text))
}

pub fn register(conn: &Connection) -> rusqlite::Result<()> {
    conn.create_scalar_function(
        "date_trunc",
        2,
        FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC,
        |ctx| {
            let field: Option<String> = ctx.get(0)?;
            let value: Option<String> = ctx.get(1)?;
            match (field, value) {
                (Some(f), Some(v)) => {
                    date_trunc(&f, &v).map_err(|e| rusqlite::Error::UserFunctionError(e.into()))
                }
                _ => Ok(None),
            }
        },
    )
}

#[cfg(test)]
mod tests {
    use super::date_trunc;

    #[test]
    fn truncates_as_postgresql_does() {
        // Checked against PostgreSQL 15 (TimeZone UTC).
        let ts = "2026-11-23 01:42:52.495938+00";
        let t = |f: &str| date_trunc(f, ts).expect("ok").expect("some");
        assert_eq!(t("microseconds"), ts);
        assert_eq!(t("milliseconds"), "2026-11-23 01:42:52.495+00");
        assert_eq!(t("second"), "2026-11-23 01:42:52+00");
        assert_eq!(t("minute"), "2026-11-23 01:42:00+00");
        assert_eq!(t("HOUR"), "2026-11-23 01:00:00+00");
        assert_eq!(t("day"), "2026-11-23 00:00:00+00");
        assert_eq!(t("week"), "2026-11-23 00:00:00+00");
        assert_eq!(t("month"), "2026-11-01 00:00:00+00");
        assert_eq!(t("quarter"), "2026-10-01 00:00:00+00");
        assert_eq!(t("year"), "2026-01-01 00:00:00+00");
        assert_eq!(t("decade"), "2020-01-01 00:00:00+00");
        assert_eq!(t("century"), "2001-01-01 00:00:00+00");
        assert_eq!(t("millennium"), "2001-01-01 00:00:00+00");
        assert_eq!(
            date_trunc("week", "2026-11-29 23:59:59")
                .expect("ok")
                .as_deref(),
            Some("2026-11-23 00:00:00")
        );
        assert_eq!(
            date_trunc("month", "2026-02-15").expect("ok").as_deref(),
            Some("2026-02-01 00:00:00")
        );
        assert!(
            date_trunc("fortnight", ts)
                .expect_err("unknown unit")
                .contains("22023")
        );
        assert!(
            date_trunc("day", "nope")
                .expect_err("bad timestamp")
                .contains("22007")
        );
    }
}
