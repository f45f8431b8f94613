#!/usr/bin/env bash
# Installs what building and testing Tributary needs on a Debian machine that
# has a Rust toolchain (cargo) but nothing else: libclang-dev (rusqlite's
# session feature runs bindgen), PostgreSQL's psql and pgbench (the
# end-to-end tests and benchmarks drive the router with them), docker-compose
# (to validate docker/compose.yml) and the tansu broker (Kafka backend tests).
set -euo pipefail

need=()
dpkg -s libclang-dev >/dev/null 2>&1 || need+=(libclang-dev)
command -v psql >/dev/null 2>&1 || need+=(postgresql-client)
# Debian ships pgbench with the server package.
[ -x /usr/lib/postgresql/15/bin/pgbench ] || ls /usr/lib/postgresql/*/bin/pgbench >/dev/null 2>&1 || need+=(postgresql)
# docker/compose.yml is validated with `docker-compose config` (no engine needed).
command -v docker-compose >/dev/null 2>&1 || need+=(docker-compose)

if [ ${#need[@]} -gt 0 ]; then
  echo "setup: installing ${need[*]}" >&2
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi

command -v cargo >/dev/null 2>&1 || {
  echo "setup: cargo not found; install Rust (https://rustup.rs) first" >&2
  exit 1
}

# The log-consumer test reads the Debezium topics with kafka-python.
python3 -c "import kafka" >/dev/null 2>&1 || python3 -m pip install -q kafka-python==3.0.12

# The Kafka backend's tests run against tansu, a Kafka-protocol broker from
# crates.io. Building it takes 10-17 minutes once; the binary stays in
# ~/.cargo/bin. Set SKIP_TANSU=1 to skip (only `./scripts/up.sh` does).
if [ "${SKIP_TANSU:-0}" != 1 ] && ! command -v tansu >/dev/null 2>&1 \
   && [ ! -x "${CARGO_HOME:-$HOME/.cargo}/bin/tansu" ]; then
  echo "setup: installing tansu (one time, 10-17 minutes)" >&2
  cargo install tansu --locked --features dynostore
fi
