"""psycopg: one row of every type sent as text (%t) and one sent as binary
(%b). Both must be accepted and read back equal.

usage: types_roundtrip.py PORT
"""
import datetime as dt
import sys
import uuid
from decimal import Decimal

import psycopg
from psycopg.types.json import Json, Jsonb
from psycopg.types.numeric import Float4, Int2, Int4, Int8

port = int(sys.argv[1])
COLUMNS = "i2, i4, i8, f4, f8, num, b, raw, t, vc, d, tm, ts, tstz, u, j, jb"
VALUES = [
    Int2(-7), Int4(123456), Int8(2**40), Float4(1.5), 2.25, Decimal("12.340"),
    True, b"\x00\xffbin", "héllo", "vc", dt.date(2024, 1, 2), dt.time(3, 4, 5, 678000),
    dt.datetime(2024, 1, 2, 3, 4, 5, 678000),
    dt.datetime(2024, 1, 2, 5, 4, 5, 678000, tzinfo=dt.timezone(dt.timedelta(hours=2))),
    uuid.UUID("550e8400-e29b-41d4-a716-446655440000"), Json({"a": [1, 2]}), Jsonb({"b": None}),
]

with psycopg.connect(host="127.0.0.1", port=port, user="test", dbname="test",
                     autocommit=True) as conn:
    conn.execute("SET tributary.read_consistency = 'session'")
    for fmt, mark in (("text", "%t"), ("binary", "%b")):
        marks = ", ".join([mark] * len(VALUES))
        conn.execute(f"INSERT INTO vals (fmt, {COLUMNS}) VALUES ('{fmt}', {marks})", VALUES)
    rows = {
        r[0]: r[1:]
        for r in conn.execute(f"SELECT fmt, {COLUMNS} FROM vals WHERE fmt IN ('text', 'binary')")
    }
    if rows["text"] != rows["binary"]:
        for name, a, b in zip(COLUMNS.split(", "), rows["text"], rows["binary"]):
            if a != b:
                print(f"{name}: text {a!r} != binary {b!r}", file=sys.stderr)
        sys.exit(1)
    # A value psycopg cannot make valid is refused, not stored.
    try:
        conn.execute("INSERT INTO vals (fmt, d) VALUES ('bad', %t::text::date)", ["not a date"])
    except psycopg.errors.Error:
        pass
print("ok")
