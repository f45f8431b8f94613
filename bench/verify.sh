#!/usr/bin/env bash
# `tributary verify` on ROWS rows (default 1,000,000) in one table on
# `tributary up --replicas 3`: the time of an identical run and of a run
# that finds one row changed in one replica file (sqlite3, behind
# Tributary's back), median of ROUNDS runs each, and the node's RSS before
# and after. Prints a Markdown table (BENCHMARKS.md, "Operator tools").
#   bench/verify.sh
#   ROWS=100000 ROUNDS=5 bench/verify.sh
set -euo pipefail
source "$(dirname "$0")/common.sh"
rows=${ROWS:-1000000}
rounds=${ROUNDS:-3}
port=$((57000 + RANDOM % 1000))
export PGHOST=127.0.0.1 PGPORT=$port PGUSER=postgres PGDATABASE=tributary

"$bin" up --data-dir "$work/d" --replicas 3 --listen "127.0.0.1:$port" > "$work/node.log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 100); do psql -qc 'SELECT 1' > /dev/null 2>&1 && break; sleep 0.1; done
psql -qc 'CREATE TABLE items (id bigint PRIMARY KEY, customer int NOT NULL, name text, price real)'
chunk=200000
for ((lo = 1; lo <= rows; lo += chunk)); do
  hi=$((lo + chunk - 1)); ((hi > rows)) && hi=$rows
  psql -qc "SET tributary.ack = 'sync'; INSERT INTO items SELECT g, g % 1000, 'item ' || g, g * 0.25 FROM generate_series($lo, $hi) g"
done
rss() { awk '/VmRSS/ {print int($2 / 1024) " MB"}' "/proc/$pid/status"; }
rss_before=$(rss)

median() { sort -n | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'; }
time_verify() { # expected exit status -> ms of one run
  local t0 t1 code
  t0=$(date +%s%N)
  set +e
  "$bin" verify --router "127.0.0.1:$port" > "$work/verify.out" 2>&1
  code=$?
  set -e
  t1=$(date +%s%N)
  if [ "$code" != "$1" ]; then
    echo "verify exited $code, expected $1:" >&2
    cat "$work/verify.out" >&2
    exit 1
  fi
  echo $(((t1 - t0) / 1000000))
}
identical=$(for _ in $(seq "$rounds"); do time_verify 0; done | median)
sqlite3 -cmd '.timeout 10000' "$work/d/replica2.db" "UPDATE items SET name = 'tampered' WHERE id = $((rows / 2))"
divergent=$(for _ in $(seq "$rounds"); do time_verify 1; done | median)
grep -q "differs on replica2" "$work/verify.out"
size=$(du -mc "$work/d/replica1.db"* | tail -1 | cut -f1)

echo "| rows | replicas | file size | identical (median of $rounds) | one row differs (median of $rounds) | node RSS before → after |"
echo "|---|---|---|---|---|---|"
echo "| $rows | 3 | $size MB | $identical ms | $divergent ms | $rss_before → $(rss) |"
