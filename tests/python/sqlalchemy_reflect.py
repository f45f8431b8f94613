"""SQLAlchemy's reflection against a router: inspect()'s columns, primary
key, indexes, unique constraints and foreign keys, and Table(autoload_with)
and MetaData.reflect(), reported as PostgreSQL would for the same DDL.

usage: sqlalchemy_reflect.py PORT
"""
import sys

import sqlalchemy as sa

port = sys.argv[1]
engine = sa.create_engine(f"postgresql+psycopg://t@127.0.0.1:{port}/t")
with engine.begin() as conn:
    conn.execute(sa.text("CREATE TABLE owner (id integer PRIMARY KEY, code varchar(8) UNIQUE)"))
    conn.execute(sa.text(
        "CREATE TABLE refl (id BIGINT PRIMARY KEY, qty integer NOT NULL DEFAULT 3, "
        "price NUMERIC(10, 2), name VARCHAR(40), small smallint, at TIMESTAMPTZ, "
        "owner_id integer REFERENCES owner (id) ON DELETE CASCADE, UNIQUE (name, small))"
    ))
    conn.execute(sa.text("CREATE INDEX refl_at ON refl (at)"))
insp = sa.inspect(engine)
cols = {c["name"]: c for c in insp.get_columns("refl")}
assert list(cols) == ["id", "qty", "price", "name", "small", "at", "owner_id"], list(cols)
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
pk = insp.get_pk_constraint("refl")
assert pk["constrained_columns"] == ["id"] and pk["name"] == "refl_pkey", pk
uniques = insp.get_unique_constraints("refl")
assert [(u["name"], u["column_names"]) for u in uniques] == [
    ("refl_name_small_key", ["name", "small"])], uniques
indexes = {i["name"]: i for i in insp.get_indexes("refl")}
assert indexes["refl_at"]["column_names"] == ["at"] and not indexes["refl_at"]["unique"], indexes
assert "duplicates_constraint" not in indexes["refl_at"], indexes
fks = insp.get_foreign_keys("refl")
assert [(f["constrained_columns"], f["referred_table"], f["referred_columns"], f["options"])
        for f in fks] == [(["owner_id"], "owner", ["id"], {"ondelete": "CASCADE"})], fks
table = sa.Table("refl", sa.MetaData(), autoload_with=engine)
assert table.c.owner_id.references(sa.Table("owner", table.metadata, autoload_with=engine).c.id)
meta = sa.MetaData()
meta.reflect(engine)
assert sorted(meta.tables) == ["owner", "refl"], sorted(meta.tables)
print("ok")
