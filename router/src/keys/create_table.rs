//! `CREATE TABLE` as SQLite runs it with cluster-wide keys: generated key
//! columns become a rowid alias the router fills from its ranges, a table
//! without a key gets the hidden one, storage options are dropped, and
//! PostgreSQL's integer widths are kept in the declared types.

use sqlparser::ast::{Ident, Statement};

use crate::error::Result;

/// `SERIAL`, `BIGSERIAL`, `SMALLSERIAL` and `GENERATED … AS IDENTITY`
/// columns become SQLite's `INTEGER PRIMARY KEY`, whose missing keys the
/// router generates cluster-wide (see `keys`). Returns the CREATE TABLE to
/// run instead, if anything changed.
pub fn translate_create_table(ct: &sqlparser::ast::CreateTable) -> Result<Option<String>> {
    use crate::classify::{expr_text, object_name, unsupported};
    use sqlparser::ast::{ColumnOption, DataType, GeneratedAs, TableConstraint};
    let is_serial = |t: &DataType| {
        matches!(t, DataType::Custom(name, args) if args.is_empty()
            && matches!(object_name(name).to_ascii_lowercase().as_str(),
                "serial" | "bigserial" | "smallserial" | "serial2" | "serial4" | "serial8"))
    };
    let is_identity = |o: &ColumnOption| {
        matches!(
            o,
            ColumnOption::Generated {
                generated_as: GeneratedAs::Always | GeneratedAs::ByDefault,
                generation_expr: None,
                ..
            }
        )
    };
    let table_pk: Vec<String> = ct
        .constraints
        .iter()
        .filter_map(|c| match c {
            TableConstraint::PrimaryKey(pk) => Some(
                pk.columns
                    .iter()
                    .map(|c| expr_text(&c.column.expr))
                    .collect::<Vec<_>>(),
            ),
            _ => None,
        })
        .next()
        .unwrap_or_default();
    if let Some(c) = ct
        .columns
        .iter()
        .find(|c| matches!(c.data_type, DataType::Interval { .. }))
    {
        return Err(unsupported(
            format!("the interval column {}", c.name.value),
            "store a duration as seconds (bigint) or text; interval literals, casts and timestamp ± interval work",
        ));
    }
    let mut out = ct.clone();
    let mut changed = crate::foreign_key::immediate(&mut out);
    let sole_pk = |col: &sqlparser::ast::ColumnDef| {
        let own_pk = col
            .options
            .iter()
            .any(|o| matches!(o.option, ColumnOption::PrimaryKey(_)));
        (own_pk && table_pk.is_empty())
            || (table_pk.len() == 1 && table_pk[0].eq_ignore_ascii_case(&col.name.value))
    };
    for col in &mut out.columns {
        // SQLite's `INTEGER PRIMARY KEY` is the 64-bit rowid: it stays.
        if matches!(col.data_type, DataType::Integer(_)) && sole_pk(col) {
            continue;
        }
        if let Some(t) = integer_width(&col.data_type) {
            col.data_type = t;
            changed = true;
        }
    }
    // SQLite takes an expression default only in parentheses (PostgreSQL's
    // `DEFAULT now()`); the router evaluates it while speculating and the
    // record carries the value, so replicas never do.
    for col in &mut out.columns {
        for o in &mut col.options {
            if let ColumnOption::Default(e) = &mut o.option
                && !matches!(
                    e,
                    sqlparser::ast::Expr::Value(_) | sqlparser::ast::Expr::Nested(_)
                )
            {
                *e = sqlparser::ast::Expr::Nested(Box::new(e.clone()));
                changed = true;
            }
        }
    }
    // Storage hints (`WITH (fillfactor = …)`) mean nothing to SQLite.
    if !matches!(out.table_options, sqlparser::ast::CreateTableOptions::None) {
        out.table_options = sqlparser::ast::CreateTableOptions::None;
        changed = true;
    }
    let has_pk = !table_pk.is_empty()
        || ct.columns.iter().any(|c| {
            c.options
                .iter()
                .any(|o| matches!(o.option, ColumnOption::PrimaryKey(_)))
        });
    if !has_pk {
        // A hidden, cluster-unique row key (see `replica::run_ddl`).
        if ct
            .columns
            .iter()
            .any(|c| replica::is_hidden_column(&c.name.value))
        {
            return Err(unsupported(
                format!("a column named {}", replica::HIDDEN_KEY),
                "the name is Tributary's hidden row key",
            ));
        }
        out.columns.push(sqlparser::ast::ColumnDef {
            name: Ident::new(replica::HIDDEN_KEY),
            data_type: DataType::Integer(None),
            options: vec![sqlparser::ast::ColumnOptionDef {
                name: None,
                option: ColumnOption::PrimaryKey(sqlparser::ast::PrimaryKeyConstraint {
                    name: None,
                    index_name: None,
                    index_type: None,
                    columns: Vec::new(),
                    include: Vec::new(),
                    index_options: Vec::new(),
                    characteristics: None,
                }),
            }],
        });
        changed = true;
    }
    for col in &mut out.columns {
        let serial = is_serial(&col.data_type);
        let identity = col.options.iter().any(|o| is_identity(&o.option));
        if !serial && !identity {
            continue;
        }
        if !sole_pk(col) {
            return Err(unsupported(
                format!(
                    "generated column {} outside the primary key",
                    col.name.value
                ),
                "SERIAL and GENERATED … AS IDENTITY are supported as a table's single-column primary key",
            ));
        }
        col.data_type = DataType::Integer(None);
        col.options.retain(|o| !is_identity(&o.option));
        changed = true;
    }
    Ok(changed.then(|| Statement::CreateTable(out).to_string()))
}

/// PostgreSQL's `smallint` and `integer` (`int`, `int4`, `int2`) declared
/// as `INT2`/`INT4`: SQLite stores them as it stores any integer, and the
/// router reports and range-checks them as int2/int4 (`typing`). Other
/// integer types keep their name, and report int8.
pub(crate) fn integer_width(t: &sqlparser::ast::DataType) -> Option<sqlparser::ast::DataType> {
    use sqlparser::ast::DataType;
    match t {
        DataType::Int(_) | DataType::Integer(_) | DataType::Int4(_) => Some(DataType::Int4(None)),
        DataType::SmallInt(_) | DataType::Int2(_) => Some(DataType::Int2(None)),
        // `integer[]` is int4[] too.
        DataType::Array(sqlparser::ast::ArrayElemTypeDef::SquareBracket(elem, size)) => {
            integer_width(elem).map(|e| {
                DataType::Array(sqlparser::ast::ArrayElemTypeDef::SquareBracket(
                    Box::new(e),
                    *size,
                ))
            })
        }
        _ => None,
    }
}
