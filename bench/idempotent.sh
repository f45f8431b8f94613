#!/usr/bin/env bash
# What an idempotency key costs a write: pgbench w_update-like transfers
# with and without `SET tributary.idempotency_key` (a fresh key per
# transaction), alternating rounds on one `tributary up --replicas 3`.
# Prints the median TPS and latency of each (BENCHMARKS.md, "Operator tools").
#   bench/idempotent.sh            # 3 rounds of 10 s, 8 clients, async
#   ROUNDS=5 SECONDS_EACH=20 CLIENTS=16 bench/idempotent.sh
set -euo pipefail
source "$(dirname "$0")/common.sh"
rounds=${ROUNDS:-3}
secs=${SECONDS_EACH:-10}
clients=${CLIENTS:-8}
port=$((58000 + RANDOM % 1000))
export PGHOST=127.0.0.1 PGPORT=$port PGUSER=postgres PGDATABASE=tributary

"$bin" up --data-dir "$work/d" --replicas 3 --listen "127.0.0.1:$port" > "$work/node.log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 100); do psql -qc 'SELECT 1' > /dev/null 2>&1 && break; sleep 0.1; done
psql -qc 'CREATE TABLE acc (id int PRIMARY KEY, bal bigint NOT NULL)'
psql -qc "SET tributary.ack = 'sync'; INSERT INTO acc SELECT g, 0 FROM generate_series(1, 10000) g"
cat > "$work/plain.sql" <<'SQL'
\set a random(1, 10000)
UPDATE acc SET bal = bal + 1 WHERE id = :a;
SQL
cat > "$work/keyed.sql" <<'SQL'
\set a random(1, 10000)
\set r random(1, 2000000000)
SET tributary.idempotency_key = 'k-:client_id-:r';
UPDATE acc SET bal = bal + 1 WHERE id = :a;
SQL
run() { # script -> "tps latency_ms"
  pgbench -n -M simple -c "$clients" -j 2 -T "$secs" -f "$work/$1.sql" 2>/dev/null |
    awk '/latency average/ {lat = $4} /^tps/ {tps = $3} END {print tps, lat}'
}
median() { sort -n | awk '{a[NR] = $0} END {print a[int((NR + 1) / 2)]}'; }
: > "$work/plain.txt"; : > "$work/keyed.txt"
for _ in $(seq "$rounds"); do
  run plain >> "$work/plain.txt"
  run keyed >> "$work/keyed.txt"
done
p=$(median < "$work/plain.txt"); k=$(median < "$work/keyed.txt")
keys=$(sqlite3 "file:$work/d/replica1.db?mode=ro" 'SELECT count(*) FROM _tributary_idempotency')
echo "| writes | TPS (median of $rounds) | latency avg ms |"
echo "|---|---:|---:|"
echo "| without a key | ${p% *} | ${p#* } |"
echo "| with a fresh key each | ${k% *} | ${k#* } |"
echo
echo "keys remembered per replica after the run: $keys"
