//! Splitting a query string into each statement's own text (what the
//! slow-query log and error messages show).

use sqlparser::ast::Statement;
use sqlparser::dialect::Dialect;
use sqlparser::tokenizer::{Token, Tokenizer};

/// The original text of each statement (re-rendered from the AST only if
/// the split does not line up, which keeps the meaning if not the spelling).
pub(super) fn split_texts(
    sql: &str,
    dialect: &dyn Dialect,
    statements: &[Statement],
) -> Vec<String> {
    if statements.len() == 1 {
        return vec![sql.trim().trim_end_matches(';').trim().to_owned()];
    }
    let mut parts = Vec::new();
    if let Ok(tokens) = Tokenizer::new(dialect, sql).tokenize_with_location() {
        let line_starts: Vec<usize> = std::iter::once(0)
            .chain(sql.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        let byte_at = |line: u64, col: u64| -> Option<usize> {
            let start = *line_starts.get((line as usize).checked_sub(1)?)?;
            let rest = sql.get(start..)?;
            let chars = (col as usize).checked_sub(1)?;
            Some(
                start
                    + rest
                        .char_indices()
                        .nth(chars)
                        .map_or(rest.len(), |(i, _)| i),
            )
        };
        let mut begin = 0;
        for t in &tokens {
            if t.token == Token::SemiColon
                && let Some(at) = byte_at(t.span.start.line, t.span.start.column)
            {
                let piece = sql.get(begin..at).unwrap_or("").trim();
                if !piece.is_empty() {
                    parts.push(piece.to_owned());
                }
                begin = at + 1;
            }
        }
        let tail = sql.get(begin..).unwrap_or("").trim();
        if !tail.is_empty() {
            parts.push(tail.to_owned());
        }
    }
    if parts.len() == statements.len() {
        parts
    } else {
        statements.iter().map(ToString::to_string).collect()
    }
}
