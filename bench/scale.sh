#!/usr/bin/env bash
# Write TPS, apply lag and peak RSS of `tributary up` with 1, 3 and 5
# replicas (async), pgbench w_insert -M prepared, same machine, one run;
# and the CPU each replica's apply thread used during the run (from
# /proc/<pid>/task/*/stat), per second and per applied record.
#   bench/scale.sh            # 20 s per run
set -euo pipefail
source "$(dirname "$0")/common.sh"
secs=${BENCH_SECONDS:-20}
upid=""
cleanup() { [ -n "$upid" ] && kill "$upid" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
# Summed utime+stime clock ticks of the node's apply threads.
apply_ticks() {
  local t total=0
  for t in /proc/"$1"/task/*; do
    if [[ $(cat "$t/comm" 2>/dev/null) == apply-* ]]; then
      total=$((total + $(awk '{print $14 + $15}' "$t/stat")))
    fi
  done
  echo $total
}
hz=$(getconf CLK_TCK)
echo "| replicas | w_insert TPS (async, -M prepared) | vs 1 replica | lag p99 ≤ ms (worst replica) | peak RSS MiB | apply CPU per replica (% of a core) | apply CPU µs per record per replica |"
echo "|---:|---:|---:|---:|---:|---:|---:|"
base=""
for n in 1 3 5; do
  rm -rf "$work/d"
  "$bin" up --data-dir "$work/d" --replicas $n --listen 127.0.0.1:6843 --metrics 127.0.0.1:19564 >"$work/up.log" 2>&1 &
  upid=$!
  for _ in $(seq 100); do psql -qX -h 127.0.0.1 -p 6843 -U b -d b -c "SELECT 1" >/dev/null 2>&1 && break; sleep 0.1; done
  psql -qX -h 127.0.0.1 -p 6843 -U b -d b -f "$shared/schema.sql" >/dev/null
  ticks0=$(apply_ticks $upid)
  tps=$(pgbench -h 127.0.0.1 -p 6843 -U b -n -c 8 -j 2 -T "$secs" -M prepared -f "$shared/w_insert.sql" b 2>&1 \
        | sed -n 's/^tps = \([0-9.]*\).*/\1/p' | tail -1)
  ticks1=$(apply_ticks $upid)
  cpu_s=$(python3 -c "print(($ticks1 - $ticks0) / $hz / $n)")
  cpu_pct=$(python3 -c "print(f'{100 * $cpu_s / $secs:.0f}')")
  us_per=$(python3 -c "print(f'{1e6 * $cpu_s / max(1, $tps * $secs):.0f}')")
  curl -s 127.0.0.1:19564/metrics > "$work/m.txt"
  p99=$(python3 "$root/bench/lag_quantiles.py" "$work/m.txt" | awk -F'\t' '{print $3}' | sort -g | tail -1)
  rss=$(awk '/VmHWM/ {printf "%.0f", $2/1024}' /proc/$upid/status)
  [ -z "$base" ] && base=$tps
  printf '| %d | %.0f | %.2f | %s | %s | %s | %s |\n' $n "$tps" "$(python3 -c "print($tps/$base)")" "$p99" "$rss" "$cpu_pct" "$us_per"
  kill "$upid"; wait "$upid" 2>/dev/null || true; upid=""
done
