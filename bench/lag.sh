#!/usr/bin/env bash
# Replication lag at a fixed offered write rate: pgbench -R RATE on w_insert
# through one router of `tributary up` (3 replicas), in each ack mode, on the
# embedded log and on Kafka (tansu). Lag per replica comes from the
# /metrics histogram tributary_replica_apply_lag_seconds: from the origin's
# timestamp, taken just before the append, to the replica's commit — an
# upper bound of "router reply → applied" (it includes the append itself).
#
#   bench/lag.sh                 # rates 2000 and 10000, 20 s each
#   LAG_RATES=2000 LAG_SECONDS=10 bench/lag.sh
set -euo pipefail
source "$(dirname "$0")/common.sh"
secs=${LAG_SECONDS:-20}
rates=${LAG_RATES:-"2000 10000"}
tansu=$(command -v tansu || echo "${CARGO_HOME:-$HOME/.cargo}/bin/tansu")
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

echo "| log | ack | offered/s | achieved TPS | replica | lag p50 ≤ ms | lag p99 ≤ ms | lag max ≤ ms |"
echo "|---|---|---:|---:|---|---:|---:|---:|"
for backend in file kafka; do
  for mode in async semi-sync sync; do
    for rate in $rates; do
      rm -rf "$work/d"; mkdir -p "$work/d"
      env=()
      if [ $backend = kafka ]; then
        "$tansu" broker --storage-engine memory://tansu/ --listener-url tcp://127.0.0.1:19392 \
          --advertised-listener-url tcp://127.0.0.1:19392 >/dev/null 2>&1 &
        tpid=$!; pids+=($tpid); sleep 1
        env=(TRIBUTARY__LOG__BACKEND=kafka TRIBUTARY__LOG__KAFKA__BROKERS=127.0.0.1:19392)
      fi
      env "${env[@]}" "$bin" up --data-dir "$work/d" --replicas 3 --ack $mode --listen 127.0.0.1:6643 \
        --metrics 127.0.0.1:19464 >"$work/up.log" 2>&1 &
      upid=$!; pids+=($upid)
      for _ in $(seq 100); do psql -qX -h 127.0.0.1 -p 6643 -U b -d b -c "SELECT 1" >/dev/null 2>&1 && break; sleep 0.1; done
      psql -qX -h 127.0.0.1 -p 6643 -U b -d b -f "$shared/schema.sql" >/dev/null
      out=$(pgbench -h 127.0.0.1 -p 6643 -U b -n -c 8 -j 2 -T "$secs" -R "$rate" -M prepared -f "$shared/w_insert.sql" b 2>&1)
      tps=$(echo "$out" | sed -n 's/^tps = \([0-9.]*\).*/\1/p' | tail -1)
      curl -s 127.0.0.1:19464/metrics > "$work/metrics.txt"
      python3 "$root/bench/lag_quantiles.py" "$work/metrics.txt" | while IFS=$'\t' read -r replica p50 p99 max; do
        printf '| %s | %s | %s | %.0f | %s | %s | %s | %s |\n' "$backend" "$mode" "$rate" "$tps" "$replica" "$p50" "$p99" "$max"
      done
      kill "$upid"; wait "$upid" 2>/dev/null || true
      [ $backend = kafka ] && { kill "$tpid"; wait "$tpid" 2>/dev/null || true; }
    done
  done
done
