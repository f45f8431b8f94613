#!/usr/bin/env bash
# Installs what building Tributary needs on a Debian machine that has a Rust
# toolchain (cargo) but nothing else: libclang-dev (rusqlite's session
# feature runs bindgen) and PostgreSQL's psql and pgbench (to talk to the
# router, run the end-to-end tests and the benchmarks).
#
# With --tests it also installs what only the test suite needs:
# docker-compose (to validate docker/compose.yml), kafka-python (the log
# consumer test), psycopg, asyncpg, SQLAlchemy and node-postgres (driver
# tests), Chromium (the status page test) and the tansu broker (the Kafka backend's tests; building
# it takes 15-25 minutes once, the binary stays in ~/.cargo/bin).
set -euo pipefail
tests=0
[ "${1:-}" = "--tests" ] && tests=1

need=()
dpkg -s libclang-dev >/dev/null 2>&1 || need+=(libclang-dev)
command -v psql >/dev/null 2>&1 || need+=(postgresql-client)
# Debian ships pgbench with the server package.
ls /usr/lib/postgresql/*/bin/pgbench >/dev/null 2>&1 || need+=(postgresql)
if [ $tests = 1 ]; then
  command -v docker-compose >/dev/null 2>&1 || need+=(docker-compose)
  command -v npm >/dev/null 2>&1 || need+=(nodejs npm)
  # pgjdbc for the Java client test (tests/java), and a JDK to run it.
  [ -e /usr/share/java/postgresql.jar ] || need+=(libpostgresql-jdbc-java)
  command -v java >/dev/null 2>&1 || need+=(default-jdk-headless)
  command -v pip3 >/dev/null 2>&1 || python3 -m pip --version >/dev/null 2>&1 || need+=(python3-pip)
  # Headless Chromium renders the status page in its test (~30 s to install).
  command -v chromium >/dev/null 2>&1 || need+=(chromium)
  # The verify test corrupts a replica file behind Tributary's back with it.
  command -v sqlite3 >/dev/null 2>&1 || need+=(sqlite3)
fi

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

if [ $tests = 1 ]; then
  # kafka-python: the log consumer test; psycopg, asyncpg, SQLAlchemy,
  # Django: the driver and ORM tests.
  pip_install() {
    python3 -m pip install -q "$@" || python3 -m pip install -q --break-system-packages "$@"
  }
  python3 -c "import kafka" >/dev/null 2>&1 || pip_install kafka-python==3.0.12
  python3 -c "import psycopg" >/dev/null 2>&1 || pip_install "psycopg[binary]==3.3.*"
  python3 -c "import asyncpg" >/dev/null 2>&1 || pip_install "asyncpg==0.32.*"
  python3 -c "import sqlalchemy" >/dev/null 2>&1 || pip_install "sqlalchemy==2.*"
  python3 -c "import django" >/dev/null 2>&1 || pip_install "django==5.2.*"
  # node-postgres for tests/node.
  node_dir="$(dirname "$0")/../tests/node"
  [ -d "$node_dir/node_modules/pg" ] || npm install --silent --prefix "$node_dir" >/dev/null
  # dynostore gives the in-memory engine, libsql an SQLite-file engine (the
  # crash harness kills and restarts the broker on it). A marker records the
  # features of the cached binary so an older build is replaced once.
  bin="${CARGO_HOME:-$HOME/.cargo}/bin"
  features="dynostore,libsql"
  if [ ! -x "$bin/tansu" ] || [ "$(cat "$bin/.tansu-features" 2>/dev/null)" != "$features" ]; then
    echo "setup: installing tansu with $features (one time, 15-25 minutes)" >&2
    cargo install tansu --locked --force --features "$features"
    echo "$features" > "$bin/.tansu-features"
  fi
fi
