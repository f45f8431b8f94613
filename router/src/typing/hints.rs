//! Type hints: for each `$n` parameter and each result column of a plain
//! SELECT, where its type can be learned from (a column's declared type, a
//! table position, or a fixed type), found on sqlparser's AST.

use std::collections::{BTreeMap, HashMap};
use std::ops::ControlFlow;

use resolver::ColumnType;
use sqlparser::ast::{AssignmentTarget, Expr, SetExpr, Statement, Value, visit_expressions};

/// Where a type can be learned from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hint {
    /// The declared type of a column with this name.
    Column(String),
    /// The declared type of the n-th column (0-based) of a table.
    Position { table: String, index: usize },
    /// A fixed SQLite type name (INTEGER, REAL, TEXT).
    Decl(&'static str),
    /// What `sum` of the column with this name gives.
    Sum(String),
    /// An array of what the hint gives.
    Array(Box<Hint>),
    /// What the hint gives moved by an interval: a date becomes a
    /// timestamp, as in PostgreSQL.
    Shifted(Box<Hint>),
}

/// A declared type moved by an interval (a date becomes a timestamp).
pub(super) fn shifted(decl: &str) -> String {
    if crate::typing::pgtypes::type_for_decl(decl) == pgwire::api::Type::DATE {
        "TIMESTAMP".to_owned()
    } else {
        decl.to_owned()
    }
}

impl Hint {
    /// The declared type this hint stands for without the schema, if any.
    pub fn fixed(&self) -> Option<String> {
        match self {
            Hint::Decl(d) => Some((*d).to_owned()),
            Hint::Array(inner) => inner.fixed().map(|d| format!("{d}[]")),
            Hint::Shifted(inner) => inner.fixed().map(|d| shifted(&d)),
            _ => None,
        }
    }
}

/// A call's first argument.
fn first_arg(f: &sqlparser::ast::Function) -> Option<&Expr> {
    nth_arg(f, 0)
}

fn nth_arg(f: &sqlparser::ast::Function, n: usize) -> Option<&Expr> {
    use sqlparser::ast::{FunctionArg, FunctionArgExpr, FunctionArguments};
    match &f.args {
        FunctionArguments::List(list) => match list.args.get(n)? {
            FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => Some(e),
            _ => None,
        },
        _ => None,
    }
}

/// The column a one-argument aggregate or function is over, if plain.
fn column_arg(f: &sqlparser::ast::Function) -> Option<String> {
    let arg = f.args.to_string();
    let col = arg.trim_matches(|c| c == '(' || c == ')').trim();
    (!col.is_empty()
        && col
            .chars()
            .all(|c| c.is_alphanumeric() || c == '_' || c == '.'))
    .then(|| col.rsplit('.').next().unwrap_or(col).to_owned())
}

fn placeholder_index(e: &Expr) -> Option<usize> {
    if let Expr::Value(v) = e
        && let Value::Placeholder(p) = &v.value
    {
        return p.strip_prefix('$').and_then(|n| n.parse().ok());
    }
    None
}

/// Casts whose parameter stays text: `x::regclass` and its kin take a name,
/// intervals are not a parameter type (see docs/types.md).
fn text_input_cast(data_type: &sqlparser::ast::DataType) -> bool {
    let name = data_type.to_string().to_ascii_lowercase();
    name.starts_with("reg") || name.starts_with("interval")
}

/// `Array` of the element type for an array type such as `int[]`.
fn array_hint(data_type: &sqlparser::ast::DataType) -> Option<Hint> {
    let sqlparser::ast::DataType::Array(sqlparser::ast::ArrayElemTypeDef::SquareBracket(elem, _)) =
        data_type
    else {
        return None;
    };
    Some(Hint::Array(Box::new(Hint::Decl(
        if elem.to_string().eq_ignore_ascii_case("oid") {
            "OID"
        } else {
            crate::casts::Target::parse(&elem.to_string())
                .map_or("TEXT", |t| crate::typing::pgtypes::decl_for_type(&t.ty))
        },
    ))))
}

fn column_of(e: &Expr) -> Option<String> {
    match e {
        Expr::Identifier(i) => Some(i.value.clone()),
        Expr::CompoundIdentifier(parts) => parts.last().map(|i| i.value.clone()),
        Expr::Nested(inner) => column_of(inner),
        Expr::BinaryOp { left, right, .. } => column_of(left).or_else(|| column_of(right)),
        _ => None,
    }
}

/// Highest placeholder and a column hint for each, to infer parameter types.
pub fn params_of(stmt: &Statement) -> (usize, BTreeMap<usize, Hint>) {
    let mut max = 0usize;
    let mut cols = BTreeMap::new();
    let _ = visit_expressions(stmt, |e: &Expr| {
        if let Some(n) = placeholder_index(e) {
            max = max.max(n);
        }
        match e {
            Expr::BinaryOp { left, right, .. } => {
                if let (Some(n), Some(c)) = (placeholder_index(right), column_of(left)) {
                    cols.entry(n).or_insert(Hint::Column(c));
                } else if let (Some(n), Some(c)) = (placeholder_index(left), column_of(right)) {
                    cols.entry(n).or_insert(Hint::Column(c));
                }
            }
            Expr::InList { expr, list, .. } => {
                if let Some(c) = column_of(expr) {
                    for n in list.iter().filter_map(placeholder_index) {
                        cols.entry(n).or_insert_with(|| Hint::Column(c.clone()));
                    }
                }
            }
            // `column = ANY($n)`: $n is an array of the column's type;
            // `x = ANY($n::int[])` says its type itself.
            Expr::AnyOp { left, right, .. } | Expr::AllOp { left, right, .. } => {
                let (inner, cast) = match right.as_ref() {
                    Expr::Cast {
                        expr, data_type, ..
                    } => (expr.as_ref(), Some(data_type)),
                    other => (other, None),
                };
                if let Some(n) = placeholder_index(inner) {
                    let array = match cast.and_then(array_hint) {
                        Some(array) => Some(array),
                        None => column_of(left).map(|c| Hint::Array(Box::new(Hint::Column(c)))),
                    };
                    if let Some(array) = array {
                        cols.entry(n).or_insert(array);
                    }
                }
            }
            // `$n::type` says the parameter's type, as in PostgreSQL; not
            // for reg* and interval, which stay text parameters (their text
            // input is what the cast reads; neither is a parameter type here).
            Expr::Cast {
                expr, data_type, ..
            } if placeholder_index(expr).is_some() && !text_input_cast(data_type) => {
                if let (Some(n), Some(h)) =
                    (placeholder_index(expr), expr_hint(e, &Derived::default()))
                {
                    cols.insert(n, h);
                }
            }
            Expr::Between {
                expr, low, high, ..
            } => {
                if let Some(c) = column_of(expr) {
                    for n in [low, high].into_iter().filter_map(|e| placeholder_index(e)) {
                        cols.entry(n).or_insert_with(|| Hint::Column(c.clone()));
                    }
                }
            }
            _ => {}
        }
        ControlFlow::<()>::Continue(())
    });
    match stmt {
        Statement::Insert(ins) => {
            if let Some(src) = &ins.source
                && let SetExpr::Values(values) = src.body.as_ref()
            {
                let table = ins.table.to_string().trim_matches('"').to_owned();
                for row in &values.rows {
                    for (i, expr) in row.iter().enumerate() {
                        let Some(n) = placeholder_index(expr) else {
                            continue;
                        };
                        let hint = match ins.columns.get(i) {
                            Some(col) => Hint::Column(crate::classify::object_name(col)),
                            None if ins.columns.is_empty() => Hint::Position {
                                table: table.clone(),
                                index: i,
                            },
                            None => continue,
                        };
                        cols.insert(n, hint);
                    }
                }
            }
            for a in &ins.assignments {
                assignment_hint(&a.target, &a.value, &mut cols);
            }
        }
        Statement::Update(up) => {
            for a in &up.assignments {
                assignment_hint(&a.target, &a.value, &mut cols);
            }
        }
        _ => {}
    }
    // `LIMIT $n` and `OFFSET $n` are bigints, as in PostgreSQL.
    let mut limits = LimitParams(Vec::new());
    let _ = sqlparser::ast::Visit::visit(stmt, &mut limits);
    for n in limits.0 {
        cols.entry(n).or_insert(Hint::Decl("INTEGER"));
    }
    (max, cols)
}

/// The placeholders used as a LIMIT or OFFSET.
struct LimitParams(Vec<usize>);

impl sqlparser::ast::Visitor for LimitParams {
    type Break = ();
    fn pre_visit_query(&mut self, q: &sqlparser::ast::Query) -> ControlFlow<()> {
        if let Some(sqlparser::ast::LimitClause::LimitOffset { limit, offset, .. }) =
            &q.limit_clause
        {
            let exprs = limit.iter().chain(offset.iter().map(|o| &o.value));
            self.0.extend(exprs.filter_map(placeholder_index));
        }
        ControlFlow::Continue(())
    }
}

fn assignment_hint(target: &AssignmentTarget, value: &Expr, cols: &mut BTreeMap<usize, Hint>) {
    if let (AssignmentTarget::ColumnName(name), Some(n)) = (target, placeholder_index(value)) {
        let col = name.0.last().map_or_else(String::new, |p| {
            p.as_ident()
                .map_or_else(|| p.to_string(), |i| i.value.clone())
        });
        cols.insert(n, Hint::Column(col));
    }
}

/// Type hints for a plain SELECT's result columns, or a write's
/// RETURNING list (none when it has a `*`: the positions are unknown).
pub fn projection_of(stmt: &Statement) -> Vec<Option<Hint>> {
    use sqlparser::ast::SelectItem;
    let returning = match stmt {
        Statement::Insert(i) => i.returning.as_ref(),
        Statement::Update(u) => u.returning.as_ref(),
        Statement::Delete(d) => d.returning.as_ref(),
        Statement::Query(q) => {
            return match q.body.as_ref() {
                SetExpr::Select(select) => select_hints(select),
                _ => Vec::new(),
            };
        }
        _ => None,
    };
    let Some(items) = returning else {
        return Vec::new();
    };
    let none = Derived::new();
    items
        .iter()
        .map(|item| match item {
            SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => {
                Some(expr_hint(e, &none))
            }
            _ => None,
        })
        .collect::<Option<Vec<_>>>()
        .unwrap_or_default()
}

/// Hints of the columns of the derived tables (`FROM (SELECT …) AS t`) a
/// SELECT reads, by (alias, column), lowercased.
type Derived = HashMap<(String, String), Hint>;

fn derived_columns(select: &sqlparser::ast::Select) -> Derived {
    use sqlparser::ast::{SelectItem, TableFactor};
    let mut out = Derived::new();
    for twj in &select.from {
        for factor in std::iter::once(&twj.relation).chain(twj.joins.iter().map(|j| &j.relation)) {
            let TableFactor::Derived {
                subquery,
                alias: Some(alias),
                ..
            } = factor
            else {
                continue;
            };
            let SetExpr::Select(inner) = subquery.body.as_ref() else {
                continue;
            };
            for (item, hint) in inner.projection.iter().zip(select_hints(inner)) {
                let name = match item {
                    SelectItem::ExprWithAlias { alias, .. } => alias.value.clone(),
                    SelectItem::UnnamedExpr(e) => match column_of(e) {
                        Some(c) => c,
                        None => continue,
                    },
                    _ => continue,
                };
                if let Some(h) = hint {
                    out.insert((alias.name.value.to_lowercase(), name.to_lowercase()), h);
                }
            }
        }
    }
    out
}

fn select_hints(select: &sqlparser::ast::Select) -> Vec<Option<Hint>> {
    use sqlparser::ast::SelectItem;
    let derived = derived_columns(select);
    select
        .projection
        .iter()
        .map(|item| match item {
            SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => {
                expr_hint(e, &derived)
            }
            _ => None,
        })
        .collect()
}

fn expr_hint(e: &Expr, derived: &Derived) -> Option<Hint> {
    match e {
        Expr::CompoundIdentifier(parts)
            if parts.len() >= 2
                && derived.contains_key(&(
                    parts[parts.len() - 2].value.to_lowercase(),
                    parts[parts.len() - 1].value.to_lowercase(),
                )) =>
        {
            derived
                .get(&(
                    parts[parts.len() - 2].value.to_lowercase(),
                    parts[parts.len() - 1].value.to_lowercase(),
                ))
                .cloned()
        }
        Expr::Identifier(_) | Expr::CompoundIdentifier(_) => column_of(e).map(Hint::Column),
        Expr::Nested(inner) => expr_hint(inner, derived),
        // PostgreSQL 14+: EXTRACT is numeric (date_part stays double).
        Expr::Extract { .. } => Some(Hint::Decl("NUMERIC")),
        Expr::Position { .. } => Some(Hint::Decl("INT4")),
        Expr::Substring { .. } => Some(Hint::Decl("TEXT")),
        // Predicates are booleans in PostgreSQL.
        Expr::IsNull(_)
        | Expr::IsNotNull(_)
        | Expr::IsTrue(_)
        | Expr::IsFalse(_)
        | Expr::IsNotTrue(_)
        | Expr::IsNotFalse(_)
        | Expr::IsDistinctFrom(..)
        | Expr::IsNotDistinctFrom(..)
        | Expr::InList { .. }
        | Expr::InSubquery { .. }
        | Expr::Between { .. }
        | Expr::Like { .. }
        | Expr::ILike { .. }
        | Expr::Exists { .. }
        | Expr::UnaryOp {
            op: sqlparser::ast::UnaryOperator::Not,
            ..
        } => Some(Hint::Decl("BOOLEAN")),
        // A regclass is an oid when cast from a name (see
        // `classify::catalog_sql`), a name when cast from an oid.
        Expr::Cast {
            expr, data_type, ..
        } if data_type
            .to_string()
            .to_ascii_lowercase()
            .ends_with("regclass") =>
        {
            Some(Hint::Decl(match expr.as_ref() {
                Expr::Value(_) if !matches!(expr.as_ref(), Expr::Value(v) if matches!(v.value, Value::Number(..))) => {
                    "INT8"
                }
                _ => "TEXT",
            }))
        }
        Expr::Interval(_)
        | Expr::Cast {
            data_type: sqlparser::ast::DataType::Interval { .. },
            ..
        } => Some(Hint::Decl("INTERVAL")),
        Expr::Cast { data_type, .. } if array_hint(data_type).is_some() => array_hint(data_type),
        Expr::Cast { data_type, .. } => Some(Hint::Decl(
            crate::casts::Target::parse(&data_type.to_string()).map_or_else(
                |_| match ColumnType::of(&data_type.to_string()) {
                    ColumnType::Integer => "INT8",
                    ColumnType::Real => "REAL",
                    ColumnType::Boolean => "BOOLEAN",
                    ColumnType::Blob => "BLOB",
                    ColumnType::Json | ColumnType::Text => "TEXT",
                },
                |t| crate::typing::pgtypes::decl_for_type(&t.ty),
            ),
        )),
        Expr::Value(v) => match &v.value {
            Value::Number(n, _) if n.contains(['.', 'e', 'E']) => Some(Hint::Decl("REAL")),
            Value::Number(..) => Some(Hint::Decl("INTEGER")),
            Value::SingleQuotedString(_) => Some(Hint::Decl("TEXT")),
            _ => None,
        },
        Expr::Function(f) => {
            let name = f.name.to_string().to_ascii_lowercase();
            match name.as_str() {
                "count" | "length" | "changes" | "total_changes" | "last_insert_rowid"
                | "instr" | "unicode" | "random" => Some(Hint::Decl("INTEGER")),
                "avg" | "total" | "date_part" => Some(Hint::Decl("REAL")),
                "now" | "current_timestamp" | "transaction_timestamp" | "statement_timestamp" => {
                    Some(Hint::Decl("TIMESTAMPTZ"))
                }
                "lower" | "upper" | "substr" | "trim" | "ltrim" | "rtrim" | "replace"
                | "group_concat" | "string_agg" | "typeof" | "hex" | "quote" | "printf"
                | "format" | "repeat" | "lpad" | "rpad" | "left" | "right" | "split_part"
                | "md5" => Some(Hint::Decl("TEXT")),
                "strpos" => Some(Hint::Decl("INT4")),
                // PostgreSQL sums 2- and 4-byte integers into a bigint.
                "sum" => column_arg(f).map(Hint::Sum),
                // The type of its timestamp argument (text is a timestamp).
                "date_trunc" => {
                    nth_arg(f, 1)
                        .and_then(|a| expr_hint(a, derived))
                        .map(|h| match h {
                            Hint::Decl("TEXT") => Hint::Decl("TIMESTAMP"),
                            h => h,
                        })
                }
                "min" | "max" | "abs" | "greatest" | "least" => first_arg(f)
                    .and_then(|a| expr_hint(a, derived))
                    .or_else(|| column_arg(f).map(Hint::Column)),
                "bool_and" | "bool_or" | "every" => Some(Hint::Decl("BOOLEAN")),
                // `array_agg` runs as `json_group_array` (see
                // `classify::catalog_sql`); its element type from its argument.
                "array_agg" => Some(Hint::Array(Box::new(
                    first_arg(f)
                        .and_then(|a| expr_hint(a, derived))
                        .unwrap_or(Hint::Decl("TEXT")),
                ))),
                _ => None,
            }
        }
        Expr::BinaryOp { op, left, right } => {
            use sqlparser::ast::BinaryOperator as B;
            match op {
                B::StringConcat => Some(Hint::Decl("TEXT")),
                // timestamp ± interval is a timestamp, interval ± interval
                // an interval.
                B::Plus | B::Minus
                    if [left, right]
                        .iter()
                        .any(|x| expr_hint(x, derived) == Some(Hint::Decl("INTERVAL"))) =>
                {
                    match (expr_hint(left, derived), expr_hint(right, derived)) {
                        (Some(Hint::Decl("INTERVAL")), Some(Hint::Decl("INTERVAL"))) => {
                            Some(Hint::Decl("INTERVAL"))
                        }
                        (Some(Hint::Decl("INTERVAL")), other) | (other, _) => {
                            other.map(|h| Hint::Shifted(Box::new(h)))
                        }
                    }
                }
                // A comparison is a boolean in PostgreSQL.
                B::Eq
                | B::NotEq
                | B::Lt
                | B::Gt
                | B::LtEq
                | B::GtEq
                | B::And
                | B::Or
                | B::AtArrow
                | B::ArrowAt
                | B::Question
                | B::QuestionPipe
                | B::QuestionAnd => Some(Hint::Decl("BOOLEAN")),
                _ => expr_hint(left, derived).or_else(|| expr_hint(right, derived)),
            }
        }
        _ => None,
    }
}
