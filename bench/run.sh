#!/usr/bin/env bash
# Side-by-side write/read benchmark: Tributary (`tributary up`, 3 replicas)
# against PostgreSQL 15 with 2 streaming standbys (3 copies of the data on
# both sides), same pgbench, same scripts (../shared/bench), in one run.
#
#   bench/run.sh                     # 20 s per run, as in BENCHMARKS.md
#   BENCH_SECONDS=5 bench/run.sh     # quick look
#   TRIBUTARY_BIN=/path/to/tributary bench/run.sh   # an already-built binary
#                                    # (e.g. an older commit's, for before/after)
#
# Prints one table (TPS, average and p99 latency, Tributary / PostgreSQL)
# and writes it to bench/results/latest.md.
set -euo pipefail
source "$(dirname "$0")/common.sh"
secs=${BENCH_SECONDS:-20}
clients=8
threads=2
mkdir -p bench/results
results=$work/results.tsv
: > "$results"
trib_pid=""
cleanup() {
  [ -n "$trib_pid" ] && kill "$trib_pid" 2>/dev/null || true
  "$shared/pg-anchor.sh" stop >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

seed() { # host port user
  psql -qX -h "$1" -p "$2" -U "$3" -d postgres -v ON_ERROR_STOP=1 -f "$shared/schema.sql" >/dev/null
  psql -qX -h "$1" -p "$2" -U "$3" -d postgres -v ON_ERROR_STOP=1 -c \
    "INSERT INTO accounts (id, balance) WITH RECURSIVE s(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM s WHERE x < 10000) SELECT x, 0 FROM s" >/dev/null
}

run_pgbench() { # system mode host port user
  for script in w_insert w_update w_read; do
    for proto in prepared simple; do
      prefix=$work/log-$1-$2-$script-$proto
      out=$(pgbench -h "$3" -p "$4" -U "$5" -n -c $clients -j $threads -T "$secs" -M $proto \
              -f "$shared/$script.sql" -l --log-prefix "$prefix" postgres 2>&1) || { echo "$out" >&2; exit 1; }
      tps=$(echo "$out" | sed -n 's/^tps = \([0-9.]*\).*/\1/p' | tail -1)
      failed=$(echo "$out" | sed -n 's/^number of failed transactions: \([0-9]*\).*/\1/p')
      stats=$(python3 "$root/bench/latency.py" "$prefix".*)
      printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$script" "$proto" "$tps" "$stats" "${failed:-0}" >> "$results"
      rm -f "$prefix".*
      echo "  $1 $2 $script -M $proto: $tps tps" >&2
    done
  done
}

declare -A pg_sync=([async]="ANY 1" [semi-sync]="ANY 1" [sync]="FIRST 2")
declare -A pg_commit=([async]=local [semi-sync]=remote_apply [sync]=remote_apply)
for mode in async semi-sync sync; do
  echo "PostgreSQL, $mode" >&2
  "$shared/pg-anchor.sh" start 2 "${pg_sync[$mode]}" "${pg_commit[$mode]}" >/dev/null
  seed 127.0.0.1 55432 postgres
  run_pgbench postgresql "$mode" 127.0.0.1 55432 postgres
  "$shared/pg-anchor.sh" stop >/dev/null

  echo "Tributary, $mode" >&2
  rm -rf "$work/trib"
  "$bin" up --data-dir "$work/trib" --replicas 3 --ack "$mode" --listen 127.0.0.1:6543 >"$work/trib.log" 2>&1 &
  trib_pid=$!
  for _ in $(seq 100); do psql -qX -h 127.0.0.1 -p 6543 -U bench -d postgres -c "SELECT 1" >/dev/null 2>&1 && break; sleep 0.1; done
  seed 127.0.0.1 6543 bench
  run_pgbench tributary "$mode" 127.0.0.1 6543 bench
  kill "$trib_pid"; wait "$trib_pid" 2>/dev/null || true; trib_pid=""
done

python3 "$root/bench/table.py" "$results" "$secs" "$clients" "$threads" | tee bench/results/latest.md
