"""psycopg 3 nested transactions against a router: each inner
`transaction()` is a SAVEPOINT; an inner block that raises is rolled back to
its savepoint and the outer block commits the rest.

usage: savepoints.py PORT
"""
import sys

import psycopg

port = sys.argv[1]
dsn = f"host=127.0.0.1 port={port} user=t dbname=t"
with psycopg.connect(dsn, autocommit=True) as ddl:
    ddl.execute("CREATE TABLE sp (id INTEGER PRIMARY KEY, note TEXT)")
conn = psycopg.connect(dsn)


class Boom(Exception):
    pass


with conn.transaction():
    conn.execute("INSERT INTO sp VALUES (1, 'outer')")
    try:
        with conn.transaction():
            conn.execute("INSERT INTO sp VALUES (2, 'inner, undone')")
            raise Boom()
    except Boom:
        pass
    with conn.transaction():
        conn.execute("INSERT INTO sp VALUES (3, 'inner, kept')")
        try:
            with conn.transaction():
                # A failing statement inside a nested block: its savepoint
                # is rolled back and the outer blocks carry on.
                conn.execute("INSERT INTO sp VALUES (1, 'duplicate')")
        except psycopg.errors.UniqueViolation:
            pass
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO sp VALUES (%s, %s)", [(10, "many"), (11, "many"), (12, "many")]
        )

rows = conn.execute("SELECT id, note FROM sp ORDER BY id").fetchall()
want = [(1, "outer"), (3, "inner, kept"), (10, "many"), (11, "many"), (12, "many")]
assert rows == want, rows

# The default (non-autocommit) mode: an error, then rollback(), then work.
try:
    conn.execute("INSERT INTO sp VALUES (1, 'again')")
except psycopg.errors.UniqueViolation:
    conn.rollback()
conn.execute("INSERT INTO sp VALUES (20, 'after rollback')")
conn.commit()
n = conn.execute("SELECT count(*) FROM sp").fetchone()[0]
assert n == 6, n
print("ok")
