"""psycopg: 8 sessions over several routers insert into a SERIAL table and
print every id RETURNING gave them (one JSON list). Exits non-zero on any
error or a missing id.

usage: serial_ids.py PORT[,PORT...] ROWS_PER_SESSION
"""
import json
import sys
import threading

import psycopg

ports = [int(p) for p in sys.argv[1].split(",")]
per_session = int(sys.argv[2])
ids, errors = [], []
lock = threading.Lock()


def worker(n):
    try:
        with psycopg.connect(host="127.0.0.1", port=ports[n % len(ports)],
                             user="test", dbname="test", autocommit=True) as conn:
            mine = []
            for i in range(per_session):
                row = conn.execute("INSERT INTO items (name) VALUES (%s) RETURNING id",
                                   (f"s{n}-{i}",)).fetchone()
                if row is None or row[0] is None:
                    raise RuntimeError(f"session {n} row {i}: RETURNING gave no id: {row}")
                mine.append(row[0])
            with lock:
                ids.extend(mine)
    except Exception as e:  # reported below, the test fails on it
        with lock:
            errors.append(f"session {n}: {e!r}")


threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
for t in threads:
    t.start()
for t in threads:
    t.join()
if errors:
    print("\n".join(errors), file=sys.stderr)
    sys.exit(1)
print(json.dumps(ids))
