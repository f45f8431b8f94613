//! PostgreSQL's `date_trunc(field, timestamp)` and `date_part(field,
//! timestamp)` (which `EXTRACT(field FROM x)` becomes, see
//! `classify::sql_functions`) as SQLite functions over the router's
//! timestamp text (`YYYY-MM-DD HH:MM:SS[.ffffff][+00]`, or a date).
//! `date_trunc` prints the truncated value as PostgreSQL prints it (no
//! trailing fractional zeros; `+00` kept when given); weeks start on
//! Monday (ISO). `date_part` gives a whole number as an integer, seconds
//! and epochs with their fraction; `epoch` of an interval is its seconds.
//! An unknown field is 22023.

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

/// A timestamp or date in the router's text, and its `+00` if any.
fn parse(value: &str) -> Result<(NaiveDateTime, &'static str), String> {
    let (text, zone) = match value.strip_suffix("+00") {
        Some(t) => (t, "+00"),
        None => (value, ""),
    };
    NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f")
        .ok()
        .or_else(|| {
            NaiveDate::parse_from_str(text, "%Y-%m-%d")
                .ok()
                .and_then(|d| d.and_hms_opt(0, 0, 0))
        })
        .map(|ts| (ts, zone))
        .ok_or_else(|| {
            format!("SQLSTATE 22007: invalid input syntax for type timestamp: \"{value}\"")
        })
}

/// A number as `date_part` returns it.
#[derive(Debug, PartialEq)]
enum Part {
    Int(i64),
    Real(f64),
}

fn date_part(field: &str, value: &str) -> Result<Part, String> {
    let field = field.trim().to_ascii_lowercase();
    if let Some(iv) = crate::interval::Interval::parse(value)
        && field == "epoch"
    {
        let secs = iv.micros as f64 / 1e6
            + f64::from(iv.days) * 86_400.0
            + f64::from(iv.months) * 30.0 * 86_400.0;
        return Ok(whole(secs));
    }
    let (ts, _) = parse(value)?;
    let d = ts.date();
    let micros_in_minute = i64::from(ts.second()) * 1_000_000 + i64::from(ts.nanosecond() / 1_000);
    let y = d.year();
    Ok(match field.as_str() {
        "year" | "years" => Part::Int(i64::from(y)),
        "isoyear" => Part::Int(i64::from(d.iso_week().year())),
        "quarter" => Part::Int(i64::from((d.month() - 1) / 3 + 1)),
        "month" | "months" => Part::Int(i64::from(d.month())),
        "week" => Part::Int(i64::from(d.iso_week().week())),
        "day" | "days" => Part::Int(i64::from(d.day())),
        "doy" => Part::Int(i64::from(d.ordinal())),
        "dow" => Part::Int(i64::from(d.weekday().num_days_from_sunday())),
        "isodow" => Part::Int(i64::from(d.weekday().number_from_monday())),
        "hour" | "hours" => Part::Int(i64::from(ts.hour())),
        "minute" | "minutes" => Part::Int(i64::from(ts.minute())),
        "second" | "seconds" => whole(micros_in_minute as f64 / 1e6),
        "milliseconds" => whole(micros_in_minute as f64 / 1e3),
        "microseconds" => Part::Int(micros_in_minute),
        "epoch" => whole(ts.and_utc().timestamp_micros() as f64 / 1e6),
        "decade" => Part::Int(i64::from(y.div_euclid(10))),
        "century" => Part::Int(i64::from(if y > 0 {
            (y + 99) / 100
        } else {
            -((99 - y) / 100)
        })),
        "millennium" => Part::Int(i64::from(if y > 0 {
            (y + 999) / 1000
        } else {
            -((999 - y) / 1000)
        })),
        "timezone" | "timezone_hour" | "timezone_minute" => Part::Int(0),
        _ => {
            return Err(format!(
                "SQLSTATE 22023: unit \"{field}\" not recognized for type timestamp (units: {PARTS})"
            ));
        }
    })
}

const PARTS: &str = "year, isoyear, quarter, month, week, day, doy, dow, isodow, hour, minute, second, milliseconds, microseconds, epoch, decade, century, millennium, timezone";

fn whole(x: f64) -> Part {
    if x.fract() == 0.0 && x.abs() < 9e15 {
        Part::Int(x as i64)
    } else {
        Part::Real(x)
    }
}

fn date_trunc(field: &str, value: &str) -> Result<Option<String>, String> {
    let field = field.trim().to_ascii_lowercase();
    let (ts, zone) = parse(value)?;
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
        "date_part",
        2,
        FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC,
        |ctx| {
            let field: Option<String> = ctx.get(0)?;
            let value: Option<String> = ctx.get(1)?;
            let (Some(f), Some(v)) = (field, value) else {
                return Ok(rusqlite::types::Value::Null);
            };
            match date_part(&f, &v) {
                Ok(Part::Int(i)) => Ok(rusqlite::types::Value::Integer(i)),
                Ok(Part::Real(x)) => Ok(rusqlite::types::Value::Real(x)),
                Err(e) => Err(rusqlite::Error::UserFunctionError(e.into())),
            }
        },
    )?;
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
    use super::{Part, date_part, date_trunc};

    #[test]
    fn parts_are_as_postgresql_gives_them() {
        // Checked against PostgreSQL 15 (TimeZone UTC).
        let ts = "2026-11-23 01:42:52.495938+00";
        let p = |f: &str| date_part(f, ts).expect("ok");
        assert_eq!(p("year"), Part::Int(2026));
        assert_eq!(p("quarter"), Part::Int(4));
        assert_eq!(p("month"), Part::Int(11));
        assert_eq!(p("week"), Part::Int(48));
        assert_eq!(p("day"), Part::Int(23));
        assert_eq!(p("doy"), Part::Int(327));
        assert_eq!(p("dow"), Part::Int(1));
        assert_eq!(p("isodow"), Part::Int(1));
        assert_eq!(p("hour"), Part::Int(1));
        assert_eq!(p("minute"), Part::Int(42));
        assert_eq!(p("second"), Part::Real(52.495938));
        assert_eq!(p("microseconds"), Part::Int(52_495_938));
        assert_eq!(p("epoch"), Part::Real(1_795_398_172.495938));
        assert_eq!(p("century"), Part::Int(21));
        assert_eq!(p("decade"), Part::Int(202));
        assert_eq!(date_part("dow", "1990-05-06").expect("ok"), Part::Int(0));
        assert_eq!(
            date_part("epoch", "1 day 02:00:00").expect("ok"),
            Part::Int(93_600)
        );
        assert!(
            date_part("fortnight", ts)
                .expect_err("unknown")
                .contains("22023")
        );
    }

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
