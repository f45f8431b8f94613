"""asyncpg with a pool: connections are acquired and released (the release
runs asyncpg's reset: pg_advisory_unlock_all, CLOSE ALL, UNLISTEN *, RESET
ALL) twice over, nested transactions roll an inner block back to its
savepoint, the generated keys are distinct, and typed values (datetime,
date, UUID) round-trip.

usage: asyncpg_pool.py PORT
"""
import asyncio
import datetime
import sys
import uuid

import asyncpg

port = sys.argv[1]


async def main():
    pool = await asyncpg.create_pool(
        f"postgresql://t@127.0.0.1:{port}/t", min_size=2, max_size=2
    )
    async with pool.acquire() as c:
        await c.execute("CREATE TABLE ap (id SERIAL PRIMARY KEY, name TEXT, n INTEGER)")
    for round in range(3):
        async with pool.acquire() as c:
            await c.execute("INSERT INTO ap (name, n) VALUES ($1, $2)", f"r{round}", round)
            async with c.transaction():
                await c.execute("INSERT INTO ap (name) VALUES ('kept')")
                try:
                    async with c.transaction():
                        await c.execute("INSERT INTO ap (name) VALUES ('undone')")
                        await c.execute("INSERT INTO ap (id, name) VALUES (1, 'dup')")
                except asyncpg.UniqueViolationError:
                    pass
    async with pool.acquire() as c:
        rows = await c.fetch("SELECT id, name, n FROM ap ORDER BY id")
    names = sorted(r["name"] for r in rows)
    assert names == ["kept", "kept", "kept", "r0", "r1", "r2"], names
    assert len({r["id"] for r in rows}) == 6, rows
    assert [r["n"] for r in rows if r["name"].startswith("r")] == [0, 1, 2], rows
    # Typed values: the columns' types are described, so asyncpg sends and
    # gets back a datetime, date and UUID as themselves (binary format).
    async with pool.acquire() as c:
        await c.execute("CREATE TABLE ty (id SERIAL PRIMARY KEY, at TIMESTAMP, d DATE, u UUID)")
        u = uuid.UUID("550e8400-e29b-41d4-a716-446655440000")
        at = datetime.datetime(2024, 1, 2, 3, 4, 5, 123456)
        await c.execute(
            "INSERT INTO ty (at, d, u) VALUES ($1, $2, $3)", at, at.date(), u
        )
        row = await c.fetchrow(
            "SELECT at, d, u FROM ty WHERE d = $1 AND u = $2", at.date(), u
        )
        assert tuple(row) == (at, at.date(), u), row
        # Arrays (asyncpg's type introspection runs for them): lists in
        # and out, binary; `= ANY($1)` and `<> ALL($1::int[])` take a list.
        await c.execute("CREATE TABLE arr (id integer PRIMARY KEY, tags text[], nums integer[])")
        await c.execute("INSERT INTO arr VALUES ($1, $2, $3)", 1, ["a", None, "b c"], [1, 2])
        await c.execute("INSERT INTO arr VALUES ($1, $2, $3)", 2, [], [3])
        rows = await c.fetch("SELECT id, tags, nums FROM arr WHERE id = ANY($1) ORDER BY id", [1, 2, 5])
        assert [tuple(r) for r in rows] == [(1, ["a", None, "b c"], [1, 2]), (2, [], [3])], rows
        rows = await c.fetch("SELECT id FROM arr WHERE id <> ALL($1::int[])", [1])
        assert [r["id"] for r in rows] == [2], rows
        rows = await c.fetch("SELECT id FROM arr WHERE $1 = ANY(tags)", "b c")
        assert [r["id"] for r in rows] == [1], rows
    await pool.close()
    print("ok")


asyncio.run(main())
