#!/usr/bin/env bash
# pgbench's built-in TPC-B-like transaction (8 clients), Tributary (`tributary
# up`, 3 replicas, one router) beside PostgreSQL 15 with 2 streaming
# standbys, in each ack mode, same schema (bench/tpcb_schema.sql), one run.
# After each run the four TPC-B sums (accounts, tellers, branches, history
# deltas) must be equal on both systems; the script fails otherwise.
#
#   bench/tpcb.sh                    # 20 s per run
#   BENCH_SECONDS=5 bench/tpcb.sh    # quick look
set -euo pipefail
source "$(dirname "$0")/common.sh"
secs=${BENCH_SECONDS:-20}
trib_pid=""
cleanup() {
  [ -n "$trib_pid" ] && kill "$trib_pid" 2>/dev/null || true
  "$shared/pg-anchor.sh" stop >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

load() { # host port user
  psql -qX -h "$1" -p "$2" -U "$3" -d postgres -v ON_ERROR_STOP=1 -f "$root/bench/tpcb_schema.sql" >/dev/null 2>&1
  for c in $(seq 0 9); do
    psql -qX -h "$1" -p "$2" -U "$3" -d postgres -v ON_ERROR_STOP=1 -c \
      "INSERT INTO pgbench_accounts WITH RECURSIVE s(x) AS (SELECT $((c * 10000 + 1)) UNION ALL SELECT x + 1 FROM s WHERE x < $(((c + 1) * 10000))) SELECT x, 1, 0, NULL FROM s" >/dev/null
  done
}

sums() { # host port user -> "a t b h"
  psql -qXAt -h "$1" -p "$2" -U "$3" -d postgres -F ' ' -c "SET tributary.read_consistency = 'strong'" -c \
    "SELECT (SELECT sum(abalance) FROM pgbench_accounts), (SELECT sum(tbalance) FROM pgbench_tellers), (SELECT sum(bbalance) FROM pgbench_branches), (SELECT sum(delta) FROM pgbench_history)" 2>/dev/null | tail -1
}

run() { # system mode proto host port user
  out=$(pgbench -h "$4" -p "$5" -U "$6" -n -b tpcb-like -c 8 -j 2 -T "$secs" -M "$3" postgres 2>&1) || { echo "$out" >&2; exit 1; }
  tps=$(echo "$out" | sed -n 's/^tps = \([0-9.]*\).*/\1/p' | tail -1)
  lat=$(echo "$out" | sed -n 's/^latency average = \([0-9.]*\) ms/\1/p')
  failed=$(echo "$out" | sed -n 's/^number of failed transactions: \([0-9]*\).*/\1/p')
  read -r a t b h <<<"$(sums "$4" "$5" "$6")"
  equal=no; [ "$a" = "$t" ] && [ "$t" = "$b" ] && [ "$b" = "$h" ] && equal=yes
  printf '| %s | %s | %s | %s | %s | %s | %s %s %s %s | %s |\n' "$1" "$2" "$3" "$tps" "$lat" "${failed:-0}" "$a" "$t" "$b" "$h" "$equal"
  [ "$equal" = yes ] || { echo "TPC-B sums differ on $1 $2 $3" >&2; exit 1; }
}

declare -A pg_sync=([async]="ANY 1" [semi-sync]="ANY 1" [sync]="FIRST 2")
declare -A pg_commit=([async]=local [semi-sync]=remote_apply [sync]=remote_apply)
echo "| system | ack | protocol | TPS | avg latency ms | failed | sums (accounts tellers branches history) | equal |"
echo "|---|---|---|---|---|---|---|---|"
for mode in async semi-sync sync; do
  for proto in simple prepared; do
    "$shared/pg-anchor.sh" start 2 "${pg_sync[$mode]}" "${pg_commit[$mode]}" >/dev/null
    load 127.0.0.1 55432 postgres
    run postgresql "$mode" "$proto" 127.0.0.1 55432 postgres
    "$shared/pg-anchor.sh" stop >/dev/null

    rm -rf "$work/trib"
    "$bin" up --data-dir "$work/trib" --replicas 3 --ack "$mode" --listen 127.0.0.1:6543 >"$work/trib.log" 2>&1 &
    trib_pid=$!
    for _ in $(seq 100); do psql -qX -h 127.0.0.1 -p 6543 -U bench -d postgres -c "SELECT 1" >/dev/null 2>&1 && break; sleep 0.1; done
    load 127.0.0.1 6543 bench
    run tributary "$mode" "$proto" 127.0.0.1 6543 bench
    kill "$trib_pid"; wait "$trib_pid" 2>/dev/null || true; trib_pid=""
  done
done
