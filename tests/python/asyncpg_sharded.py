"""asyncpg (extended protocol only) against distributed tables: the
placement functions are described and answered, batched inserts spread
over the shard groups, a bound LIMIT and shard key, a scattered
`sum(...)::bigint`, and a cross-shard transfer in a transaction whose
total holds inside and after it.

usage: asyncpg_sharded.py PORT
"""
import asyncio
import sys

import asyncpg

port = sys.argv[1]


async def main():
    c = await asyncpg.connect(f"postgresql://t@127.0.0.1:{port}/t")
    await c.execute("CREATE TABLE acc (id bigint PRIMARY KEY, bal bigint NOT NULL)")
    row = await c.fetchrow(
        "SELECT tributary.shard_groups('replica1,replica2', 'replica3,replica4')"
    )
    assert row["shard_groups"].startswith("placement version"), row
    row = await c.fetchrow("SELECT tributary.distribute('acc', 'id', 'hash', 4)")
    assert row["distribute"].startswith("placement version"), row
    await c.executemany("INSERT INTO acc VALUES ($1, $2)", [(i, 100) for i in range(1, 101)])
    row = await c.fetchrow("SELECT count(*) AS n, sum(bal)::bigint AS s FROM acc")
    assert (row["n"], row["s"]) == (100, 10000), row
    rows = await c.fetch("SELECT id FROM acc ORDER BY id DESC LIMIT $1 OFFSET $2", 3, 1)
    assert [r["id"] for r in rows] == [99, 98, 97], rows
    assert (await c.fetchval("SELECT bal FROM acc WHERE id = $1", 42)) == 100
    async with c.transaction():
        await c.execute("UPDATE acc SET bal = bal - $1 WHERE id = $2", 30, 1)
        await c.execute("UPDATE acc SET bal = bal + $1 WHERE id = $2", 30, 2)
        assert (await c.fetchval("SELECT sum(bal) FROM acc")) == 10000
        assert (await c.fetchval("SELECT bal FROM acc WHERE id = $1", 1)) == 70
    rows = await c.fetch("SELECT id, bal FROM acc WHERE id = ANY($1::bigint[]) ORDER BY id", [1, 2])
    assert [(r["id"], r["bal"]) for r in rows] == [(1, 70), (2, 130)], rows
    assert (await c.fetchval("SELECT sum(bal)::bigint FROM acc")) == 10000
    got = await c.fetchrow("UPDATE acc SET bal = bal + 1 WHERE id = $1 RETURNING id, bal", 5)
    assert tuple(got) == (5, 101), got
    await c.close()


asyncio.run(main())
print("ok")
