#!/usr/bin/env bash
# A/B of two tributary binaries on one pgbench script, alternating A and B
# each round so drift on a shared machine hits both alike. Each run starts
# `tributary up` (3 replicas, async) on a fresh directory, seeds 10,000
# accounts, runs pgbench (8 clients) once and stops it; compare medians.
#
#   A=/tmp/before/target/release/tributary B=target/release/tributary \
#     bench/ab.sh w_read prepared 3 10      # script, protocol, rounds, seconds
#   HIST=1 …  also prints each binary's latency histogram over all its rounds
set -euo pipefail
cd "$(dirname "$0")/.."
script=${1:-w_read}; proto=${2:-prepared}; rounds=${3:-3}; secs=${4:-10}
shared=${SHARED_BENCH:-$(pwd)/../shared/bench}
: "${A:?set A to the first binary}" "${B:?set B to the second binary}"
hist=$(mktemp -d)
mkdir -p "$hist/A" "$hist/B"
for r in $(seq "$rounds"); do
  for which in A B; do
    bin=${!which}
    d=$(mktemp -d)
    "$bin" up --data-dir "$d/t" --replicas 3 --ack async --listen 127.0.0.1:6543 >"$d/log" 2>&1 &
    pid=$!
    for _ in $(seq 100); do psql -qX -h 127.0.0.1 -p 6543 -U bench -d postgres -c "SELECT 1" >/dev/null 2>&1 && break; sleep 0.1; done
    psql -qX -h 127.0.0.1 -p 6543 -U bench -d postgres -v ON_ERROR_STOP=1 -f "$shared/schema.sql" >/dev/null
    psql -qX -h 127.0.0.1 -p 6543 -U bench -d postgres -v ON_ERROR_STOP=1 -c \
      "INSERT INTO accounts (id, balance) WITH RECURSIVE s(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM s WHERE x < 10000) SELECT x, 0 FROM s" >/dev/null
    tps=$(pgbench -h 127.0.0.1 -p 6543 -U bench -n -c 8 -j 2 -T "$secs" -M "$proto" -f "$shared/$script.sql" \
            -l --log-prefix "$d/lat" postgres 2>&1 | sed -n 's/^tps = \([0-9.]*\).*/\1/p' | tail -1)
    lat=$(python3 bench/latency.py "$d"/lat.* | tr '\t' ' ')
    echo "$script -M $proto round $r $which ${tps:-failed} tps, avg/p99 ms $lat"
    kill "$pid"; wait "$pid" 2>/dev/null || true
    for f in "$d"/lat.*; do cp "$f" "$hist/$which/r$r.$(basename "$f")"; done
    rm -rf "$d"
  done
done
if [ -n "${HIST:-}" ]; then
  echo
  echo "| binary | transactions | < 1 ms | 1–2 | 2–5 | 5–10 | 10–20 | 20–50 | ≥ 50 ms | p50 ms | p99 ms | p99.9 ms |"
  echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
  for which in A B; do python3 bench/latency.py --hist "$which" "$hist/$which"/*; done
fi
rm -rf "$hist"
