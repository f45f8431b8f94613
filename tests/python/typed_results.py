"""psycopg reads date/time, UUID, JSON, integer and numeric columns as
Python objects, in text and binary format, and its typed parameters find
literal-written rows.

usage: typed_results.py PORT
"""
import datetime
import decimal
import sys
import uuid

import psycopg

port = sys.argv[1]
conn = psycopg.connect(f"host=127.0.0.1 port={port} user=t dbname=t", autocommit=True)
conn.execute(
    "CREATE TABLE tr (id INTEGER PRIMARY KEY, at TIMESTAMP, tz TIMESTAMPTZ, d DATE, t TIME, u UUID, j JSONB)"
)
conn.execute(
    "INSERT INTO tr VALUES (1, '2024-01-02 03:04:05.5', '2024-01-02 05:04:05+02', '2024-1-2', '03:04', "
    "'550E8400-E29B-41D4-A716-446655440000', '{\"k\": [1, 2]}')"
)
want = (
    datetime.datetime(2024, 1, 2, 3, 4, 5, 500000),
    datetime.datetime(2024, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc),
    datetime.date(2024, 1, 2),
    datetime.time(3, 4),
    uuid.UUID("550e8400-e29b-41d4-a716-446655440000"),
    {"k": [1, 2]},
)
for binary in (False, True):
    row = conn.execute(
        "SELECT at, tz, d, t, u, j FROM tr WHERE d = %s AND u = %s",
        (datetime.date(2024, 1, 2), uuid.UUID("550e8400-e29b-41d4-a716-446655440000")),
        binary=binary,
    ).fetchone()
    assert row == want, (binary, row)
conn.execute("CREATE TABLE nums (id INTEGER PRIMARY KEY, a integer, s smallint, n NUMERIC(10, 2))")
conn.execute("INSERT INTO nums VALUES (1, 7, -2, 12.25)")
conn.execute("INSERT INTO nums VALUES (2, %s, %s, %s)", (2**31 - 1, 5, decimal.Decimal("0.10")))
for binary in (False, True):
    cur = conn.execute("SELECT a, s, n, sum(a) FROM nums WHERE id < 3 GROUP BY id ORDER BY id", binary=binary)
    # int4/int2/numeric as PostgreSQL describes them; sum(int4) is bigint.
    assert [d.type_code for d in cur.description] == [23, 21, 1700, 20], cur.description
    rows = cur.fetchall()
    assert rows == [(7, -2, decimal.Decimal("12.25"), 7),
                    (2**31 - 1, 5, decimal.Decimal("0.1"), 2**31 - 1)], (binary, rows)
    assert all(isinstance(r[2], decimal.Decimal) for r in rows)
    # numeric(10,2) keeps its scale, as PostgreSQL prints it.
    assert [str(r[2]) for r in rows] == ["12.25", "0.10"], (binary, rows)
# Written values are rounded to the scale (half away from zero); too many
# integer digits is numeric field overflow.
conn.execute("INSERT INTO nums VALUES (3, 0, 0, 1.005)")
assert str(conn.execute("SELECT n FROM nums WHERE id = 3").fetchone()[0]) == "1.01"
try:
    conn.execute("INSERT INTO nums VALUES (4, 0, 0, 123456789)")
    raise AssertionError("numeric(10,2) took 123456789")
except psycopg.errors.NumericValueOutOfRange:
    pass
# Arrays: lists in text and binary, one stored form (a JSON array, so
# `= ANY(column)` and change events read it), a list parameter for ANY.
conn.execute("CREATE TABLE arrs (id integer PRIMARY KEY, tags text[], nums integer[], ok boolean[])")
conn.execute("INSERT INTO arrs VALUES (%s, %s, %s, %s)", (1, ["a", "b c"], [1, 2], [True]))
conn.execute("INSERT INTO arrs VALUES (%s, %b, %b, %b)", (2, ["x", None], [3], [False, True]))
conn.execute("INSERT INTO arrs VALUES (3, ARRAY['q'], '{4,5}', '{t}')")
for binary in (False, True):
    rows = conn.execute("SELECT id, tags, nums, ok FROM arrs ORDER BY id", binary=binary).fetchall()
    assert rows == [(1, ["a", "b c"], [1, 2], [True]), (2, ["x", None], [3], [False, True]),
                    (3, ["q"], [4, 5], [True])], (binary, rows)
assert conn.execute("SELECT id FROM arrs WHERE id = ANY(%s) ORDER BY id", ([1, 3],)).fetchall() == [(1,), (3,)]
assert conn.execute("SELECT id FROM arrs WHERE 4 = ANY(nums)").fetchall() == [(3,)]
assert conn.execute("SELECT id FROM arrs WHERE tags = %s", (["x", None],)).fetchall() == [(2,)]
try:
    conn.execute("INSERT INTO arrs (id, nums) VALUES (4, '{1,x}')")
    raise AssertionError("an int[] took x")
except psycopg.errors.InvalidTextRepresentation:
    pass
# A numeric SQLite would round (it keeps an integer or a double) is refused,
# as a parameter in text or binary and as a literal, never stored rounded.
conn.execute("CREATE TABLE wide (id INTEGER PRIMARY KEY, x numeric)")
for attempt in (
    lambda: conn.execute("INSERT INTO wide VALUES (1, %s)", (decimal.Decimal("12345678901234567.89"),)),
    lambda: conn.execute("INSERT INTO wide VALUES (1, %b)", (decimal.Decimal("12345678901234567.89"),)),
    lambda: conn.execute("INSERT INTO wide VALUES (1, 12345678901234567.89)"),
):
    try:
        attempt()
        raise AssertionError("a 19-digit numeric was stored")
    except psycopg.errors.FeatureNotSupported:
        pass
conn.execute("INSERT INTO wide VALUES (2, %s)", (decimal.Decimal("1234567890.12345"),))
assert conn.execute("SELECT x FROM wide").fetchall() == [(decimal.Decimal("1234567890.12345"),)]
try:
    conn.execute("UPDATE nums SET s = 40000 WHERE id = 1")
    raise AssertionError("a smallint took 40000")
except psycopg.errors.NumericValueOutOfRange:
    pass
# Intervals: literals and casts come back as timedelta (text and binary),
# timestamp ± interval is a timestamp shifted as PostgreSQL shifts it (typed
# so where the statement is described: a parameter makes psycopg use the
# extended protocol).
for binary in (False, True):
    row = conn.execute(
        "SELECT interval '1 day 2 hours', '90 minutes'::interval, "
        "at + interval '1 month', d - interval '1 day' FROM tr WHERE id = %s",
        (1,),
        binary=binary,
    ).fetchone()
    assert row == (
        datetime.timedelta(days=1, hours=2),
        datetime.timedelta(minutes=90),
        datetime.datetime(2024, 2, 2, 3, 4, 5, 500000),
        datetime.datetime(2024, 1, 1, 0, 0),
    ), (binary, row)
try:
    conn.execute("CREATE TABLE iv (id INTEGER PRIMARY KEY, dur INTERVAL)")
    raise AssertionError("an interval column was created")
except psycopg.errors.FeatureNotSupported:
    pass
print("ok")
