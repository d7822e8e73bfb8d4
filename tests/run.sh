#!/usr/bin/env bash
# The whole test suite: unit tests, trait suites, and the multi-host tests (network namespaces as hosts, real daemons,
# the stock docker CLI). Installs what it needs on a fresh Debian machine. Run as root (namespaces need it).
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v ip >/dev/null || need_apt+=(iproute2)
command -v ping >/dev/null || need_apt+=(iputils-ping)
command -v busybox >/dev/null || need_apt+=(busybox-static)
command -v nft >/dev/null || need_apt+=(nftables)
command -v nsenter >/dev/null || need_apt+=(util-linux)
command -v python3 >/dev/null || need_apt+=(python3-minimal)
# the image tests' registry, and htpasswd for its auth cases
command -v docker-registry >/dev/null || need_apt+=(docker-registry)
command -v htpasswd >/dev/null || need_apt+=(apache2-utils)
[ -x /usr/bin/chromium ] || need_apt+=(chromium)  # t48: the web view in a headless browser
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "==> installing ${need_apt[*]}"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
if ! cargo nextest --version >/dev/null 2>&1; then
  echo "==> installing cargo-nextest"
  cargo install cargo-nextest --locked
fi

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
echo "==> building"
cargo build --workspace --all-targets
export SKEP_BIN="$CARGO_TARGET_DIR/debug/skep"
# as root, a missing netns facility is a failure, not a skip
if [ "$(id -u)" = 0 ]; then export SKEP_TESTS_REQUIRE_NETNS=1 SKEP_TESTS_REQUIRE_REGISTRY=1; fi
# doc tests first, so that the suite's last line is nextest's summary of the whole run
echo "==> doc tests"
cargo test --workspace --doc -q
# every decoder of outside input, fuzzed briefly and repeatably (fuzz/run.sh; docs/design/fuzzing.md)
echo "==> fuzzing (short)"
bash fuzz/run.sh --short
echo "==> tests"
# the seeded chaos test (t44) runs its short mode: about a minute of random faults, the same ones each run
export SKEP_CHAOS="${SKEP_CHAOS:-short}" SKEP_CHAOS_SEED="${SKEP_CHAOS_SEED:-20261207}"
cargo nextest run --workspace --no-fail-fast
