//! `COPY`'s text and CSV formats, both ways: PostgreSQL's rules for
//! delimiters, NULL markers, backslash escapes (text) and quoting (CSV).
//! Binary format is refused when the statement is parsed.

use rusqlite::types::Value as SqlValue;

use crate::error::{Error, Result};
use crate::typing::pgtypes::text_of;

/// How a `COPY` statement's rows are written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyFormat {
    pub csv: bool,
    pub delimiter: char,
    /// The text that stands for NULL (`\N` in text, empty in CSV).
    pub null: String,
    /// CSV: a header line first (skipped on input).
    pub header: bool,
    pub quote: char,
    pub escape: char,
}

impl CopyFormat {
    pub fn text() -> CopyFormat {
        CopyFormat {
            csv: false,
            delimiter: '\t',
            null: "\\N".into(),
            header: false,
            quote: '"',
            escape: '"',
        }
    }

    pub fn csv() -> CopyFormat {
        CopyFormat {
            csv: true,
            delimiter: ',',
            null: String::new(),
            header: false,
            quote: '"',
            escape: '"',
        }
    }

    /// One row as a line (with its newline).
    pub fn encode_row(&self, row: &[SqlValue]) -> String {
        let mut line = String::new();
        for (i, v) in row.iter().enumerate() {
            if i > 0 {
                line.push(self.delimiter);
            }
            match text_of(v) {
                None => line.push_str(&self.null),
                Some(t) if self.csv => line.push_str(&self.csv_field(&t)),
                Some(t) => escape_text(&t, self.delimiter, &mut line),
            }
        }
        line.push('\n');
        line
    }

    /// The header line for CSV with `HEADER`.
    pub fn encode_header(&self, columns: &[String]) -> String {
        let fields: Vec<String> = columns.iter().map(|c| self.csv_field(c)).collect();
        let mut line = fields.join(&self.delimiter.to_string());
        line.push('\n');
        line
    }

    fn csv_field(&self, t: &str) -> String {
        let needs = t.is_empty()
            || t.contains(self.delimiter)
            || t.contains(self.quote)
            || t.contains(['\n', '\r'])
            || t == self.null;
        if !needs {
            return t.to_owned();
        }
        let mut out = String::with_capacity(t.len() + 2);
        out.push(self.quote);
        for c in t.chars() {
            if c == self.quote || c == self.escape {
                out.push(self.escape);
            }
            out.push(c);
        }
        out.push(self.quote);
        out
    }

    /// Every row of `data`, `columns` fields each (None: NULL).
    pub fn parse(&self, data: &str, columns: usize) -> Result<Vec<Vec<Option<String>>>> {
        let mut rows = if self.csv {
            self.parse_csv(data)?
        } else {
            self.parse_text(data)?
        };
        if self.csv && self.header && !rows.is_empty() {
            rows.remove(0);
        }
        for (n, r) in rows.iter().enumerate() {
            if r.len() != columns {
                return Err(bad(format!(
                    "line {}: {} fields where the table has {columns} columns",
                    n + 1 + usize::from(self.csv && self.header),
                    r.len()
                )));
            }
        }
        Ok(rows)
    }

    fn parse_text(&self, data: &str) -> Result<Vec<Vec<Option<String>>>> {
        let mut rows = Vec::new();
        // The data ends with a newline; what follows the last one is no row.
        let body = data.strip_suffix('\n').unwrap_or(data);
        if body.is_empty() {
            return Ok(rows);
        }
        for (n, line) in body.split('\n').enumerate() {
            let line = line.strip_suffix('\r').unwrap_or(line);
            // `\.` ends the data (psql sends it in old-style copies).
            if line == "\\." {
                break;
            }
            let mut row = Vec::new();
            for raw in line.split(self.delimiter) {
                if raw == self.null {
                    row.push(None);
                } else {
                    row.push(Some(
                        unescape_text(raw).map_err(|e| bad(format!("line {}: {e}", n + 1)))?,
                    ));
                }
            }
            rows.push(row);
        }
        Ok(rows)
    }

    fn parse_csv(&self, data: &str) -> Result<Vec<Vec<Option<String>>>> {
        let mut rows = Vec::new();
        let mut row: Vec<Option<String>> = Vec::new();
        let mut field = String::new();
        let mut quoted = false;
        let mut in_quotes = false;
        let mut chars = data.chars().peekable();
        let mut line = 1;
        let mut at_line_start = true;
        while let Some(c) = chars.next() {
            if in_quotes {
                if c == self.escape
                    && chars.peek() == Some(&self.quote)
                    && self.escape != self.quote
                {
                    field.push(self.quote);
                    chars.next();
                } else if c == self.quote {
                    if self.escape == self.quote && chars.peek() == Some(&self.quote) {
                        field.push(self.quote);
                        chars.next();
                    } else {
                        in_quotes = false;
                    }
                } else {
                    if c == '\n' {
                        line += 1;
                    }
                    field.push(c);
                }
                continue;
            }
            if at_line_start && c == '\\' && chars.peek() == Some(&'.') {
                break;
            }
            at_line_start = false;
            if c == self.quote {
                in_quotes = true;
                quoted = true;
            } else if c == self.delimiter {
                row.push(self.csv_value(std::mem::take(&mut field), quoted));
                quoted = false;
            } else if c == '\n' || c == '\r' {
                if c == '\r' && chars.peek() == Some(&'\n') {
                    chars.next();
                }
                row.push(self.csv_value(std::mem::take(&mut field), quoted));
                quoted = false;
                rows.push(std::mem::take(&mut row));
                line += 1;
                at_line_start = true;
            } else {
                field.push(c);
            }
        }
        if in_quotes {
            return Err(bad(format!("line {line}: unterminated CSV quoted field")));
        }
        if !field.is_empty() || quoted || !row.is_empty() {
            row.push(self.csv_value(field, quoted));
            rows.push(row);
        }
        Ok(rows)
    }

    /// An unquoted field equal to the NULL string is NULL; a quoted one never is.
    fn csv_value(&self, field: String, quoted: bool) -> Option<String> {
        (quoted || field != self.null).then_some(field)
    }
}

fn bad(reason: String) -> Error {
    Error::BadCopyData(reason)
}

fn escape_text(t: &str, delimiter: char, out: &mut String) {
    for c in t.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == delimiter => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
}

fn unescape_text(raw: &str) -> std::result::Result<String, String> {
    if !raw.contains('\\') {
        return Ok(raw.to_owned());
    }
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('t') => out.push('\t'),
            Some('b') => out.push('\u{8}'),
            Some('f') => out.push('\u{c}'),
            Some('v') => out.push('\u{b}'),
            Some(d @ '0'..='7') => {
                let mut n = d.to_digit(8).unwrap_or(0);
                for _ in 0..2 {
                    match chars.peek().and_then(|c| c.to_digit(8)) {
                        Some(x) => {
                            n = n * 8 + x;
                            chars.next();
                        }
                        None => break,
                    }
                }
                out.push(char::from_u32(n).ok_or("invalid octal escape")?);
            }
            Some('x') => {
                let mut n = 0u32;
                let mut digits = 0;
                while digits < 2 {
                    match chars.peek().and_then(|c| c.to_digit(16)) {
                        Some(x) => {
                            n = n * 16 + x;
                            chars.next();
                            digits += 1;
                        }
                        None => break,
                    }
                }
                if digits == 0 {
                    out.push('x');
                } else {
                    out.push(char::from_u32(n).ok_or("invalid hex escape")?);
                }
            }
            Some(other) => out.push(other),
            None => return Err("a backslash ends the field".into()),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &str) -> Option<String> {
        Some(v.to_owned())
    }

    #[test]
    fn text_round_trips_escapes_and_nulls() -> Result<()> {
        let f = CopyFormat::text();
        let row = vec![
            SqlValue::Integer(1),
            SqlValue::Text("a\tb\\c\nd".into()),
            SqlValue::Null,
            SqlValue::Real(1.5),
        ];
        let line = f.encode_row(&row);
        assert_eq!(line, "1\ta\\tb\\\\c\\nd\t\\N\t1.5\n");
        let back = f.parse(&line, 4)?;
        assert_eq!(back, vec![vec![s("1"), s("a\tb\\c\nd"), None, s("1.5")]]);
        assert_eq!(
            f.parse("1\t\\101\\x42\n\\.\nignored\n", 2)?,
            vec![vec![s("1"), s("AB")]]
        );
        assert!(f.parse("1\t2\t3\n", 2).is_err());
        assert!(f.parse("", 2)?.is_empty());
        assert_eq!(f.parse("\n\n", 1)?, vec![vec![s("")], vec![s("")]]);
        Ok(())
    }

    #[test]
    fn csv_quotes_and_keeps_quoted_empty_strings() -> Result<()> {
        let mut f = CopyFormat::csv();
        let row = vec![
            SqlValue::Text("a,b".into()),
            SqlValue::Text(String::new()),
            SqlValue::Null,
            SqlValue::Text("say \"hi\"".into()),
        ];
        let line = f.encode_row(&row);
        assert_eq!(line, "\"a,b\",\"\",,\"say \"\"hi\"\"\"\n");
        assert_eq!(
            f.parse(&line, 4)?,
            vec![vec![s("a,b"), s(""), None, s("say \"hi\"")]]
        );
        f.header = true;
        assert_eq!(
            f.parse("id,name\r\n1,\"two\nlines\"\r\n", 2)?,
            vec![vec![s("1"), s("two\nlines")]]
        );
        assert!(f.parse("1,\"open\n", 2).is_err());
        Ok(())
    }
}
