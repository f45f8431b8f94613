"""psycopg 3 COPY against a router: rows in (text and CSV, NULLs,
escapes, quoted fields), rows out, and a failed COPY that leaves nothing.

usage: copy_rows.py PORT
"""
import sys

import psycopg

port = sys.argv[1]
dsn = f"host=127.0.0.1 port={port} user=t dbname=t"
with psycopg.connect(dsn, autocommit=True) as conn:
    conn.execute("CREATE TABLE cp (id INTEGER PRIMARY KEY, name TEXT, note TEXT)")
    rows = [(i, f"name {i}", None if i % 3 == 0 else f"tab\there, line\nbreak {i}") for i in range(1, 2001)]
    with conn.cursor() as cur:
        with cur.copy("COPY cp (id, name, note) FROM STDIN") as copy:
            for r in rows:
                copy.write_row(r)
    n = conn.execute("SELECT count(*) FROM cp").fetchone()[0]
    assert n == 2000, n
    got = conn.execute("SELECT id, name, note FROM cp WHERE id IN (1, 3) ORDER BY id").fetchall()
    assert got == [rows[0], rows[2]], got

    with conn.cursor() as cur:
        with cur.copy("COPY cp FROM STDIN WITH (FORMAT csv, HEADER true)") as copy:
            copy.write('id,name,note\n5000,"quoted, name",""\n5001,plain,\n')
    got = conn.execute("SELECT name, note FROM cp WHERE id >= 5000 ORDER BY id").fetchall()
    assert got == [("quoted, name", ""), ("plain", None)], got

    out = []
    with conn.cursor() as cur:
        with cur.copy("COPY (SELECT id, note FROM cp WHERE id <= 3 ORDER BY id) TO STDOUT") as copy:
            for row in copy.rows():
                out.append(row)
    assert out == [("1", rows[0][2]), ("2", rows[1][2]), ("3", None)], out

    # A duplicate key fails the whole COPY: nothing of it is written.
    try:
        with conn.cursor() as cur:
            with cur.copy("COPY cp (id, name) FROM STDIN") as copy:
                copy.write_row((6000, "new"))
                copy.write_row((1, "duplicate"))
        raise SystemExit("the duplicate should have failed")
    except psycopg.errors.UniqueViolation:
        pass
    n = conn.execute("SELECT count(*) FROM cp WHERE id = 6000").fetchone()[0]
    assert n == 0, n
print("ok")
