//! PostgreSQL's names for result columns where they differ from SQLite's
//! (`count`, not `count(*)`; `?column?` for other expressions).

use sqlparser::ast::{Expr, SetExpr, Statement};

/// PostgreSQL's names for a plain SELECT's unaliased result columns where
/// they differ from SQLite's: a function call is named after the function
/// (`count`, not `count(*)`), another expression `?column?`; plain column
/// references and aliases keep SQLite's name (`None`). `None` overall when
/// a `*` makes the positions unknowable.
/// The same for a write's RETURNING list.
pub fn column_names_of(stmt: &Statement) -> Option<Vec<Option<String>>> {
    use sqlparser::ast::SelectItem;
    let items = match stmt {
        Statement::Query(q) => match q.body.as_ref() {
            SetExpr::Select(select) => &select.projection,
            _ => return None,
        },
        Statement::Insert(i) => i.returning.as_ref()?,
        Statement::Update(u) => u.returning.as_ref()?,
        Statement::Delete(d) => d.returning.as_ref()?,
        _ => return None,
    };
    items
        .iter()
        .map(|item| match item {
            SelectItem::UnnamedExpr(e) => Some(pg_name(e)),
            SelectItem::ExprWithAlias { .. } => Some(None),
            _ => None,
        })
        .collect()
}

fn pg_name(e: &Expr) -> Option<String> {
    match e {
        Expr::Identifier(_) | Expr::CompoundIdentifier(_) => None,
        // PostgreSQL names a cast after the column or function it casts,
        // else after the type (`'t'::regclass` is `regclass`).
        Expr::Cast {
            expr, data_type, ..
        } => match expr.as_ref() {
            Expr::Identifier(i) => Some(i.value.clone()),
            Expr::CompoundIdentifier(parts) => parts.last().map(|i| i.value.clone()),
            inner @ (Expr::Function(_) | Expr::Cast { .. } | Expr::Nested(_)) => pg_name(inner),
            _ => Some(
                crate::casts::Target::parse(&data_type.to_string()).map_or_else(
                    |_| {
                        let t = data_type.to_string().to_ascii_lowercase();
                        t.rsplit('.').next().unwrap_or(&t).to_owned()
                    },
                    |t| t.ty.name().to_owned(),
                ),
            ),
        },
        Expr::Nested(inner) => pg_name(inner),
        Expr::Function(f) => f
            .name
            .0
            .last()
            .and_then(|p| p.as_ident())
            .map(|i| i.value.to_lowercase()),
        Expr::Extract { .. } => Some("extract".to_owned()),
        Expr::Substring { .. } => Some("substring".to_owned()),
        Expr::Position { .. } => Some("position".to_owned()),
        _ => Some("?column?".to_owned()),
    }
}
