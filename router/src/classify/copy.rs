//! `COPY … FROM STDIN` and `COPY … TO STDOUT` in text and CSV; files,
//! programs and binary format are refused by name.

use sqlparser::ast::{CopyLegacyCsvOption, CopyLegacyOption, CopyOption, CopySource, CopyTarget};

use super::{Kind, object_name, refuse_internal, unsupported};
use crate::copy_format::CopyFormat;
use crate::error::Result;

/// PostgreSQL spells COPY's boolean options `on`/`off` too (pgbench sends
/// `WITH (freeze on)`), which sqlparser only takes as `true`/`false`: the
/// statement with those words, inside the option list, as booleans. `None`
/// when it is not a COPY or nothing changes.
pub(super) fn normalize_booleans(sql: &str) -> Option<String> {
    use sqlparser::dialect::PostgreSqlDialect;
    use sqlparser::keywords::Keyword;
    use sqlparser::tokenizer::{Token, Tokenizer, Word};
    let head = sql.trim_start().get(..4)?;
    if !head.eq_ignore_ascii_case("copy") {
        return None;
    }
    let tokens = Tokenizer::new(&PostgreSqlDialect {}, sql).tokenize().ok()?;
    let first = tokens.iter().find(|t| !matches!(t, Token::Whitespace(_)))?;
    if !matches!(first, Token::Word(w) if w.keyword == Keyword::COPY) {
        return None;
    }
    let mut depth = 0usize;
    let mut changed = false;
    let out: Vec<Token> = tokens
        .into_iter()
        .map(|t| match t {
            Token::LParen => {
                depth += 1;
                t
            }
            Token::RParen => {
                depth = depth.saturating_sub(1);
                t
            }
            Token::Word(w)
                if depth > 0
                    && w.quote_style.is_none()
                    && matches!(w.keyword, Keyword::ON | Keyword::OFF) =>
            {
                changed = true;
                let value = if w.keyword == Keyword::ON {
                    "TRUE"
                } else {
                    "FALSE"
                };
                Token::Word(Word {
                    value: value.into(),
                    quote_style: None,
                    keyword: if w.keyword == Keyword::ON {
                        Keyword::TRUE
                    } else {
                        Keyword::FALSE
                    },
                })
            }
            other => other,
        })
        .collect();
    changed.then(|| out.iter().map(ToString::to_string).collect())
}

pub(super) fn classify(
    source: &CopySource,
    to: bool,
    target: &CopyTarget,
    options: &[CopyOption],
    legacy: &[CopyLegacyOption],
) -> Result<Kind> {
    match (to, target) {
        (false, CopyTarget::Stdin) | (true, CopyTarget::Stdout) => {}
        _ => {
            return Err(unsupported(
                "COPY to or from a file or program on the server",
                "use FROM STDIN / TO STDOUT (psql's \\copy reads and writes files on the client)",
            ));
        }
    }
    let format = format(options, legacy)?;
    match source {
        CopySource::Table {
            table_name,
            columns,
        } => {
            let table = object_name(table_name);
            let columns: Vec<String> = columns.iter().map(|c| c.value.clone()).collect();
            if to {
                let list = if columns.is_empty() {
                    "*".to_owned()
                } else {
                    columns
                        .iter()
                        .map(|c| replica::quote_ident(c))
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                Ok(Kind::CopyOut {
                    query: format!("SELECT {list} FROM {table_name}"),
                    format,
                })
            } else {
                refuse_internal(&table)?;
                Ok(Kind::CopyIn {
                    table,
                    columns,
                    format,
                })
            }
        }
        CopySource::Query(q) if to => Ok(Kind::CopyOut {
            query: q.to_string(),
            format,
        }),
        CopySource::Query(_) => Err(unsupported("COPY (query) FROM", "copy into a table")),
    }
}

fn format(options: &[CopyOption], legacy: &[CopyLegacyOption]) -> Result<CopyFormat> {
    let csv = options
        .iter()
        .any(|o| matches!(o, CopyOption::Format(f) if f.value.eq_ignore_ascii_case("csv")))
        || legacy.iter().any(|o| matches!(o, CopyLegacyOption::Csv(_)));
    let mut f = if csv {
        CopyFormat::csv()
    } else {
        CopyFormat::text()
    };
    let binary = || unsupported("COPY … BINARY", "use the text or CSV format");
    for o in options {
        match o {
            CopyOption::Format(name) => match name.value.to_ascii_lowercase().as_str() {
                "csv" | "text" => {}
                "binary" => return Err(binary()),
                other => {
                    return Err(unsupported(
                        format!("COPY format {other}"),
                        "use text or csv",
                    ));
                }
            },
            CopyOption::Delimiter(c) => f.delimiter = *c,
            CopyOption::Null(n) => f.null.clone_from(n),
            CopyOption::Header(h) => f.header = *h,
            CopyOption::Quote(c) => f.quote = *c,
            CopyOption::Escape(c) => f.escape = *c,
            CopyOption::Freeze(_) | CopyOption::Encoding(_) => {}
            other => {
                return Err(unsupported(
                    format!("COPY option {other}"),
                    "it has no effect here",
                ));
            }
        }
    }
    for o in legacy {
        match o {
            CopyLegacyOption::Binary => return Err(binary()),
            CopyLegacyOption::Delimiter(c) => f.delimiter = *c,
            CopyLegacyOption::Null(n) => f.null.clone_from(n),
            CopyLegacyOption::Header => f.header = true,
            CopyLegacyOption::Csv(opts) => {
                for c in opts {
                    match c {
                        CopyLegacyCsvOption::Header => f.header = true,
                        CopyLegacyCsvOption::Quote(q) => f.quote = *q,
                        CopyLegacyCsvOption::Escape(e) => f.escape = *e,
                        other => {
                            return Err(unsupported(
                                format!("COPY CSV option {other}"),
                                "it is not supported",
                            ));
                        }
                    }
                }
            }
            other => {
                return Err(unsupported(
                    format!("COPY option {other}"),
                    "it is not supported",
                ));
            }
        }
    }
    Ok(f)
}
