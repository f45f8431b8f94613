#!/usr/bin/env bash
# Read balancing: pgbench w_read (-M prepared, 8 clients) through ONE router
# of `tributary up --replicas 3`, with router.read_balance on and off, in
# alternating rounds; and the same while a writer keeps the replicas busy
# (w_update on a second router, async). Prints median TPS and the reads
# each replica served (tributary_router_reads_total) in the last round.
#   bench/read_balance.sh               # 3 rounds of 10 s
#   ROUNDS=5 SECONDS_EACH=20 bench/read_balance.sh
set -euo pipefail
source "$(dirname "$0")/common.sh"
rounds=${ROUNDS:-3}
secs=${SECONDS_EACH:-10}
port=$((59000 + RANDOM % 500))
mport=$((port + 600))
upid=""
cleanup() { [ -n "$upid" ] && kill "$upid" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
export PGHOST=127.0.0.1 PGUSER=b PGDATABASE=b

start() { # read_balance -> starts the node on a fresh data dir
  rm -rf "$work/d"
  printf '[router]\nread_balance = %s\n[metrics]\nlisten = "127.0.0.1:%s"\n' "$1" "$mport" > "$work/cfg.toml"
  "$bin" up -c "$work/cfg.toml" --data-dir "$work/d" --replicas 3 --routers 2 \
    --listen "127.0.0.1:$port" > "$work/up.log" 2>&1 &
  upid=$!
  for _ in $(seq 100); do psql -qX -p "$port" -c 'SELECT 1' > /dev/null 2>&1 && break; sleep 0.1; done
  psql -qX -p "$port" -f "$shared/schema.sql" > /dev/null
  psql -qX -p "$port" -c "SET tributary.ack = 'sync'; INSERT INTO accounts SELECT g, 0 FROM generate_series(1, 10000) g" > /dev/null
}
stop() { kill "$upid"; wait "$upid" 2>/dev/null || true; upid=""; }
tps_of() { sed -n 's/^tps = \([0-9.]*\).*/\1/p' | tail -1; }
median() { sort -n | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'; }
per_replica() {
  curl -s "127.0.0.1:$mport/metrics" | awk -F'[{}" ]' '/^tributary_router_reads_total/ {
    for (i = 1; i <= NF; i++) if ($i ~ /replica=$/) r = $(i + 1); printf "%s %d; ", r, $NF }'
}
: > "$work/on"; : > "$work/off"; : > "$work/on_w"; : > "$work/off_w"
for _ in $(seq "$rounds"); do
  for mode in on off; do
    start "$([ $mode = on ] && echo true || echo false)"
    pgbench -n -p "$port" -c 8 -j 2 -T "$secs" -M prepared -f "$shared/w_read.sql" 2>&1 | tps_of >> "$work/$mode"
    idle_reads=$(per_replica)
    pgbench -n -p $((port + 1)) -c 4 -j 1 -T "$secs" -M prepared -f "$shared/w_update.sql" > /dev/null 2>&1 &
    wpid=$!
    pgbench -n -p "$port" -c 8 -j 2 -T "$secs" -M prepared -f "$shared/w_read.sql" 2>&1 | tps_of >> "$work/${mode}_w"
    wait "$wpid" || true
    eval "reads_$mode=\"\$idle_reads\""
    stop
  done
done
echo "| w_read through one router, 3 replicas | read_balance = true | read_balance = false | ratio |"
echo "|---|---:|---:|---:|"
on=$(median < "$work/on"); off=$(median < "$work/off")
onw=$(median < "$work/on_w"); offw=$(median < "$work/off_w")
printf '| idle | %.0f | %.0f | %.2f |\n' "$on" "$off" "$(python3 -c "print($on / $off)")"
printf '| with w_update (4 clients) on router 2 | %.0f | %.0f | %.2f |\n' "$onw" "$offw" "$(python3 -c "print($onw / $offw)")"
echo
echo "reads per replica, last idle run: on: ${reads_on:-?} off: ${reads_off:-?}"
