use super::*;
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::Parser;
use wal_bus::Method;

fn placement() -> Placement {
    let mut p = Placement {
        groups: vec![vec!["r1".into()], vec!["r2".into()], vec!["r3".into()]],
        ..Default::default()
    };
    p.tables.insert(
        "orders".into(),
        TablePlacement {
            column: "cid".into(),
            method: Method::Hash { shards: 8 },
        },
    );
    p
}

fn analysis(sql: &str, params: &[SqlValue]) -> Analysis {
    let stmt = Parser::parse_sql(&PostgreSqlDialect {}, sql)
        .expect("parses")
        .remove(0);
    analyze(&placement(), &stmt, params)
}

#[test]
fn pins_writes_by_shard_key_equality_in_list_and_values() {
    let p = placement();
    let g = |sql: &str, params: &[SqlValue]| analysis(sql, params).groups(&p, Some("INTEGER"));
    let one =
        |v: i64| replica::placement::group_of_value(&p, &p.tables["orders"], &Value::Integer(v));
    assert_eq!(
        g("UPDATE orders SET q = 1 WHERE cid = 5 AND q > 2", &[]),
        Some([one(5)].into())
    );
    assert_eq!(
        g(
            "DELETE FROM orders o WHERE o.cid = $1",
            &[SqlValue::Integer(9)]
        ),
        Some([one(9)].into())
    );
    assert_eq!(
        g("UPDATE orders SET q = 1 WHERE x.cid = 5", &[]),
        None,
        "another table's column"
    );
    assert_eq!(
        g("UPDATE orders SET q = 1 WHERE cid = 5 OR cid = 6", &[]),
        None
    );
    assert_eq!(g("UPDATE orders SET q = 1 WHERE cid > 5", &[]), None);
    assert_eq!(
        g("INSERT INTO orders (cid, q) VALUES (1, 1), (2, 2)", &[]),
        Some([one(1), one(2)].into())
    );
    assert_eq!(
        g("INSERT INTO orders VALUES (1, 1)", &[]),
        None,
        "no column list"
    );
    assert_eq!(
        g("INSERT INTO public.\"orders\" (cid, q) VALUES (3, 1)", &[]),
        Some([one(3)].into()),
        "schema-qualified and quoted"
    );
    assert_eq!(
        analysis("INSERT INTO public.orders (cid) VALUES (1)", &[])
            .target
            .as_deref(),
        Some("orders")
    );
    assert_eq!(
        g("UPDATE orders SET q = 1 WHERE cid IN ('7', 8)", &[]),
        Some([one(7), one(8)].into())
    );
    assert_eq!(
        analysis("UPDATE products SET p = 1", &[]).sharded,
        Vec::<String>::new()
    );
}

#[test]
fn converts_keys_only_where_sqlite_storage_is_certain() {
    assert_eq!(
        stored_as(&Value::Text("12".into()), "INTEGER"),
        Some(Value::Integer(12))
    );
    assert_eq!(stored_as(&Value::Text(" 12".into()), "INTEGER"), None);
    assert_eq!(stored_as(&Value::Text("1.5".into()), "BIGINT"), None);
    assert_eq!(
        stored_as(&Value::Integer(12), "TEXT"),
        Some(Value::Text("12".into()))
    );
    assert_eq!(stored_as(&Value::Real(1.5), "VARCHAR(10)"), None);
    assert_eq!(
        stored_as(&Value::Text("a0eebc99-9c0b".into()), "UUID"),
        Some(Value::Text("a0eebc99-9c0b".into()))
    );
    assert_eq!(
        stored_as(&Value::Text("12".into()), "NUMERIC"),
        Some(Value::Integer(12))
    );
}
