#!/usr/bin/env bash
# Large transactions through one router of `tributary up --replicas 3`:
# an N-row INSERT ... SELECT and a 10 MB value. For each: the time to the
# client's answer, the time until every replica has applied it (read from
# each replica file's applied offset), the node's peak RSS (VmHWM) and the
# rows each replica holds. Prints a Markdown table (BENCHMARKS.md, "Large
# transactions").
#   bench/large_txn.sh                 # 200,000 rows, 1,000,000 rows, 10 MB value
#   ROUNDS=3 bench/large_txn.sh        # each case ROUNDS times
set -euo pipefail
source "$(dirname "$0")/common.sh"
rounds=${ROUNDS:-1}
port=$((56000 + RANDOM % 1000))
export PGHOST=127.0.0.1 PGPORT=$port PGUSER=postgres PGDATABASE=tributary

applied() { # replica number -> its applied offset
  sqlite3 "file:$work/d/replica$1.db?mode=ro" \
    "SELECT value FROM _tributary_state WHERE name = 'applied_offset'" 2>/dev/null || echo 0
}

# case NAME CONFIG SQL: one fresh node, one statement, one table row.
run_case() {
  local name=$1 config=$2 sql=$3
  rm -rf "$work/d"
  printf '%s' "$config" > "$work/cfg.toml"
  "$bin" up -c "$work/cfg.toml" --data-dir "$work/d" --replicas 3 \
    --listen "127.0.0.1:$port" > "$work/node.log" 2>&1 &
  local pid=$!
  for _ in $(seq 100); do psql -qc 'SELECT 1' > /dev/null 2>&1 && break; sleep 0.1; done
  psql -qc 'CREATE TABLE big (id int PRIMARY KEY, v text)'
  # Every replica has the CREATE TABLE: the target is one past it.
  local target
  for _ in $(seq 100); do
    target=$(applied 1)
    [ "$(applied 2)" = "$target" ] && [ "$(applied 3)" = "$target" ] && break
    sleep 0.05
  done
  target=$((target + 1))
  local t0 t1 t2 out
  t0=$(date +%s.%N)
  out=$(psql -qc "$sql" 2>&1 | tr '\n' ' ' | cut -c1-90) || true
  t1=$(date +%s.%N)
  local all="n/a"
  if ! grep -q ERROR <<< "$out"; then
    for _ in $(seq 1200); do
      [ "$(applied 1)" -ge "$target" ] && [ "$(applied 2)" -ge "$target" ] \
        && [ "$(applied 3)" -ge "$target" ] && break
      sleep 0.02
    done
    t2=$(date +%s.%N)
    all=$(printf "%.2f" "$(echo "$t2 - $t0" | bc)")
  fi
  local hwm rows
  hwm=$(awk '/VmHWM/ {printf "%.0f", $2 / 1024}' "/proc/$pid/status")
  rows=$(for r in 1 2 3; do sqlite3 "file:$work/d/replica$r.db?mode=ro" 'SELECT count(*) FROM big'; done | paste -sd/)
  kill "$pid"; wait "$pid" 2> /dev/null || true
  printf '| %s | %s | %.2f | %s | %s | %s |\n' "$name" "${out:-ok}" "$(echo "$t1 - $t0" | bc)" "$all" "$hwm" "$rows"
}

rows_sql() {
  echo "INSERT INTO big WITH RECURSIVE s(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM s WHERE x < $1) SELECT x, 'value ' || x FROM s"
}

echo "| case | answer | to the answer (s) | on all 3 replicas (s) | peak RSS (MB) | rows per replica |"
echo "|---|---|---:|---:|---:|---|"
for _ in $(seq "$rounds"); do
  run_case "200,000-row INSERT … SELECT, default limit (64 MiB)" "" "$(rows_sql 200000)"
  run_case "1,000,000-row INSERT … SELECT, default limit" "" "$(rows_sql 1000000)"
  run_case "1,000,000-row INSERT … SELECT, max_record_bytes = 128 MiB" \
    $'[log]\nmax_record_bytes = 134217728\nsegment_bytes = 268435456\n' "$(rows_sql 1000000)"
  run_case "one 10 MB value" "" "INSERT INTO big VALUES (1, repeat('x', 10485760))"
done
