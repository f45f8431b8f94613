#!/usr/bin/env bash
# The whole test suite: installs what is missing, checks formatting and
# lints, then runs every unit, property and end-to-end test.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh --tests
cargo fmt --all --check
cargo clippy --workspace --all-targets -- -D warnings
cargo test --workspace
