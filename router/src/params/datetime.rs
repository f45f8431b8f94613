//! Dates and times in both formats: PostgreSQL's binary (days and
//! microseconds since 2000-01-01) and its text input forms, rendered as
//! the ISO text Tributary stores (timestamptz in UTC, `+00`).

use chrono::{DateTime, Duration, NaiveDate, NaiveDateTime, NaiveTime, Timelike};

use super::{R, Refusal, refuse};

pub(super) fn pg_epoch() -> NaiveDateTime {
    NaiveDate::from_ymd_opt(2000, 1, 1)
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .unwrap_or_default()
}

pub(super) fn datetime_refusal(what: &str, text: &str) -> Refusal {
    refuse(
        "22007",
        format!(
            "invalid input syntax for type {what}: \"{text}\" (send ISO 8601, e.g. 2024-01-02 03:04:05.678+00, or binary)"
        ),
    )
}

pub(super) fn render_date(d: NaiveDate) -> String {
    use chrono::Datelike;
    if d.year() <= 0 {
        format!("{:04}-{:02}-{:02} BC", 1 - d.year(), d.month(), d.day())
    } else {
        format!("{:04}-{:02}-{:02}", d.year(), d.month(), d.day())
    }
}

pub(super) fn render_time(t: NaiveTime) -> String {
    let micros = t.nanosecond() / 1000;
    let base = format!("{:02}:{:02}:{:02}", t.hour(), t.minute(), t.second());
    if micros == 0 {
        base
    } else {
        let frac = format!("{micros:06}");
        format!("{base}.{}", frac.trim_end_matches('0'))
    }
}

pub(super) fn render_timestamp(ts: NaiveDateTime, zone: &str) -> String {
    format!(
        "{} {}{zone}",
        render_date(ts.date()),
        render_time(ts.time())
    )
}

pub(super) fn date_days(days: i32) -> R<String> {
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

pub(super) fn time_micros(us: i64) -> R<String> {
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

pub(super) fn timestamp_micros(us: i64, zone: &str) -> R<String> {
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

pub(super) fn special(t: &str) -> Option<String> {
    match t.to_ascii_lowercase().as_str() {
        "infinity" | "+infinity" => Some("infinity".into()),
        "-infinity" => Some("-infinity".into()),
        _ => None,
    }
}

pub(super) fn bc(t: &str) -> (&str, bool) {
    match t.strip_suffix(" BC").or_else(|| t.strip_suffix(" bc")) {
        Some(rest) => (rest, true),
        None => (t, false),
    }
}

pub(super) fn to_bc(d: NaiveDate) -> Option<NaiveDate> {
    use chrono::Datelike;
    d.with_year(1 - d.year())
}

pub(super) fn date_text(t: &str) -> R<String> {
    if let Some(s) = special(t) {
        return Ok(s);
    }
    let (body, is_bc) = bc(t);
    let d = NaiveDate::parse_from_str(body, "%Y-%m-%d")
        .ok()
        .and_then(|d| if is_bc { to_bc(d) } else { Some(d) })
        // A timestamp's date, as PostgreSQL's date input takes it.
        .or_else(|| parse_naive(without_zone(t)).map(|ts| ts.date()))
        .ok_or_else(|| datetime_refusal("date", t))?;
    Ok(render_date(d))
}

pub(super) fn parse_time(t: &str) -> Option<NaiveTime> {
    NaiveTime::parse_from_str(t, "%H:%M:%S%.f")
        .or_else(|_| NaiveTime::parse_from_str(t, "%H:%M"))
        .ok()
}

pub(super) fn time_text(t: &str) -> R<String> {
    if t == "24:00:00" || t == "24:00" {
        return Ok("24:00:00".into());
    }
    parse_time(t)
        .or_else(|| parse_time(without_zone(t)))
        // A timestamp's time of day, as PostgreSQL's time input takes it.
        .or_else(|| parse_naive(without_zone(t)).map(|ts| ts.time()))
        .map(render_time)
        .ok_or_else(|| datetime_refusal("time", t))
}

pub(super) fn parse_naive(t: &str) -> Option<NaiveDateTime> {
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

/// `t` without a trailing time zone (`Z`, `+05`, `-03:30` after the time):
/// PostgreSQL's input for timestamp, date and time ignores one (so `now()`,
/// a timestamptz, can be written to a timestamp or date column).
fn without_zone(t: &str) -> &str {
    let (body, _) = bc(t);
    if body.len() != t.len() {
        return t;
    }
    if let Some(rest) = t.strip_suffix(['Z', 'z']) {
        return rest.trim_end();
    }
    match t
        .rfind(['+', '-'])
        .filter(|&i| i > 10 || (i >= 5 && !t[..i].contains('-')))
    {
        Some(i) if t[i + 1..].chars().all(|c| c.is_ascii_digit() || c == ':') => t[..i].trim_end(),
        _ => t,
    }
}

pub(super) fn timestamp_text(t: &str) -> R<String> {
    if let Some(s) = special(t) {
        return Ok(s);
    }
    parse_naive(t)
        .or_else(|| parse_naive(without_zone(t)))
        .map(|ts| render_timestamp(ts, ""))
        .ok_or_else(|| datetime_refusal("timestamp", t))
}

pub(super) fn timestamptz_text(t: &str) -> R<String> {
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
