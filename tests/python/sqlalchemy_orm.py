"""SQLAlchemy 2 on psycopg against a router: connect (its version, schema
and pg_type probes), create_all (its pg_class table check), then ORM
session CRUD with the multi-row INSERT … RETURNING it sends.

usage: sqlalchemy_orm.py PORT
"""
import sys

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

port = sys.argv[1]
engine = sa.create_engine(f"postgresql+psycopg://t@127.0.0.1:{port}/t")


class Base(DeclarativeBase):
    pass


class User(Base):
    __tablename__ = "users"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(30))


Base.metadata.create_all(engine)
Base.metadata.create_all(engine)  # the table exists now: nothing to do
with Session(engine) as s:
    s.add_all([User(name="ada"), User(name="bob"), User(name="cy")])
    s.commit()
    ids = [u.id for u in s.scalars(sa.select(User).order_by(User.id))]
    assert len(set(ids)) == 3, ids
    u = s.get(User, ids[0])
    u.name = "ada2"
    s.delete(s.get(User, ids[2]))
    s.commit()
    names = [u.name for u in s.scalars(sa.select(User).order_by(User.id))]
    assert names == ["ada2", "bob"], names
assert sa.inspect(engine).get_table_names() == ["users"], sa.inspect(engine).get_table_names()
print("ok")
