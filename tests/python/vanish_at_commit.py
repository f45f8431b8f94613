"""psycopg: opens a transaction block tagged with an idempotency key, makes
a transfer, sends COMMIT and vanishes before the answer (the process exits
with the socket closed), as a client whose connection dies during COMMIT.

usage: vanish_at_commit.py PORT KEY
"""
import os
import sys

import psycopg

port, key = int(sys.argv[1]), sys.argv[2]
conn = psycopg.connect(host="127.0.0.1", port=port, user="test", dbname="test", autocommit=True)
conn.execute(f"SET tributary.idempotency_key = '{key}'")
conn.execute("BEGIN")
conn.execute("UPDATE acc SET bal = bal - 10 WHERE id = 1")
conn.execute("UPDATE acc SET bal = bal + 10 WHERE id = 2")
pg = conn.pgconn
pg.send_query(b"COMMIT")
while pg.flush() != 0:
    pass
print("sent", flush=True)
os._exit(0)
