#!/usr/bin/env bash
# Soak: `tributary up` (3 replicas, async, snapshots every 60 s so retention
# runs) under a fixed write rate for SOAK_SECONDS (default 600), sampling
# every SOAK_EVERY seconds (default 30): TPS so far, the worst replica's lag
# (records behind and p99 apply lag from /metrics), process RSS and the log's
# size on disk. Ends with a verdict on memory: the peak RSS of the last third
# of the run must not exceed the first third's by more than 20%.
#
#   bench/soak.sh                                  # 10 minutes at 1,000 writes/s
#   SOAK_SECONDS=120 SOAK_RATE=2000 bench/soak.sh
set -euo pipefail
source "$(dirname "$0")/common.sh"
secs=${SOAK_SECONDS:-600}
every=${SOAK_EVERY:-30}
rate=${SOAK_RATE:-1000}
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

TRIBUTARY__SNAPSHOTS__INTERVAL_S=60 TRIBUTARY__LOG__SEGMENT_BYTES=8388608 \
  TRIBUTARY__LOG__MAX_RECORD_BYTES=1048576 \
  "$bin" up --data-dir "$work/d" --replicas 3 --ack async --listen 127.0.0.1:6653 \
  --metrics 127.0.0.1:19474 >"$work/up.log" 2>&1 &
upid=$!; pids+=($upid)
for _ in $(seq 100); do psql -qX -h 127.0.0.1 -p 6653 -U b -d b -c "SELECT 1" >/dev/null 2>&1 && break; sleep 0.1; done
kill -0 "$upid" 2>/dev/null || { echo "tributary up did not start:"; cat "$work/up.log"; exit 1; }
psql -qX -h 127.0.0.1 -p 6653 -U b -d b -f "$shared/schema.sql" >/dev/null
pgbench -h 127.0.0.1 -p 6653 -U b -n -c 8 -j 2 -T "$secs" -R "$rate" -M prepared \
  -f "$shared/w_insert.sql" b >"$work/pgbench.txt" 2>&1 &
bpid=$!; pids+=($bpid)

echo "| t (s) | log end | worst lag (records) | apply lag p99 ≤ ms | RSS MiB | log on disk MiB | snapshots |"
echo "|---:|---:|---:|---:|---:|---:|---:|"
samples=()
t=0
while kill -0 "$bpid" 2>/dev/null && [ "$t" -lt "$secs" ]; do
  sleep "$every"; t=$((t + every))
  curl -s 127.0.0.1:19474/metrics > "$work/m.txt" || true
  end=$(psql -qtAX -h 127.0.0.1 -p 6653 -U b -d b -c "SELECT max(log_end) FROM tributary_replicas" 2>/dev/null || echo "?")
  lag=$(psql -qtAX -h 127.0.0.1 -p 6653 -U b -d b -c "SELECT max(lag_records) FROM tributary_replicas" 2>/dev/null || echo "?")
  p99=$(python3 "$root/bench/lag_quantiles.py" "$work/m.txt" | awk -F'\t' 'BEGIN{m=0} {if ($3+0 > m) m=$3+0} END{print m}')
  rss=$(awk '/VmRSS/ {printf "%.0f", $2/1024}' /proc/$upid/status)
  logmb=$(du -sm "$work/d/log" | cut -f1)
  snaps=$(ls "$work/d/snapshots" 2>/dev/null | grep -c snapshot.db || true)
  samples+=("$rss")
  echo "| $t | $end | $lag | $p99 | $rss | $logmb | $snaps |"
done
wait "$bpid" 2>/dev/null || true
echo
grep -E "^tps|failed" "$work/pgbench.txt" || true
peak=$(awk '/VmHWM/ {printf "%.0f", $2/1024}' /proc/$upid/status)
n=${#samples[@]}
third=$(( n / 3 > 0 ? n / 3 : 1 ))
first=$(printf '%s\n' "${samples[@]:0:$third}" | sort -n | tail -1)
last=$(printf '%s\n' "${samples[@]: -$third}" | sort -n | tail -1)
echo "peak RSS ${peak} MiB; RSS peak of first third ${first} MiB, last third ${last} MiB"
if [ "$last" -gt $(( first * 120 / 100 + 2 )) ]; then
  echo "VERDICT: memory grew by more than 20% over the run"; exit 1
fi
echo "VERDICT: memory flat (last third within 20% of the first)"
