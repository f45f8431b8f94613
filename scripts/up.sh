#!/usr/bin/env bash
# Builds Tributary (release) and runs `tributary up` with any arguments given,
# e.g. ./scripts/up.sh --replicas 3 --routers 2 --ack semi-sync
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
cargo build --release -p tributary --bin tributary
exec ./target/release/tributary up "$@"
