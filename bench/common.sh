# Sourced by the bench scripts: the repository root, the shared pgbench
# scripts, set-up, the binary under test and a scratch directory.
#   TRIBUTARY_BIN=/path/to/tributary   # an already-built binary (before/after runs)
cd "$(dirname "${BASH_SOURCE[1]}")/.."
root=$(pwd)
shared=${SHARED_BENCH:-$root/../shared/bench}
./scripts/setup.sh
if [ -n "${TRIBUTARY_BIN:-}" ]; then
  bin=$TRIBUTARY_BIN
else
  cargo build --release -q -p tributary --bin tributary
  bin=$root/target/release/tributary
fi
work=$(mktemp -d)
