#!/usr/bin/env bash
# Fuzzes every decoder that takes outside input with libFuzzer (cargo-fuzz), on stable Rust (docs/design/fuzzing.md).
#   fuzz/run.sh [TARGET…]            each target for FUZZ_SECONDS (default 300) on one core; new inputs are kept in
#                                    fuzz/corpus/<target>, crashes in fuzz/artifacts/<target>
#   fuzz/run.sh --short [TARGET…]    what CI runs: each target replays its corpus, then 200 000 new inputs from seed 1
#                                    (repeatable), leaving the corpus as it is
set -euo pipefail
cd "$(dirname "$0")"

short=0
if [ "${1:-}" = --short ]; then short=1; shift; fi
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(transport_frame raft_entry snapshot api_specs text_inputs)

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "==> installing cargo-fuzz"
  cargo install cargo-fuzz --locked
fi
# its own target directory: the instrumented build must not replace the workspace's artifacts
export CARGO_TARGET_DIR="${FUZZ_TARGET_DIR:-${CARGO_TARGET_DIR:-$PWD/../target}/fuzz}"
echo "==> building the fuzz targets"
cargo fuzz build -s none -O

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
for t in "${targets[@]}"; do
  mkdir -p "corpus/$t"
  if [ $short = 1 ]; then
    echo "==> fuzz $t (short: corpus, then 200000 inputs from seed 1)"
    mkdir -p "$scratch/$t"
    cargo fuzz run -s none -O "$t" "$scratch/$t" "corpus/$t" -- -seed=1 -runs=200000 -max_len=65536 \
      -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 2>&1 | tail -n 15
  else
    echo "==> fuzz $t for ${FUZZ_SECONDS:-300} s"
    cargo fuzz run -s none -O "$t" "corpus/$t" -- -max_total_time="${FUZZ_SECONDS:-300}" -max_len=65536 \
      -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 2>&1 | tail -n 15
  fi
done
