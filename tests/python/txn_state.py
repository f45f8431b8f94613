"""psycopg: a COMMIT refused with 40001 ends the transaction (status IDLE,
as in PostgreSQL), and the usual `with conn.transaction()` retry loop keeps
working afterwards.

usage: txn_state.py PORT_A PORT_B   (two routers of a cluster whose policy
makes table acct first-writer-wins, ack mode sync)
"""
import sys
import threading

import psycopg
from psycopg import errors
from psycopg.pq import TransactionStatus

port_a, port_b = int(sys.argv[1]), int(sys.argv[2])


def connect(port, **kw):
    return psycopg.connect(host="127.0.0.1", port=port, user="test", dbname="test", **kw)


a = connect(port_a)  # psycopg's default: statements open a transaction
b = connect(port_b, autocommit=True)
for c in (a, b):
    c.execute("SET tributary.ack = 'sync'")
a.commit()

# 1. A COMMIT that first-writer-wins refuses.
a.execute("UPDATE acct SET n = n + 1 WHERE id = 1")
assert a.info.transaction_status == TransactionStatus.INTRANS, a.info.transaction_status
b.execute("UPDATE acct SET n = n + 10 WHERE id = 1")
try:
    a.commit()
    raise SystemExit("COMMIT should have been refused with 40001")
except errors.SerializationFailure:
    pass
status = a.info.transaction_status
if status != TransactionStatus.IDLE:
    raise SystemExit(f"after a failed COMMIT the session is {status.name}, not IDLE")

# 2. An error inside a block leaves it failed until ROLLBACK.
a.execute("SELECT 1")
try:
    a.execute("SELECT * FROM no_such_table")
except errors.Error:
    pass
assert a.info.transaction_status == TransactionStatus.INERROR, a.info.transaction_status
a.rollback()
assert a.info.transaction_status == TransactionStatus.IDLE

# 3. An error in autocommit leaves it idle.
try:
    b.execute("SELECT * FROM no_such_table")
except errors.Error:
    pass
assert b.info.transaction_status == TransactionStatus.IDLE

# 4. The retry loop: 9 sessions over both routers increment one row with
#    `with conn.transaction()`, retrying on 40001, a fixed number of times.
ROUNDS = 30
done, failures, lock = [0], [], threading.Lock()


def worker(n):
    try:
        with connect([port_a, port_b][n % 2]) as conn:
            conn.execute("SET tributary.ack = 'sync'")
            conn.commit()
            ok = retries = 0
            while ok < ROUNDS:
                try:
                    with conn.transaction():
                        conn.execute("UPDATE acct SET n = n + 1 WHERE id = 2")
                    ok += 1
                except errors.SerializationFailure:
                    retries += 1
                    if retries > 2000:
                        raise RuntimeError("retries never succeed")
            with lock:
                done[0] += ok
    except Exception as e:
        with lock:
            failures.append(f"worker {n}: {e!r}")


threads = [threading.Thread(target=worker, args=(n,)) for n in range(9)]
for t in threads:
    t.start()
for t in threads:
    t.join()
if failures:
    raise SystemExit("\n".join(failures))
a.execute("SET tributary.read_consistency = 'strong'")
n = a.execute("SELECT n FROM acct WHERE id = 2").fetchone()[0]
a.commit()
if n != done[0]:
    raise SystemExit(f"counter {n} after {done[0]} committed increments")
print(f"ok: {done[0]} increments committed through retries")
