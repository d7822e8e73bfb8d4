#!/usr/bin/env bash
# Runs the whole benchmark: installs etcd 3.4 (Debian's etcd-server) if missing, builds skep and skep-bench in
# release mode, then `skep-bench all` (fsync, store writes at 1 and 64 clients, 20 failover trials per system).
# Results (markdown tables) go to stdout, progress to stderr. Extra arguments go to `skep-bench all`.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(dirname "$here")"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target}"

if ! command -v etcd >/dev/null 2>&1; then
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq etcd-server etcd-client >&2
fi
# The Debian package may start a system etcd on the default ports; the bench uses its own ports and data dirs.

cd "$root"
cargo build --release -q -p skep-cli -p skep-bench >&2
export SKEP_BIN="${SKEP_BIN:-$CARGO_TARGET_DIR/release/skep}"
exec "$CARGO_TARGET_DIR/release/skep-bench" all --clients 1,64 --seconds 10 --value-size 256 --trials 20 "$@"
