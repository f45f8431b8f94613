//! PostgreSQL string functions SQLite lacks, as SQLite user functions on
//! every router connection: `repeat`, `lpad`, `rpad`, `left`, `right`,
//! `split_part`, `strpos`, `md5`. Lengths and positions count characters, as in
//! PostgreSQL with UTF-8; a NULL argument gives NULL. Functions that build
//! strings refuse results over 1 GB (54000, PostgreSQL's own limit) instead
//! of exhausting memory.

use rusqlite::functions::{Context, FunctionFlags};
use rusqlite::{Connection, Error as SqlError};

/// PostgreSQL's largest field value.
const MAX_BYTES: usize = (1 << 30) - 1;

fn fail(state: &str, msg: String) -> SqlError {
    SqlError::UserFunctionError(format!("SQLSTATE {state}: {msg}").into())
}

fn too_long(bytes: usize) -> SqlError {
    fail(
        "54000",
        format!("requested length too large ({bytes} bytes, the limit is {MAX_BYTES})"),
    )
}

type TextResult = rusqlite::Result<Option<String>>;

fn register_fn(
    conn: &Connection,
    name: &str,
    args: i32,
    f: impl Fn(&Context<'_>) -> TextResult + Send + 'static,
) -> rusqlite::Result<()> {
    let flags = FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC;
    conn.create_scalar_function(name, args, flags, f)
}

/// Argument `i` as text and integer, `None` for NULL.
fn text(ctx: &Context<'_>, i: usize) -> rusqlite::Result<Option<String>> {
    ctx.get::<Option<String>>(i)
}
fn int(ctx: &Context<'_>, i: usize) -> rusqlite::Result<Option<i64>> {
    ctx.get::<Option<i64>>(i)
}

pub fn repeat(s: &str, n: i64) -> rusqlite::Result<String> {
    let n = usize::try_from(n).unwrap_or(0);
    let bytes = s.len().saturating_mul(n);
    if bytes > MAX_BYTES {
        return Err(too_long(bytes));
    }
    Ok(s.repeat(n))
}

/// `lpad`/`rpad`: `s` cut or filled with `fill` to `len` characters.
pub fn pad(s: &str, len: i64, fill: &str, left: bool) -> rusqlite::Result<String> {
    let len = usize::try_from(len).unwrap_or(0);
    let have = s.chars().count();
    if have >= len || fill.is_empty() {
        return Ok(s.chars().take(len).collect());
    }
    let need = len - have;
    if need.saturating_mul(4) > MAX_BYTES {
        return Err(too_long(need.saturating_mul(4)));
    }
    let padding: String = fill.chars().cycle().take(need).collect();
    Ok(if left {
        padding + s
    } else {
        s.to_owned() + &padding
    })
}

/// `left(s, n)`: the first `n` characters, or all but the last `-n`.
pub fn left(s: &str, n: i64) -> String {
    let count = s.chars().count();
    let take = if n >= 0 {
        n.unsigned_abs() as usize
    } else {
        count.saturating_sub(n.unsigned_abs() as usize)
    };
    s.chars().take(take).collect()
}

/// `right(s, n)`: the last `n` characters, or all but the first `-n`.
pub fn right(s: &str, n: i64) -> String {
    let count = s.chars().count();
    let skip = if n >= 0 {
        count.saturating_sub(n.unsigned_abs() as usize)
    } else {
        (n.unsigned_abs() as usize).min(count)
    };
    s.chars().skip(skip).collect()
}

/// `split_part(s, delimiter, n)`: field `n` (from 1; negative counts from
/// the end), empty past the last.
pub fn split_part(s: &str, delimiter: &str, n: i64) -> rusqlite::Result<String> {
    if n == 0 {
        return Err(fail("22023", "field position must not be zero".into()));
    }
    let fields: Vec<&str> = if delimiter.is_empty() {
        if s.is_empty() { Vec::new() } else { vec![s] }
    } else {
        s.split(delimiter).collect()
    };
    let index = if n > 0 {
        usize::try_from(n - 1).ok()
    } else {
        fields.len().checked_sub(n.unsigned_abs() as usize)
    };
    Ok(index
        .and_then(|i| fields.get(i))
        .map_or_else(String::new, |f| (*f).to_owned()))
}

/// `strpos(s, sub)`: the character position of `sub` in `s` from 1, or 0.
pub fn strpos(s: &str, sub: &str) -> i64 {
    s.find(sub)
        .map_or(0, |byte| s[..byte].chars().count() as i64 + 1)
}

/// Registers the functions above on `conn`.
pub fn register(conn: &Connection) -> rusqlite::Result<()> {
    // PostgreSQL hashes the text's UTF-8 bytes; lowercase hex.
    register_fn(conn, "md5", 1, |ctx| {
        use md5::Digest;
        Ok(text(ctx, 0)?.map(|s| {
            md5::Md5::digest(s.as_bytes())
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect()
        }))
    })?;
    register_fn(conn, "repeat", 2, |ctx| {
        match (text(ctx, 0)?, int(ctx, 1)?) {
            (Some(s), Some(n)) => repeat(&s, n).map(Some),
            _ => Ok(None),
        }
    })?;
    for (name, is_left) in [("lpad", true), ("rpad", false)] {
        register_fn(conn, name, 2, move |ctx| {
            match (text(ctx, 0)?, int(ctx, 1)?) {
                (Some(s), Some(n)) => pad(&s, n, " ", is_left).map(Some),
                _ => Ok(None),
            }
        })?;
        register_fn(conn, name, 3, move |ctx| {
            match (text(ctx, 0)?, int(ctx, 1)?, text(ctx, 2)?) {
                (Some(s), Some(n), Some(f)) => pad(&s, n, &f, is_left).map(Some),
                _ => Ok(None),
            }
        })?;
    }
    register_fn(conn, "left", 2, |ctx| {
        Ok(text(ctx, 0)?.zip(int(ctx, 1)?).map(|(s, n)| left(&s, n)))
    })?;
    register_fn(conn, "right", 2, |ctx| {
        Ok(text(ctx, 0)?.zip(int(ctx, 1)?).map(|(s, n)| right(&s, n)))
    })?;
    register_fn(conn, "split_part", 3, |ctx| {
        match (text(ctx, 0)?, text(ctx, 1)?, int(ctx, 2)?) {
            (Some(s), Some(d), Some(n)) => split_part(&s, &d, n).map(Some),
            _ => Ok(None),
        }
    })?;
    conn.create_scalar_function(
        "strpos",
        2,
        FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC,
        |ctx| {
            Ok(text(ctx, 0)?
                .zip(text(ctx, 1)?)
                .map(|(s, sub)| strpos(&s, &sub)))
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Expected values are PostgreSQL 15's for the same calls.
    #[test]
    fn match_postgresql() {
        assert_eq!(repeat("ab", 3).expect("call"), "ababab");
        assert_eq!(repeat("ab", -1).expect("call"), "");
        assert!(repeat("ab", 1 << 30).is_err());
        assert_eq!(pad("hi", 5, "xy", true).expect("call"), "xyxhi");
        assert_eq!(pad("hi", 5, "xy", false).expect("call"), "hixyx");
        assert_eq!(pad("hello", 2, "x", true).expect("call"), "he");
        assert_eq!(pad("hello", 2, "x", false).expect("call"), "he");
        assert_eq!(pad("hé", 4, "", true).expect("call"), "hé");
        assert_eq!(pad("hé", 4, " ", true).expect("call"), "  hé");
        assert_eq!(left("abcdé", 2), "ab");
        assert_eq!(left("abcdé", -2), "abc");
        assert_eq!(left("ab", -5), "");
        assert_eq!(right("abcdé", 2), "dé");
        assert_eq!(right("abcdé", -2), "cdé");
        assert_eq!(right("ab", 5), "ab");
        assert_eq!(split_part("a,b,c", ",", 2).expect("call"), "b");
        assert_eq!(split_part("a,b,c", ",", 4).expect("call"), "");
        assert_eq!(split_part("a,b,c", ",", -1).expect("call"), "c");
        assert_eq!(split_part("a,b,c", ",", -4).expect("call"), "");
        assert_eq!(split_part("abc", "", 1).expect("call"), "abc");
        assert_eq!(split_part("abc", "", 2).expect("call"), "");
        assert!(split_part("abc", ",", 0).is_err());
        assert_eq!(strpos("hélló", "ll"), 3);
        assert_eq!(strpos("abc", "z"), 0);
        assert_eq!(strpos("abc", ""), 1);
    }

    #[test]
    fn are_callable_from_sql_and_keep_nulls() {
        let conn = Connection::open_in_memory().expect("open");
        register(&conn).expect("register");
        let got: (String, String, Option<String>, i64) = conn
            .query_row(
                "SELECT repeat('x', 3) || lpad('7', 3, '0'), split_part('k=v', '=', 2), repeat(NULL, 2), strpos('abc', 'c')",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .expect("call");
        assert_eq!(got, ("xxx007".into(), "v".into(), None, 3));
        let err = conn
            .query_row("SELECT split_part('a', ',', 0)", [], |r| {
                r.get::<_, String>(0)
            })
            .expect_err("an error");
        assert!(err.to_string().contains("SQLSTATE 22023"), "{err}");
    }
}
