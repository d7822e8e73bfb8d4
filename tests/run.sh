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
if [ "$(id -u)" = 0 ]; then export SKEP_TESTS_REQUIRE_NETNS=1; fi
echo "==> tests"
cargo nextest run --workspace --no-fail-fast
echo "==> doc tests"
cargo test --workspace --doc -q
