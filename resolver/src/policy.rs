//! Conflict-policy files: which strategy each table and column uses.
//!
//! ```toml
//! default = "lww"                 # lww | priority | first-writer-wins
//! priority = ["r1", "r2", "r3"]   # origins, highest priority first
//! deletes = "lww"                 # lww | delete-wins | update-wins
//!
//! [tables.accounts]
//! strategy = "priority"
//! deletes = "delete-wins"
//! columns.balance = "counter"     # lww | priority | max | min | counter | set | keep-local | prefer-non-null
//! ```
//!
//! Parsing reports the line and column of the first problem and the allowed
//! values; [`Policy::validate_schema`] checks names and column types against
//! the database.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// How a table resolves conflicts (columns without a rule of their own).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Strategy {
    /// Per column, the newer `(hlc, origin)` wins.
    #[default]
    Lww,
    /// The origin earlier in `priority` wins; equal priority falls back to lww.
    Priority,
    /// A transaction meeting any conflict is rejected whole (certification).
    FirstWriterWins,
}

/// A per-column merge rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ColumnRule {
    Lww,
    Priority,
    Max,
    Min,
    /// The change's delta is applied (PN-counter): +5 and +3 on 100 give 108.
    Counter,
    /// JSON-array column merged as an add-wins observed-remove set.
    Set,
    /// The value already on the replica stays.
    KeepLocal,
    /// A non-null value beats null; two non-null values fall back to lww.
    PreferNonNull,
}

impl ColumnRule {
    pub fn as_str(&self) -> &'static str {
        match self {
            ColumnRule::Lww => "lww",
            ColumnRule::Priority => "priority",
            ColumnRule::Max => "max",
            ColumnRule::Min => "min",
            ColumnRule::Counter => "counter",
            ColumnRule::Set => "set",
            ColumnRule::KeepLocal => "keep-local",
            ColumnRule::PreferNonNull => "prefer-non-null",
        }
    }

    /// Rules whose cells keep a CRDT state in the replica's metadata.
    pub fn is_crdt(&self) -> bool {
        matches!(self, ColumnRule::Counter | ColumnRule::Set)
    }
}

/// What happens when a delete and an update of the same row meet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum DeletePolicy {
    /// The newer of the delete and the update wins.
    #[default]
    Lww,
    /// The delete wins; the row stays deleted.
    DeleteWins,
    /// The update wins; a deleted row is resurrected.
    UpdateWins,
}

impl Strategy {
    pub fn as_str(&self) -> &'static str {
        match self {
            Strategy::Lww => "lww",
            Strategy::Priority => "priority",
            Strategy::FirstWriterWins => "first-writer-wins",
        }
    }
}

impl DeletePolicy {
    pub fn as_str(&self) -> &'static str {
        match self {
            DeletePolicy::Lww => "lww",
            DeletePolicy::DeleteWins => "delete-wins",
            DeletePolicy::UpdateWins => "update-wins",
        }
    }
}

/// `(column name, declared type, is part of the primary key)`.
pub type ColumnInfo = (String, String, bool);

/// `[tables.NAME]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct TablePolicy {
    pub strategy: Option<Strategy>,
    pub deletes: Option<DeletePolicy>,
    pub priority: Option<Vec<String>>,
    #[serde(default)]
    pub columns: BTreeMap<String, ColumnRule>,
}

/// A whole policy file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    #[serde(default)]
    pub default: Strategy,
    #[serde(default)]
    pub priority: Vec<String>,
    #[serde(default)]
    pub deletes: DeletePolicy,
    #[serde(default)]
    pub tables: BTreeMap<String, TablePolicy>,
}

fn line_col(text: &str, at: usize) -> (usize, usize) {
    let before = text.get(..at.min(text.len())).unwrap_or("");
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

impl Policy {
    /// Parses policy TOML; `source_name` (a file path) prefixes errors.
    pub fn parse(text: &str, source_name: &str) -> Result<Policy> {
        let policy: Policy = toml::from_str(text).map_err(|e| {
            let (line, column) = e.span().map_or((1, 1), |s| line_col(text, s.start));
            Error::Syntax {
                source_name: source_name.to_owned(),
                line,
                column,
                message: e.message().trim().to_owned(),
            }
        })?;
        policy.check_priorities(source_name)?;
        Ok(policy)
    }

    fn check_priorities(&self, source_name: &str) -> Result<()> {
        let invalid = |key: String, reason: String| Error::Invalid {
            source_name: source_name.to_owned(),
            key,
            reason,
        };
        let dup = |list: &[String]| {
            let mut seen = std::collections::BTreeSet::new();
            list.iter().find(|o| !seen.insert(o.as_str())).cloned()
        };
        if let Some(d) = dup(&self.priority) {
            return Err(invalid(
                "priority".into(),
                format!("origin {d:?} is listed twice"),
            ));
        }
        for (name, t) in &self.tables {
            let list = t.priority.as_deref().unwrap_or(&self.priority);
            if let Some(d) = t.priority.as_deref().and_then(dup) {
                return Err(invalid(
                    format!("tables.{name}.priority"),
                    format!("origin {d:?} is listed twice"),
                ));
            }
            let uses_priority = self.strategy_of(name) == Strategy::Priority
                || t.columns.values().any(|r| *r == ColumnRule::Priority);
            if uses_priority && list.is_empty() {
                return Err(invalid(
                    format!("tables.{name}"),
                    "uses priority but no priority list is given (priority = [\"r1\", \"r2\", …])"
                        .into(),
                ));
            }
        }
        if self.default == Strategy::Priority && self.priority.is_empty() {
            return Err(invalid(
                "default".into(),
                "is \"priority\" but `priority` lists no origins (priority = [\"r1\", \"r2\", …])"
                    .into(),
            ));
        }
        Ok(())
    }

    /// Checks tables, columns and column types against the database schema:
    /// `columns_of(table)` gives `(column, declared type, is primary key)`.
    pub fn validate_schema(
        &self,
        source_name: &str,
        columns_of: &dyn Fn(&str) -> Option<Vec<ColumnInfo>>,
    ) -> Result<()> {
        let invalid = |key: String, reason: String| Error::Invalid {
            source_name: source_name.to_owned(),
            key,
            reason,
        };
        for (table, tp) in &self.tables {
            let Some(cols) = columns_of(table) else {
                return Err(invalid(format!("tables.{table}"), "no such table".into()));
            };
            for (col, rule) in &tp.columns {
                let key = format!("tables.{table}.columns.{col}");
                let Some((_, decl, is_pk)) = cols.iter().find(|(c, _, _)| c == col) else {
                    let names: Vec<&str> = cols.iter().map(|(c, _, _)| c.as_str()).collect();
                    return Err(invalid(
                        key,
                        format!("no such column; {table} has {}", names.join(", ")),
                    ));
                };
                if *is_pk {
                    return Err(invalid(
                        key,
                        "primary-key columns identify rows and cannot have merge rules".into(),
                    ));
                }
                let ty = crate::ColumnType::of(decl);
                match rule {
                    ColumnRule::Counter if ty != crate::ColumnType::Integer => {
                        return Err(invalid(
                            key,
                            format!(
                                "counter needs an INTEGER column, but {col} is declared {decl:?}"
                            ),
                        ));
                    }
                    ColumnRule::Set if ty != crate::ColumnType::Json => {
                        return Err(invalid(
                            key,
                            format!(
                                "set needs a JSON column (declare it JSON), but {col} is declared {decl:?}"
                            ),
                        ));
                    }
                    _ => {}
                }
            }
        }
        Ok(())
    }

    pub fn strategy_of(&self, table: &str) -> Strategy {
        self.tables
            .get(table)
            .and_then(|t| t.strategy)
            .unwrap_or(self.default)
    }

    pub fn deletes_of(&self, table: &str) -> DeletePolicy {
        self.tables
            .get(table)
            .and_then(|t| t.deletes)
            .unwrap_or(self.deletes)
    }

    /// The rule a column follows: its own, else its table's strategy.
    pub fn rule_of(&self, table: &str, column: &str) -> ColumnRule {
        if let Some(r) = self.tables.get(table).and_then(|t| t.columns.get(column)) {
            return *r;
        }
        match self.strategy_of(table) {
            Strategy::Priority => ColumnRule::Priority,
            _ => ColumnRule::Lww,
        }
    }

    /// Rank of an origin (0 = highest); origins not listed rank below all listed.
    pub fn rank(&self, table: &str, origin: &str) -> usize {
        let list = self
            .tables
            .get(table)
            .and_then(|t| t.priority.as_deref())
            .unwrap_or(&self.priority);
        list.iter().position(|o| o == origin).unwrap_or(list.len())
    }

    /// Whether any column of the table keeps CRDT state.
    pub fn has_crdt_columns(&self, table: &str) -> bool {
        self.tables
            .get(table)
            .is_some_and(|t| t.columns.values().any(ColumnRule::is_crdt))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = r#"
default = "lww"
priority = ["r1", "r2"]
[tables.accounts]
strategy = "priority"
deletes = "delete-wins"
columns.balance = "counter"
columns.tags = "set"
"#;

    fn schema(t: &str) -> Option<Vec<(String, String, bool)>> {
        (t == "accounts").then(|| {
            vec![
                ("id".into(), "BIGINT".into(), true),
                ("balance".into(), "BIGINT".into(), false),
                ("tags".into(), "JSON".into(), false),
                ("owner".into(), "TEXT".into(), false),
            ]
        })
    }

    #[test]
    fn example_file_parses() -> Result<()> {
        let p = Policy::parse(
            include_str!("../../conflict-policy.example.toml"),
            "example",
        )?;
        assert_eq!(p.rule_of("accounts", "balance"), ColumnRule::Counter);
        assert_eq!(p.rank("profiles", "r2"), 0);
        Ok(())
    }

    #[test]
    fn parses_and_answers() -> Result<()> {
        let p = Policy::parse(EXAMPLE, "p.toml")?;
        p.validate_schema("p.toml", &schema)?;
        assert_eq!(p.strategy_of("accounts"), Strategy::Priority);
        assert_eq!(p.rule_of("accounts", "balance"), ColumnRule::Counter);
        assert_eq!(p.rule_of("accounts", "owner"), ColumnRule::Priority);
        assert_eq!(p.rule_of("other", "x"), ColumnRule::Lww);
        assert_eq!(p.deletes_of("accounts"), DeletePolicy::DeleteWins);
        assert_eq!(p.rank("accounts", "r2"), 1);
        assert_eq!(p.rank("accounts", "r9"), 2);
        Ok(())
    }

    #[test]
    fn errors_name_line_column_and_allowed_values() {
        let e = Policy::parse(
            "default = \"lww\"\n[tables.t]\nstrategy = \"fastest\"\n",
            "p.toml",
        )
        .expect_err("bad strategy")
        .to_string();
        assert!(e.starts_with("p.toml:3:12"), "{e}");
        assert!(e.contains("first-writer-wins"), "{e}");
        let e = Policy::parse("[tables.t]\ncolumns.x = \"sum\"\n", "p.toml")
            .expect_err("bad rule")
            .to_string();
        assert!(
            e.contains("p.toml:2:") && e.contains("prefer-non-null"),
            "{e}"
        );
        let e = Policy::parse("colour = 1\n", "p.toml")
            .expect_err("unknown key")
            .to_string();
        assert!(e.contains("colour"), "{e}");
        let e = Policy::parse("default = \"priority\"\n", "p.toml")
            .expect_err("no list")
            .to_string();
        assert!(e.contains("priority"), "{e}");
    }

    #[test]
    fn schema_errors() -> Result<()> {
        let check = |text: &str| {
            Policy::parse(text, "p.toml").and_then(|p| p.validate_schema("p.toml", &schema))
        };
        assert!(
            check("[tables.nope]\n")
                .is_err_and(|e| e.to_string().contains("tables.nope: no such table"))
        );
        assert!(
            check("[tables.accounts]\ncolumns.zzz = \"max\"\n")
                .is_err_and(|e| e.to_string().contains("no such column"))
        );
        assert!(
            check("[tables.accounts]\ncolumns.owner = \"counter\"\n")
                .is_err_and(|e| e.to_string().contains("counter needs an INTEGER column"))
        );
        assert!(
            check("[tables.accounts]\ncolumns.owner = \"set\"\n")
                .is_err_and(|e| e.to_string().contains("JSON"))
        );
        assert!(
            check("[tables.accounts]\ncolumns.id = \"max\"\n")
                .is_err_and(|e| e.to_string().contains("primary-key"))
        );
        check("[tables.accounts]\ncolumns.owner = \"prefer-non-null\"\n")?;
        Ok(())
    }
}
