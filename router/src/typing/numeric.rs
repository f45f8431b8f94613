//! `numeric` results in PostgreSQL's text and binary forms. A NUMERIC
//! column's SQLite affinity stores a well-formed number as INTEGER or REAL
//! (docs/types.md), so a stored value is read back as decimal text first;
//! one that is no number is an error naming it, never a guess.

use rusqlite::types::Value as SqlValue;

use super::wire::Wire;

/// A value stored in a NUMERIC column, in both forms; with the column's
/// scale, printed with that many decimals.
pub fn encode(v: &SqlValue, scale: Option<u32>) -> Option<Wire> {
    let text = match v {
        SqlValue::Integer(i) => i.to_string(),
        // Rust prints the shortest text that reads back as the same
        // double, and never in exponent form.
        SqlValue::Real(f) if f.is_finite() => f.to_string(),
        SqlValue::Text(t) => crate::params::numeric_text(t)?,
        _ => return None,
    };
    let text = match scale {
        Some(s) => rescale(&text, s).unwrap_or(text),
        None => text,
    };
    let binary = binary(&text)?;
    Some(Wire { text, binary })
}

/// The precision and scale a declared type gives (`NUMERIC(10,2)` → 10, 2;
/// `DECIMAL(5)` → 5, 0); none for a plain `NUMERIC`.
pub fn precision_of(decl: &str) -> Option<(u32, u32)> {
    let upper = decl.to_ascii_uppercase();
    let (base, args) = upper.split_once('(')?;
    if !matches!(base.trim(), "NUMERIC" | "DECIMAL") {
        return None;
    }
    let mut nums = args
        .trim_end_matches(')')
        .split(',')
        .map(|a| a.trim().parse::<u32>());
    let p = nums.next()?.ok()?;
    let s = match nums.next() {
        Some(s) => s.ok()?,
        None => 0,
    };
    (s <= p).then_some((p, s))
}

/// A decimal text (as `params::numeric_text` spells it) rounded half away
/// from zero to `scale` decimals, as PostgreSQL rounds into `numeric(p,s)`.
pub fn rescale(text: &str, scale: u32) -> Option<String> {
    if matches!(text, "NaN" | "Infinity" | "-Infinity") {
        return Some(text.to_owned());
    }
    let (negative, unsigned) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (int, frac) = unsigned.split_once('.').unwrap_or((unsigned, ""));
    let scale = scale as usize;
    let mut digits: Vec<u8> = int.bytes().chain(frac.bytes().take(scale)).collect();
    digits.extend(std::iter::repeat_n(b'0', scale.saturating_sub(frac.len())));
    if !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    if frac.as_bytes().get(scale).is_some_and(|d| *d >= b'5') {
        // Carry the rounding up through the digits.
        let mut i = digits.len();
        loop {
            if i == 0 {
                digits.insert(0, b'1');
                break;
            }
            i -= 1;
            if digits[i] == b'9' {
                digits[i] = b'0';
            } else {
                digits[i] += 1;
                break;
            }
        }
    }
    let split = digits.len() - scale;
    let int_part = std::str::from_utf8(&digits[..split])
        .ok()?
        .trim_start_matches('0');
    let int_part = if int_part.is_empty() { "0" } else { int_part };
    let frac_part = std::str::from_utf8(&digits[split..]).ok()?;
    let zero = int_part == "0" && frac_part.bytes().all(|d| d == b'0');
    let sign = if negative && !zero { "-" } else { "" };
    Some(if scale == 0 {
        format!("{sign}{int_part}")
    } else {
        format!("{sign}{int_part}.{frac_part}")
    })
}

/// PostgreSQL's binary numeric for a decimal text as `params::numeric_text`
/// spells it: ndigits, weight, sign, dscale, then base-10000 digits (the
/// inverse of the parameter decoder).
pub(super) fn binary(text: &str) -> Option<Vec<u8>> {
    let special = |sign: u16| {
        let mut out = vec![0, 0, 0, 0];
        out.extend_from_slice(&sign.to_be_bytes());
        out.extend_from_slice(&[0, 0]);
        out
    };
    match text {
        "NaN" => return Some(special(0xC000)),
        "Infinity" => return Some(special(0xD000)),
        "-Infinity" => return Some(special(0xF000)),
        _ => {}
    }
    let (negative, unsigned) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (int, frac) = unsigned.split_once('.').unwrap_or((unsigned, ""));
    let digits_only = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if (int.is_empty() && frac.is_empty()) || !digits_only(int) || !digits_only(frac) {
        return None;
    }
    let dscale = u16::try_from(frac.len()).ok()?;
    let int = int.trim_start_matches('0');
    let pad_left = (4 - int.len() % 4) % 4;
    let pad_right = (4 - frac.len() % 4) % 4;
    let padded = format!(
        "{}{int}{frac}{}",
        "0".repeat(pad_left),
        "0".repeat(pad_right)
    );
    let groups: Vec<i16> = padded
        .as_bytes()
        .chunks(4)
        .map(|c| c.iter().fold(0i16, |acc, d| acc * 10 + i16::from(d - b'0')))
        .collect();
    // Groups before the point: the first has weight `int_groups - 1`.
    let int_groups = i64::try_from((pad_left + int.len()) / 4).ok()?;
    let (kept, weight) = match (
        groups.iter().position(|g| *g != 0),
        groups.iter().rposition(|g| *g != 0),
    ) {
        (Some(first), Some(last)) => (
            &groups[first..=last],
            int_groups - 1 - i64::try_from(first).ok()?,
        ),
        _ => (&groups[..0], 0),
    };
    let sign: u16 = if negative && !kept.is_empty() {
        0x4000
    } else {
        0
    };
    let mut out = Vec::with_capacity(8 + 2 * kept.len());
    out.extend_from_slice(&i16::try_from(kept.len()).ok()?.to_be_bytes());
    out.extend_from_slice(&i16::try_from(weight).ok()?.to_be_bytes());
    out.extend_from_slice(&sign.to_be_bytes());
    out.extend_from_slice(&dscale.to_be_bytes());
    for g in kept {
        out.extend_from_slice(&g.to_be_bytes());
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn binary_form_is_postgresqls() {
        // 12.340: one group before the point (12), one after (3400).
        assert_eq!(
            binary("12.340"),
            Some(vec![0, 2, 0, 0, 0, 0, 0, 3, 0, 12, 0x0D, 0x48])
        );
        // 0.0001: weight -1, one group.
        assert_eq!(
            binary("0.0001"),
            Some(vec![0, 1, 0xFF, 0xFF, 0, 0, 0, 4, 0, 1])
        );
        assert_eq!(binary("0"), Some(vec![0, 0, 0, 0, 0, 0, 0, 0]));
        assert_eq!(binary("-10000").map(|b| b[4]), Some(0x40));
        assert_eq!(binary("1.2.3"), None);
    }

    #[test]
    fn scales_round_half_away_from_zero() {
        assert_eq!(rescale("1.005", 2).as_deref(), Some("1.01"));
        assert_eq!(rescale("-1.005", 2).as_deref(), Some("-1.01"));
        assert_eq!(rescale("9.995", 2).as_deref(), Some("10.00"));
        assert_eq!(rescale("0.1", 2).as_deref(), Some("0.10"));
        assert_eq!(rescale("12", 0).as_deref(), Some("12"));
        assert_eq!(rescale("-0.001", 2).as_deref(), Some("0.00"));
        assert_eq!(precision_of("numeric(10, 2)"), Some((10, 2)));
        assert_eq!(precision_of("DECIMAL(5)"), Some((5, 0)));
        assert_eq!(precision_of("NUMERIC"), None);
        assert_eq!(
            encode(&SqlValue::Real(0.1), Some(2))
                .map(|w| w.text)
                .as_deref(),
            Some("0.10")
        );
    }

    #[test]
    fn stored_numbers_are_sent_as_their_digits() {
        let text = |v: SqlValue| encode(&v, None).map(|w| w.text);
        assert_eq!(text(SqlValue::Real(0.1)), Some("0.1".into()));
        assert_eq!(text(SqlValue::Integer(-7)), Some("-7".into()));
        assert_eq!(text(SqlValue::Text("1.50".into())), Some("1.50".into()));
        assert_eq!(text(SqlValue::Text("abc".into())), None);
        assert_eq!(text(SqlValue::Real(f64::INFINITY)), None);
    }

    proptest! {
        #[test]
        fn binary_reads_back_as_the_same_digits(
            int in "[0-9]{0,30}", frac in "[0-9]{0,30}", neg: bool
        ) {
            prop_assume!(!int.is_empty() || !frac.is_empty());
            let raw = format!("{}{int}{}{frac}", if neg { "-" } else { "" },
                if frac.is_empty() { "" } else { "." });
            let canonical = crate::params::numeric_text(&raw).expect("a decimal");
            let b = binary(&canonical).expect("encodes");
            prop_assert_eq!(crate::params::numeric_binary(&b), Some(canonical));
        }
    }
}
