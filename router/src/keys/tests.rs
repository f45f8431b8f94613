//! Generated keys: INSERT rewrites, NULL-key checks, SERIAL/IDENTITY translation.

use super::*;

fn db() -> Connection {
    let c = Connection::open_in_memory().expect("open");
    c.execute_batch(
        "CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT);
         CREATE TABLE kv (k BIGINT PRIMARY KEY, v TEXT);",
    )
    .expect("schema");
    c
}

fn rw(sql: &str) -> Option<String> {
    rewrite_insert(&db(), sql).expect("rewrite")
}

#[test]
fn inserts_without_a_key_get_generated_ones() {
    assert_eq!(
        rw("INSERT INTO items (name) VALUES ('a'), ($1)").as_deref(),
        Some(
            "INSERT INTO items (name, id) VALUES ('a', tributary_next_id('items')), ($1, tributary_next_id('items'))"
        )
    );
    assert_eq!(
        rw("INSERT INTO items VALUES (DEFAULT, 'a') RETURNING id").as_deref(),
        Some("INSERT INTO items VALUES (tributary_next_id('items'), 'a') RETURNING id")
    );
    assert_eq!(
        rw("INSERT INTO items (id, name) VALUES ($1, $2)").as_deref(),
        Some("INSERT INTO items (id, name) VALUES (coalesce($1, tributary_next_id('items')), $2)")
    );
    assert_eq!(
        rw("INSERT INTO items DEFAULT VALUES").as_deref(),
        Some("INSERT INTO items (id) VALUES (tributary_next_id('items'))")
    );
    assert!(
        rw("INSERT INTO items (name) SELECT name FROM items").is_some_and(|s| s.contains(
            "SELECT *, tributary_next_id('items') FROM (SELECT name FROM items) WHERE true"
        ))
    );
}

#[test]
fn keys_sqlite_may_leave_null_are_checked() -> Result<()> {
    let c = db();
    let keys = Keys::default();
    let plan = keys.plan(&c, "INSERT INTO kv (v) VALUES ('a')", true)?;
    assert_eq!(
        plan.null_check.as_ref().map(|c| c.sql.as_str()),
        Some("SELECT 1 FROM \"kv\" WHERE \"k\" IS NULL LIMIT 1")
    );
    assert!(
        keys.plan(&c, "UPDATE kv SET k = NULL", true)?
            .null_check
            .is_some()
    );
    assert!(
        keys.plan(&c, "INSERT INTO items (name) VALUES ('a')", true)?
            .null_check
            .is_none()
    );
    Ok(())
}

#[test]
fn given_keys_and_other_tables_are_left_alone() {
    assert_eq!(rw("INSERT INTO items (id, name) VALUES (7, 'a')"), None);
    assert_eq!(rw("INSERT INTO kv (v) VALUES ('a')"), None);
    assert_eq!(rw("UPDATE items SET name = 'b'"), None);
    assert_eq!(rw("INSERT INTO nosuch (a) VALUES (1)"), None);
}

#[test]
fn the_function_hands_out_reserved_keys_then_reports_a_shortage() -> Result<()> {
    let c = db();
    let keys = Keys::default();
    keys.add("items", 10, 2);
    keys.arm(&c)?;
    let sql = keys
        .plan(&c, "INSERT INTO items (name) VALUES ('a'), ('b')", true)?
        .run
        .expect("rewritten");
    c.execute_batch(&sql)
        .map_err(|e| Error::sqlite("insert", e))?;
    let ids: Vec<i64> = c
        .prepare("SELECT id FROM items ORDER BY id")
        .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
        .map_err(|e| Error::sqlite("read", e))?;
    assert_eq!(ids, vec![10, 11]);
    keys.arm(&c)?;
    assert!(c.execute_batch(&sql).is_err());
    assert_eq!(
        keys.shortage(),
        Some(Shortage {
            table: "items".into(),
            count: BLOCK
        })
    );
    Ok(())
}
