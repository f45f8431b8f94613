#!/usr/bin/env bash
# Installs what building and testing Tributary needs on a Debian machine that
# has a Rust toolchain (cargo) but nothing else: libclang-dev (rusqlite's
# session feature runs bindgen), and PostgreSQL's psql and pgbench (the
# end-to-end tests and benchmarks drive the router with them).
set -euo pipefail

need=()
dpkg -s libclang-dev >/dev/null 2>&1 || need+=(libclang-dev)
command -v psql >/dev/null 2>&1 || need+=(postgresql-client)
# Debian ships pgbench with the server package.
[ -x /usr/lib/postgresql/15/bin/pgbench ] || ls /usr/lib/postgresql/*/bin/pgbench >/dev/null 2>&1 || need+=(postgresql)

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
