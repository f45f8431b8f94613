//! PostgreSQL's `interval` in statements: `INTERVAL '1 day'`,
//! `'2 hours'::interval`, and `timestamp ± interval` / `interval ±
//! interval`, as SQLite functions the translation calls
//! (`classify::interval`). An interval is months, days and microseconds,
//! as in PostgreSQL, so `'2024-01-31' + interval '1 month'` is
//! `2024-02-29 00:00:00`. Values print in PostgreSQL's default style
//! (`1 year 2 mons 3 days 04:05:06`).
//!
//! Interval columns are refused (0A000) rather than stored: SQLite would
//! do arithmetic on their text without a word, and the router does not
//! know a column's type where it rewrites an expression.

use chrono::{Duration, Months, NaiveDate, NaiveDateTime};
use rusqlite::Connection;
use rusqlite::functions::FunctionFlags;

/// The function `INTERVAL '…'` and `…::interval` become.
pub const PARSE: &str = "tributary_interval";
/// The function `a ± interval` becomes: `(a, interval, sign)`.
pub const ADD: &str = "tributary_interval_add";

/// An interval as PostgreSQL keeps it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Interval {
    pub months: i32,
    pub days: i32,
    pub micros: i64,
}

impl Interval {
    /// PostgreSQL's interval input: `[@] [+-]n unit …`, units from
    /// microseconds to millennia (fractions carried down, as PostgreSQL
    /// does), `[-]hh:mm[:ss[.f]]`, and a trailing `ago`.
    pub fn parse(text: &str) -> Option<Interval> {
        let mut out = Interval::default();
        let lower = text.trim().to_ascii_lowercase();
        let mut words: Vec<&str> = lower.split_whitespace().collect();
        if words.first() == Some(&"@") {
            words.remove(0);
        }
        let ago = words.last() == Some(&"ago");
        if ago {
            words.pop();
        }
        if words.is_empty() {
            return None;
        }
        let mut i = 0;
        while i < words.len() {
            let w = words[i];
            if w.contains(':') {
                out.micros = out.micros.checked_add(clock(w)?)?;
                i += 1;
                continue;
            }
            // A number, its unit either glued on (`3d`) or the next word.
            let split = w.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(w.len());
            let (number, glued) = w.split_at(split);
            let value: f64 = number.parse().ok()?;
            let unit = if glued.is_empty() {
                i += 1;
                *words.get(i)?
            } else {
                glued
            };
            out.add_unit(value, unit)?;
            i += 1;
        }
        if ago {
            out = out.negate();
        }
        Some(out)
    }

    fn add_unit(&mut self, value: f64, unit: &str) -> Option<()> {
        const DAY: f64 = 86_400_000_000.0;
        let unit = unit.trim_end_matches(',');
        let (months, days, micros): (f64, f64, f64) = match unit {
            "microsecond" | "microseconds" | "us" | "usec" | "usecs" => (0.0, 0.0, value),
            "millisecond" | "milliseconds" | "ms" | "msec" | "msecs" => (0.0, 0.0, value * 1e3),
            "second" | "seconds" | "s" | "sec" | "secs" => (0.0, 0.0, value * 1e6),
            "minute" | "minutes" | "m" | "min" | "mins" => (0.0, 0.0, value * 6e7),
            "hour" | "hours" | "h" | "hr" | "hrs" => (0.0, 0.0, value * 3.6e9),
            "day" | "days" | "d" => (0.0, value, 0.0),
            "week" | "weeks" | "w" => (0.0, value * 7.0, 0.0),
            "month" | "months" | "mon" | "mons" => (value, 0.0, 0.0),
            "year" | "years" | "y" | "yr" | "yrs" => (value * 12.0, 0.0, 0.0),
            "decade" | "decades" => (value * 120.0, 0.0, 0.0),
            "century" | "centuries" => (value * 1200.0, 0.0, 0.0),
            "millennium" | "millennia" => (value * 12000.0, 0.0, 0.0),
            _ => return None,
        };
        // Fractions carry down: a month is 30 days, a day 24 hours.
        let whole_months = months.trunc();
        let days = days + (months - whole_months) * 30.0;
        let whole_days = days.trunc();
        let micros = micros + (days - whole_days) * DAY;
        self.months = self.months.checked_add(to_i32(whole_months)?)?;
        self.days = self.days.checked_add(to_i32(whole_days)?)?;
        let micros = micros.round();
        if !micros.is_finite() || micros.abs() > 9.2e18 {
            return None;
        }
        self.micros = self.micros.checked_add(micros as i64)?;
        Some(())
    }

    fn negate(self) -> Interval {
        Interval {
            months: -self.months,
            days: -self.days,
            micros: -self.micros,
        }
    }

    fn plus(self, other: Interval) -> Option<Interval> {
        Some(Interval {
            months: self.months.checked_add(other.months)?,
            days: self.days.checked_add(other.days)?,
            micros: self.micros.checked_add(other.micros)?,
        })
    }

    /// PostgreSQL's output (IntervalStyle `postgres`).
    pub fn format(&self) -> String {
        let mut parts = Vec::new();
        let (years, months) = (self.months / 12, self.months % 12);
        let plural = |n: i32, one: &str, many: &str| {
            format!("{n} {}", if n == 1 || n == -1 { one } else { many })
        };
        if years != 0 {
            parts.push(plural(years, "year", "years"));
        }
        if months != 0 {
            parts.push(plural(months, "mon", "mons"));
        }
        if self.days != 0 {
            parts.push(plural(self.days, "day", "days"));
        }
        if self.micros != 0 || parts.is_empty() {
            let sign = if self.micros < 0 { "-" } else { "" };
            let m = self.micros.unsigned_abs();
            let (secs, frac) = (m / 1_000_000, m % 1_000_000);
            let mut clock = format!(
                "{sign}{:02}:{:02}:{:02}",
                secs / 3600,
                secs / 60 % 60,
                secs % 60
            );
            if frac != 0 {
                let f = format!("{frac:06}");
                clock.push('.');
                clock.push_str(f.trim_end_matches('0'));
            }
            parts.push(clock);
        }
        parts.join(" ")
    }

    /// PostgreSQL's binary form: microseconds, days, months.
    pub fn binary(&self) -> Vec<u8> {
        let mut out = self.micros.to_be_bytes().to_vec();
        out.extend_from_slice(&self.days.to_be_bytes());
        out.extend_from_slice(&self.months.to_be_bytes());
        out
    }
}

fn to_i32(v: f64) -> Option<i32> {
    (v.is_finite() && v.abs() <= f64::from(i32::MAX)).then_some(v as i32)
}

/// `[-]hh:mm[:ss[.f]]` in microseconds.
fn clock(w: &str) -> Option<i64> {
    let (negative, w) = match w.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, w.strip_prefix('+').unwrap_or(w)),
    };
    let mut parts = w.split(':');
    let h: i64 = parts.next()?.parse().ok()?;
    let m: i64 = parts.next()?.parse().ok()?;
    let s: f64 = match parts.next() {
        Some(s) => s.parse().ok()?,
        None => 0.0,
    };
    if parts.next().is_some() || !(0..60).contains(&m) || !(0.0..60.0).contains(&s) {
        return None;
    }
    let micros =
        h.checked_mul(3_600_000_000)?.checked_add(m * 60_000_000)? + (s * 1e6).round() as i64;
    Some(if negative { -micros } else { micros })
}

/// `value ± interval`: a timestamp (with or without `+00`) or a date
/// shifted, as PostgreSQL shifts it (months first, then days, then time);
/// an interval added to. `None` when `value` is neither.
pub fn add(value: &str, interval: Interval, sign: i64) -> Option<String> {
    let interval = if sign < 0 {
        interval.negate()
    } else {
        interval
    };
    if let Some(base) = Interval::parse(value) {
        return base.plus(interval).map(|i| i.format());
    }
    let (text, zone) = match value.strip_suffix("+00") {
        Some(t) => (t, "+00"),
        None => (value, ""),
    };
    let ts = NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f")
        .ok()
        .or_else(|| {
            NaiveDate::parse_from_str(text, "%Y-%m-%d")
                .ok()
                .and_then(|d| d.and_hms_opt(0, 0, 0))
        })?;
    let months = Months::new(interval.months.unsigned_abs());
    let ts = if interval.months >= 0 {
        ts.checked_add_months(months)?
    } else {
        ts.checked_sub_months(months)?
    };
    let ts = ts
        .checked_add_signed(Duration::days(i64::from(interval.days)))?
        .checked_add_signed(Duration::microseconds(interval.micros))?;
    let mut out = ts.format("%Y-%m-%d %H:%M:%S%.6f").to_string();
    // PostgreSQL prints no trailing zeros, and no fraction when whole.
    while out.ends_with('0') && out.contains('.') {
        out.pop();
    }
    if out.ends_with('.') {
        out.pop();
    }
    out.push_str(zone);
    Some(out)
}

/// Registers the two functions on a router connection.
pub fn register(conn: &Connection) -> rusqlite::Result<()> {
    let flags = FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC;
    let invalid = |what: &str, text: &str| {
        rusqlite::Error::UserFunctionError(
            format!("SQLSTATE 22007: invalid input syntax for type {what}: \"{text}\"").into(),
        )
    };
    conn.create_scalar_function(PARSE, 1, flags, move |ctx| {
        let text: Option<String> = ctx.get(0)?;
        text.map(|t| {
            Interval::parse(&t)
                .map(|i| i.format())
                .ok_or_else(|| invalid("interval", &t))
        })
        .transpose()
    })?;
    conn.create_scalar_function(ADD, 3, flags, move |ctx| {
        let value: Option<String> = ctx.get(0)?;
        let interval: Option<String> = ctx.get(1)?;
        let sign: i64 = ctx.get(2)?;
        let (Some(value), Some(interval)) = (value, interval) else {
            return Ok(None);
        };
        let iv = Interval::parse(&interval).ok_or_else(|| invalid("interval", &interval))?;
        add(&value, iv, sign).map(Some).ok_or_else(|| {
            rusqlite::Error::UserFunctionError(
                format!(
                    "SQLSTATE 42883: operator does not exist: \"{value}\" {} interval (a timestamp, date or interval is needed)",
                    if sign < 0 { "-" } else { "+" }
                )
                .into(),
            )
        })
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canon(text: &str) -> Option<String> {
        Interval::parse(text).map(|i| i.format())
    }

    #[test]
    fn input_and_output_as_postgresql() {
        assert_eq!(canon("1 day").as_deref(), Some("1 day"));
        assert_eq!(canon("2 hours 30 minutes").as_deref(), Some("02:30:00"));
        assert_eq!(
            canon("1 year 2 months 3 days 04:05:06.5").as_deref(),
            Some("1 year 2 mons 3 days 04:05:06.5")
        );
        assert_eq!(canon("1.5 months").as_deref(), Some("1 mon 15 days"));
        assert_eq!(canon("@ 3 days ago").as_deref(), Some("-3 days"));
        assert_eq!(canon("-01:00").as_deref(), Some("-01:00:00"));
        assert_eq!(canon("10d").as_deref(), Some("10 days"));
        assert_eq!(canon("0 seconds").as_deref(), Some("00:00:00"));
        assert_eq!(canon("1 fortnight"), None);
        assert_eq!(canon(""), None);
        assert_eq!(
            Interval::parse("1 day").map(|i| i.binary()[8..12].to_vec()),
            Some(1i32.to_be_bytes().to_vec())
        );
    }

    #[test]
    fn timestamps_shift_as_in_postgresql() {
        let iv = |t: &str| Interval::parse(t).expect("interval");
        assert_eq!(
            add("2024-01-31", iv("1 month"), 1).as_deref(),
            Some("2024-02-29 00:00:00")
        );
        assert_eq!(
            add("2024-03-01 10:00:00.25+00", iv("1 day 2 hours"), -1).as_deref(),
            Some("2024-02-29 08:00:00.25+00"),
            "2024 is a leap year"
        );
        assert_eq!(
            add("1 day", iv("2 hours"), 1).as_deref(),
            Some("1 day 02:00:00")
        );
        assert_eq!(add("hello", iv("1 day"), 1), None);
    }
}
