#!/usr/bin/env bash
# Network data plane benchmark (see bench/net/README.md), all figures in one run, side by side:
#   (a) iperf3 between two task sandboxes through a skep VXLAN network vs between the same two hosts on the underlay
#   (b) wrk keep-alive through skep's routing mesh vs a direct path vs HAProxy (mode tcp), + serial latency
#   (c) connection churn (a new connection per request) through the mesh vs direct vs HAProxy
# Hosts are network namespaces (skbn-*) on one underlay bridge, addresses 10.213.200-202.x; the skep parts are
# made through skep-overlay's API (DataPlane, nft::apply_ingress), as the daemon makes them.
# Run as root, from anywhere:
#   bench/net/run.sh                       # defaults: 3 iperf3 rounds, 2 HTTP rounds; ~4 min after the build
#   bench/net/run.sh --rounds 3 --parts a  # any `skep-bench-net all` option (see --help)
# Markdown tables go to stdout, progress to stderr. Everything (namespaces, processes) is removed on any exit.
set -u
cd "$(dirname "$0")/../.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"

[ "$(id -u)" = 0 ] || { echo "run as root (network namespaces, nftables)" >&2; exit 1; }

# --- tools -------------------------------------------------------------------------------------------------------
missing=()
for t in iperf3 wrk haproxy; do command -v "$t" >/dev/null || missing+=("$t"); done
command -v nft >/dev/null || missing+=(nftables)
command -v taskset >/dev/null || missing+=(util-linux)
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing ${missing[*]}" >&2
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive timeout 600 apt-get install -y -qq "${missing[@]}"; } >/dev/null \
    || { echo "apt-get install ${missing[*]} failed" >&2; exit 1; }
fi
cargo build --release -q -p skep-bench-net >&2 || exit 1
BIN="$CARGO_TARGET_DIR/release/skep-bench-net"

# --- cleanup on every exit ---------------------------------------------------------------------------------------
# The binary tears down on its own exit paths (also SIGINT/SIGTERM); this is the backstop for a SIGKILLed binary:
# stop it, then kill (by PID) whatever still runs in a skbn-* namespace and delete those namespaces.
BENCH_PID=
cleanup() {
  if [ -n "$BENCH_PID" ] && kill -0 "$BENCH_PID" 2>/dev/null; then
    kill -TERM "$BENCH_PID" 2>/dev/null
    for _ in $(seq 50); do kill -0 "$BENCH_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$BENCH_PID" 2>/dev/null
  fi
  [ -n "$BENCH_PID" ] && rm -rf "/tmp/skbn-$BENCH_PID"   # the binary's scratch directory, if it could not remove it
  "$BIN" cleanup 2>/dev/null || {
    for ns in $(ip netns list 2>/dev/null | awk '$1 ~ /^skbn-/ { print $1 }'); do
      for p in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$p" 2>/dev/null; done
      ip netns del "$ns" 2>/dev/null
    done
  }
}
trap cleanup EXIT
trap 'exit 130' INT TERM

"$BIN" all "$@" &
BENCH_PID=$!
wait "$BENCH_PID"
rc=$?
[ $rc = 0 ] && BENCH_PID=
exit $rc
