#!/usr/bin/env bash
# `pgbench -i` exactly as users run it (tables without primary keys,
# WITH (fillfactor), TRUNCATE + COPY in one block, vacuum analyze, then
# ALTER TABLE … ADD PRIMARY KEY), then pgbench's built-in TPC-B-like
# transaction (8 clients) on that unchanged schema: Tributary (`tributary up`,
# 3 replicas, one router, async) beside PostgreSQL 15 with 2 streaming
# standbys (synchronous_commit = local), one run. The TPC-B sums must be
# equal on both; the script fails otherwise.
#
#   bench/pgbench_init.sh                   # scale 1, 20 s
#   SCALE=2 BENCH_SECONDS=5 bench/pgbench_init.sh
set -euo pipefail
source "$(dirname "$0")/common.sh"
secs=${BENCH_SECONDS:-20}
scale=${SCALE:-1}
trib_pid=""
cleanup() {
  [ -n "$trib_pid" ] && kill "$trib_pid" 2>/dev/null || true
  "$shared/pg-anchor.sh" stop >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

measure() { # system host port user
  init=$(pgbench -i -s "$scale" -h "$2" -p "$3" -U "$4" postgres 2>&1) || { echo "$init" >&2; exit 1; }
  done_in=$(echo "$init" | sed -n 's/^done in \([0-9.]*\) s.*/\1/p')
  out=$(pgbench -h "$2" -p "$3" -U "$4" -n -b tpcb-like -c 8 -j 2 -T "$secs" postgres 2>&1) || { echo "$out" >&2; exit 1; }
  tps=$(echo "$out" | sed -n 's/^tps = \([0-9.]*\).*/\1/p' | tail -1)
  failed=$(echo "$out" | sed -n 's/^number of failed transactions: \([0-9]*\).*/\1/p')
  sums=$(psql -qXAt -h "$2" -p "$3" -U "$4" -d postgres -F ' ' -c "SET tributary.read_consistency = 'strong'" -c \
    "SELECT (SELECT sum(abalance) FROM pgbench_accounts), (SELECT sum(tbalance) FROM pgbench_tellers), (SELECT sum(bbalance) FROM pgbench_branches), (SELECT sum(delta) FROM pgbench_history)" 2>/dev/null | tail -1)
  read -r a t b h <<<"$sums"
  equal=no; [ "$a" = "$t" ] && [ "$t" = "$b" ] && [ "$b" = "$h" ] && equal=yes
  printf '| %s | %s | %s | %s | %s %s %s %s | %s |\n' "$1" "$done_in" "$tps" "${failed:-0}" "$a" "$t" "$b" "$h" "$equal"
  [ "$equal" = yes ] || { echo "TPC-B sums differ on $1" >&2; exit 1; }
}

echo "| system | pgbench -i -s $scale (s) | TPC-B TPS | failed | sums (accounts tellers branches history) | equal |"
echo "|---|---|---|---|---|---|"
"$shared/pg-anchor.sh" start 2 "ANY 1" local >/dev/null
measure postgresql 127.0.0.1 55432 postgres
"$shared/pg-anchor.sh" stop >/dev/null

"$bin" up --data-dir "$work/trib" --replicas 3 --ack async --listen 127.0.0.1:6543 >"$work/trib.log" 2>&1 &
trib_pid=$!
for _ in $(seq 100); do psql -qX -h 127.0.0.1 -p 6543 -U bench -d postgres -c "SELECT 1" >/dev/null 2>&1 && break; sleep 0.1; done
measure tributary 127.0.0.1 6543 bench
