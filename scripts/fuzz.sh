#!/usr/bin/env bash
# Runs each fuzz target for FUZZ_SECONDS (default 60): the record decoder,
# the log segment reader, SQL classification and the router's message
# handling (a real router in-process, fed client bytes over TCP). Inputs that
# once crashed (fuzz/regressions/<target>) are run first and must pass. A new
# crash stops the script and is written to fuzz/artifacts/<target>/.
#
#   scripts/fuzz.sh                               # all targets, 60 s each
#   FUZZ_SECONDS=600 FUZZ_TARGETS=router_messages scripts/fuzz.sh
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
secs=${FUZZ_SECONDS:-60}
targets=${FUZZ_TARGETS:-"record_decode segment_scan sql_classify router_messages"}
command -v g++ >/dev/null || { sudo apt-get update && sudo apt-get install -y g++; }
cargo fuzz --version >/dev/null 2>&1 || cargo install cargo-fuzz --locked
# cargo-fuzz passes -Z flags (coverage instrumentation); the only toolchain
# here is stable, and RUSTC_BOOTSTRAP=1 lets it accept them. No sanitizer:
# the code under test is safe Rust (`unsafe_code = "forbid"`).
export RUSTC_BOOTSTRAP=1
for t in $targets; do
  mkdir -p "corpus/$t"
  cp -n seeds/"$t"/* "corpus/$t/" 2>/dev/null || true
  dirs=("corpus/$t")
  [ -d "regressions/$t" ] && dirs+=("regressions/$t")
  echo "== $t: ${secs}s"
  cargo fuzz run -s none "$t" "${dirs[@]}" -- -max_total_time="$secs" -timeout=20 2>&1 \
    | grep -E "^(Done|INFO: seed|==|SUMMARY)|panicked|ERROR" || true
  test "${PIPESTATUS[0]}" -eq 0 || { echo "$t: crash, see fuzz/artifacts/$t"; exit 1; }
done
echo "all fuzz targets ran ${secs}s without a crash"
