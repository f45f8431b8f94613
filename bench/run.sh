#!/usr/bin/env bash
# Side-by-side write/read benchmark: Tributary (`tributary up`, 3 replicas)
# against PostgreSQL 15 with 2 streaming standbys (3 copies of the data on
# both sides), same pgbench, same scripts (../shared/bench), in one run;
# then pgbench's built-in TPC-B-like transaction on both (bench/tpcb_schema.sql),
# whose four sums must come out equal on each system or the run fails.
# For Tributary's write rows it also reports records per fsync (from
# /metrics) and the share of the physical limit reached: records per fsync
# × this disk's raw write+fdatasync rate (bench/fsync_rate.py).
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
raw_fsyncs=$(python3 "$root/bench/fsync_rate.py" "$work" 3)
echo "raw write+fdatasync/s on this disk: $raw_fsyncs" >&2
metrics=127.0.0.1:9464
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

counter() { python3 "$root/bench/metric.py" "http://$metrics/metrics" "$1"; }

one_run() { # system mode host port user script proto pgbench-workload-args...
  local system=$1 mode=$2 host=$3 port=$4 user=$5 script=$6 proto=$7
  shift 7
  local prefix=$work/log-$system-$mode-$script-$proto
  local appends0=0 fsyncs0=0 appends1=0 fsyncs1=0
  if [ "$system" = tributary ]; then
    appends0=$(counter tributary_log_appends_total); fsyncs0=$(counter tributary_log_fsyncs_total)
  fi
  out=$(pgbench -h "$host" -p "$port" -U "$user" -n -c $clients -j $threads -T "$secs" -M "$proto" \
          "$@" -l --log-prefix "$prefix" postgres 2>&1) || { echo "$out" >&2; exit 1; }
  if [ "$system" = tributary ]; then
    appends1=$(counter tributary_log_appends_total); fsyncs1=$(counter tributary_log_fsyncs_total)
  fi
  tps=$(echo "$out" | sed -n 's/^tps = \([0-9.]*\).*/\1/p' | tail -1)
  failed=$(echo "$out" | sed -n 's/^number of failed transactions: \([0-9]*\).*/\1/p')
  stats=$(python3 "$root/bench/latency.py" "$prefix".*)
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$system" "$mode" "$script" "$proto" "$tps" "$stats" "${failed:-0}" \
    "$((appends1 - appends0))" "$((fsyncs1 - fsyncs0))" >> "$results"
  rm -f "$prefix".*
  echo "  $system $mode $script -M $proto: $tps tps" >&2
}

run_pgbench() { # system mode host port user
  for script in w_insert w_update w_read; do
    for proto in prepared simple; do
      one_run "$1" "$2" "$3" "$4" "$5" "$script" "$proto" -f "$shared/$script.sql"
    done
  done
}

tpcb_load() { # host port user
  psql -qX -h "$1" -p "$2" -U "$3" -d postgres -v ON_ERROR_STOP=1 -f "$root/bench/tpcb_schema.sql" >/dev/null 2>&1
  for c in $(seq 0 9); do
    psql -qX -h "$1" -p "$2" -U "$3" -d postgres -v ON_ERROR_STOP=1 -c \
      "INSERT INTO pgbench_accounts WITH RECURSIVE s(x) AS (SELECT $((c * 10000 + 1)) UNION ALL SELECT x + 1 FROM s WHERE x < $(((c + 1) * 10000))) SELECT x, 1, 0, NULL FROM s" >/dev/null
  done
}

tpcb_sums_equal() { # host port user: the four TPC-B sums, equal or the run fails
  read -r a t b h <<<"$(psql -qXAt -h "$1" -p "$2" -U "$3" -d postgres -F ' ' \
    -c "SET tributary.read_consistency = 'strong'" -c \
    "SELECT (SELECT sum(abalance) FROM pgbench_accounts), (SELECT sum(tbalance) FROM pgbench_tellers), (SELECT sum(bbalance) FROM pgbench_branches), (SELECT sum(delta) FROM pgbench_history)" 2>/dev/null | tail -1)"
  if [ "$a" != "$t" ] || [ "$t" != "$b" ] || [ "$b" != "$h" ]; then
    echo "TPC-B sums differ on $1:$2: accounts $a, tellers $t, branches $b, history $h" >&2
    exit 1
  fi
}

run_tpcb() { # system mode host port user
  for proto in prepared simple; do
    tpcb_load "$3" "$4" "$5"
    one_run "$1" "$2" "$3" "$4" "$5" tpcb "$proto" -b tpcb-like
    tpcb_sums_equal "$3" "$4" "$5"
  done
}

declare -A pg_sync=([async]="ANY 1" [semi-sync]="ANY 1" [sync]="FIRST 2")
declare -A pg_commit=([async]=local [semi-sync]=remote_apply [sync]=remote_apply)
for mode in async semi-sync sync; do
  echo "PostgreSQL, $mode" >&2
  "$shared/pg-anchor.sh" start 2 "${pg_sync[$mode]}" "${pg_commit[$mode]}" >/dev/null
  seed 127.0.0.1 55432 postgres
  run_pgbench postgresql "$mode" 127.0.0.1 55432 postgres
  run_tpcb postgresql "$mode" 127.0.0.1 55432 postgres
  "$shared/pg-anchor.sh" stop >/dev/null

  echo "Tributary, $mode" >&2
  rm -rf "$work/trib"
  "$bin" up --data-dir "$work/trib" --replicas 3 --ack "$mode" --listen 127.0.0.1:6543 \
    --metrics "$metrics" >"$work/trib.log" 2>&1 &
  trib_pid=$!
  for _ in $(seq 100); do psql -qX -h 127.0.0.1 -p 6543 -U bench -d postgres -c "SELECT 1" >/dev/null 2>&1 && break; sleep 0.1; done
  seed 127.0.0.1 6543 bench
  run_pgbench tributary "$mode" 127.0.0.1 6543 bench
  run_tpcb tributary "$mode" 127.0.0.1 6543 bench
  kill "$trib_pid"; wait "$trib_pid" 2>/dev/null || true; trib_pid=""
done

python3 "$root/bench/table.py" "$results" "$secs" "$clients" "$threads" "$raw_fsyncs" | tee bench/results/latest.md
