#!/usr/bin/env bash
# The whole test suite: installs what is missing, checks formatting, lints
# and the architecture's rules (ARCHITECTURE.md), then runs every unit,
# property and end-to-end test.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh --tests
cargo fmt --all --check
cargo clippy --workspace --all-targets -- -D warnings
# The resolver stays free of any async runtime, even transitively.
if cargo tree -p resolver -e normal --prefix none | grep -q '^tokio '; then
  echo "resolver depends on tokio (see ARCHITECTURE.md, crate map)" >&2
  exit 1
fi
# Only the wal-bus names a log client: the router does not depend on
# rdkafka at all, the binary only through wal-bus's `kafka` feature.
if cargo tree -p router -e normal --prefix none | grep -q '^rdkafka '; then
  echo "router depends on rdkafka (see ARCHITECTURE.md, crate map)" >&2
  exit 1
fi
# SQL is parsed in the router only (DESIGN.md's crate table): the log and
# the replicas carry and run SQLite statements the router translated.
for crate in wal-bus replica; do
  if cargo tree -p "$crate" -e normal --prefix none | grep -q '^sqlparser '; then
    echo "$crate depends on sqlparser (see ARCHITECTURE.md, crate map)" >&2
    exit 1
  fi
done
if grep -rn 'rdkafka::' router/src tributary/src; then
  echo "router and tributary must not use rdkafka; go through wal_bus::open" >&2
  exit 1
fi
# Small files: nothing over 500 lines.
big=$(git ls-files '*.rs' | xargs wc -l | awk '$2 != "total" && $1 > 500')
if [ -n "$big" ]; then
  echo "files over 500 lines:" >&2
  echo "$big" >&2
  exit 1
fi
# The wal-bus builds without its runtime (what the resolver gets).
cargo check -q -p wal-bus --no-default-features
cargo test --workspace
