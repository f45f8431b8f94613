"""Schema statements inside transaction blocks, as psycopg's default
(non-autocommit) mode sends them: the
block's DDL and rows commit together or not at all, statements later in the
block see the block's own schema (parameters and result columns described
on it), and a rolled-back block leaves no table behind.

usage: ddl_in_block.py PORT
"""
import sys

import psycopg

port = sys.argv[1]
dsn = f"host=127.0.0.1 port={port} user=t dbname=t"

# psycopg's default mode: every execute() runs inside BEGIN.
conn = psycopg.connect(dsn)
conn.execute("CREATE TABLE blk (id SERIAL PRIMARY KEY, name TEXT NOT NULL, n INTEGER)")
conn.execute("INSERT INTO blk (name, n) VALUES (%s, %s)", ("a", 1))
conn.execute("ALTER TABLE blk ADD COLUMN note TEXT")
conn.execute("UPDATE blk SET note = %s WHERE name = %s", ("seen", "a"))
conn.execute("CREATE TABLE hist (what TEXT)")  # no key: a hidden one
conn.execute("INSERT INTO hist VALUES (%s)", ("created",))
# Read back inside the block, with parameters, on the block's schema.
row = conn.execute("SELECT name, n, note FROM blk WHERE n = %s", (1,)).fetchone()
assert row == ("a", 1, "seen"), row
cols = [d.name for d in conn.execute("SELECT * FROM hist").description]
assert cols == ["what"], cols
conn.commit()

# Another connection sees all of it after COMMIT.
with psycopg.connect(dsn, autocommit=True) as other:
    rows = other.execute("SELECT name, n, note FROM blk").fetchall()
    assert rows == [("a", 1, "seen")], rows
    assert other.execute("SELECT what FROM hist").fetchall() == [("created",)]

# A block that creates a table and fails leaves nothing behind.
conn.execute("CREATE TABLE gone (id INTEGER PRIMARY KEY)")
conn.execute("INSERT INTO gone VALUES (1)")
try:
    conn.execute("INSERT INTO blk (name) VALUES (NULL)")
    raise SystemExit("NOT NULL was not enforced")
except psycopg.errors.NotNullViolation:
    conn.rollback()
try:
    conn.execute("SELECT * FROM gone")
    raise SystemExit("the rolled-back table exists")
except psycopg.errors.UndefinedTable:
    conn.rollback()

# A savepoint rolled back undoes the DDL after it.
with conn.transaction():
    conn.execute("INSERT INTO blk (name, n) VALUES ('b', 2)")
    try:
        with conn.transaction():
            conn.execute("DROP TABLE hist")
            raise KeyError("undo the drop")
    except KeyError:
        pass
    assert conn.execute("SELECT count(*) FROM hist").fetchone() == (1,)

print("ok")
