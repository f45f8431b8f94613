#!/usr/bin/env bash
# Placement: full replication against 3 shard groups × 2 replicas on the
# same data, in `tributary up --replicas 6` (one router). `accounts` and
# `kv` are loaded with ROWS rows each (after distributing them, in the
# sharded run); then pgbench w_update and w_insert (-M prepared, 8
# clients, async) run for SECONDS_EACH each. Prints, per mode, median
# write TPS over the rounds, the CPU seconds each replica's apply thread
# used during the w_update run (from /proc/<pid>/task/*/stat), and the
# storage each replica file uses (live pages) after the runs.
#   bench/placement.sh                      # 3 rounds of 10 s, 200,000 rows
#   ROUNDS=5 SECONDS_EACH=20 ROWS=1000000 bench/placement.sh
set -euo pipefail
source "$(dirname "$0")/common.sh"
rounds=${ROUNDS:-3}
secs=${SECONDS_EACH:-10}
rows=${ROWS:-200000}
port=$((59500 + RANDOM % 400))
upid=""
cleanup() { [ -n "$upid" ] && kill "$upid" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
export PGHOST=127.0.0.1 PGUSER=b PGDATABASE=b
tick=$(getconf CLK_TCK)

start() { # mode (full|sharded) -> a loaded node on a fresh data dir
  rm -rf "$work/d"
  "$bin" up --data-dir "$work/d" --replicas 6 --routers 1 \
    --listen "127.0.0.1:$port" > "$work/up.log" 2>&1 &
  upid=$!
  for _ in $(seq 100); do psql -qX -p "$port" -c 'SELECT 1' > /dev/null 2>&1 && break; sleep 0.1; done
  psql -qX -p "$port" -f "$shared/schema.sql" > /dev/null 2>&1
  if [ "$1" = sharded ]; then
    psql -qX -p "$port" > /dev/null 2>&1 <<'SQL'
SELECT tributary.shard_groups('replica1,replica2', 'replica3,replica4', 'replica5,replica6');
SELECT tributary.distribute('accounts', 'id', 'hash', 12);
SELECT tributary.distribute('kv', 'id', 'hash', 12);
SQL
  fi
  psql -qX -p "$port" -c "SET tributary.ack = 'sync'; INSERT INTO accounts SELECT g, 0 FROM generate_series(1, $rows) g" > /dev/null 2>&1
  psql -qX -p "$port" -c "SET tributary.ack = 'sync'; INSERT INTO kv SELECT g, md5(g::text) FROM generate_series(1, $rows) g" > /dev/null 2>&1
}
stop() { kill "$upid"; wait "$upid" 2>/dev/null || true; upid=""; }
tps_of() { sed -n 's/^tps = \([0-9.]*\).*/\1/p' | tail -1; }
median() { sort -n | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'; }
apply_ticks() { # replica -> utime+stime ticks of its apply thread
  for t in /proc/"$upid"/task/*; do
    if [ "$(cat "$t/comm")" = "apply-$1" ]; then
      awk '{print $14 + $15}' "$t/stat"
      return
    fi
  done
  echo 0
}
live_mb() { # replica file -> MB of pages in use
  sqlite3 "$1" 'PRAGMA wal_checkpoint(PASSIVE);' > /dev/null 2>&1 || true
  sqlite3 "$1" "SELECT (page_count - freelist_count) * page_size / 1048576.0 FROM pragma_page_count, pragma_freelist_count, pragma_page_size"
}

for mode in full sharded; do : > "$work/upd_$mode"; : > "$work/ins_$mode"; done
for _ in $(seq "$rounds"); do
  for mode in full sharded; do
    start "$mode"
    for r in 1 2 3 4 5 6; do echo "$(apply_ticks "replica$r")" > "$work/t0_$r"; done
    pgbench -n -p "$port" -c 8 -j 2 -T "$secs" -M prepared -f "$shared/w_update.sql" 2>&1 | tps_of >> "$work/upd_$mode"
    cpu=""
    for r in 1 2 3 4 5 6; do
      t1=$(apply_ticks "replica$r"); t0=$(cat "$work/t0_$r")
      cpu="$cpu$(python3 -c "print(f'{($t1 - $t0) / $tick:.1f}')") "
    done
    echo "$cpu" > "$work/cpu_$mode"
    pgbench -n -p "$port" -c 8 -j 2 -T "$secs" -M prepared -f "$shared/w_insert.sql" 2>&1 | tps_of >> "$work/ins_$mode"
    sizes=""
    for r in 1 2 3 4 5 6; do sizes="$sizes$(printf '%.1f' "$(live_mb "$work/d/replica$r.db")") "; done
    echo "$sizes" > "$work/size_$mode"
    stop
  done
done
echo "| tributary up --replicas 6, $rows rows per table | full replication | 3 groups × 2 | ratio |"
echo "|---|---:|---:|---:|"
for w in upd ins; do
  f=$(median < "$work/${w}_full"); s=$(median < "$work/${w}_sharded")
  name=$([ $w = upd ] && echo "w_update TPS (8 clients, async)" || echo "w_insert TPS (8 clients, async)")
  printf '| %s | %.0f | %.0f | %.2f |\n' "$name" "$f" "$s" "$(python3 -c "print($s / $f)")"
done
echo
echo "apply-thread CPU seconds per replica during w_update (replica1..6, last round):"
echo "  full:    $(cat "$work/cpu_full")"
echo "  sharded: $(cat "$work/cpu_sharded")"
echo "live MB per replica file after the runs (replica1..6, last round):"
echo "  full:    $(cat "$work/size_full")"
echo "  sharded: $(cat "$work/size_sharded")"
