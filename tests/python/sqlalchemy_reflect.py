"""SQLAlchemy's reflection against a router: inspect().get_columns() reads
pg_attribute, format_type and pg_attrdef, and reports each column's type,
nullability and default as PostgreSQL would for the same DDL.

usage: sqlalchemy_reflect.py PORT
"""
import sys

import sqlalchemy as sa

port = sys.argv[1]
engine = sa.create_engine(f"postgresql+psycopg://t@127.0.0.1:{port}/t")
with engine.begin() as conn:
    conn.execute(sa.text(
        "CREATE TABLE refl (id BIGINT PRIMARY KEY, qty integer NOT NULL DEFAULT 3, "
        "price NUMERIC(10, 2), name VARCHAR(40), small smallint, at TIMESTAMPTZ)"
    ))
cols = {c["name"]: c for c in sa.inspect(engine).get_columns("refl")}
assert list(cols) == ["id", "qty", "price", "name", "small", "at"], list(cols)
assert isinstance(cols["id"]["type"], sa.BIGINT) and not cols["id"]["nullable"], cols["id"]
assert isinstance(cols["qty"]["type"], sa.INTEGER), cols["qty"]
assert cols["qty"]["default"] == "3" and not cols["qty"]["nullable"], cols["qty"]
assert isinstance(cols["price"]["type"], sa.NUMERIC), cols["price"]
assert (cols["price"]["type"].precision, cols["price"]["type"].scale) == (10, 2)
assert isinstance(cols["name"]["type"], sa.VARCHAR) and cols["name"]["type"].length == 40
assert isinstance(cols["small"]["type"], sa.SMALLINT), cols["small"]
assert isinstance(cols["at"]["type"], sa.TIMESTAMP) and cols["at"]["type"].timezone, cols["at"]
assert cols["name"]["nullable"] and cols["name"]["default"] is None
assert sa.inspect(engine).has_table("refl") and not sa.inspect(engine).has_table("nope")
print("ok")
