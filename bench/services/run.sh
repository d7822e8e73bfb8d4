#!/usr/bin/env bash
# Service benchmarks (see bench/services/README.md). Run from anywhere; needs root, Docker for vs-docker.
# Takes about 8-10 minutes. Writes bench/services/results.md (overwritten) and prints the same.
#   bench/services/run.sh            # everything
#   bench/services/run.sh sim        # only the simulated-worker runs
#   bench/services/run.sh vs-docker  # only the Docker comparison
#   bench/services/run.sh secret-rotation  # only the secret rotation beside Docker swarm
#   bench/services/run.sh rolling-update   # only the rolling update beside Docker swarm
#   bench/services/run.sh health-cost      # only the healthcheck CPU beside Docker swarm
set -u
cd "$(dirname "$0")/../.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
cargo build --release -p skep-cli -p skep-bench-services >&2 || exit 1
B="$CARGO_TARGET_DIR/release/skep-bench-services"
SKEP="$CARGO_TARGET_DIR/release/skep"
OUT=bench/services/results.md
what="${1:-all}"
rc=0
{
  echo "# skep service benchmarks — $(date -u +%FT%TZ)"
  echo
  echo "Machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB, $(uname -r); Docker $(docker version --format '{{.Server.Version}}' 2>/dev/null || echo absent). Load average at start: $(cut -d' ' -f1-3 /proc/loadavg)."
  echo
} > "$OUT"
if [ "$what" = all ] || [ "$what" = sim ]; then
  # the goal configuration, then what this 2-core machine sustains
  "$B" --out "$OUT" sim --skep "$SKEP" --workers 1000 --replicas 10000 --kill 100 --update-parallelism 500 --timeout 120 || rc=1
  "$B" --out "$OUT" sim --skep "$SKEP" --workers 1000 --replicas 2000 --kill 100 --timeout 120 || rc=1
  "$B" --out "$OUT" sim --skep "$SKEP" --workers 200 --replicas 2000 --kill 20 --timeout 120 || rc=1
fi
if [ "$what" = all ] || [ "$what" = vs-docker ]; then
  had_image=0
  docker image inspect skep-bench-busybox:latest >/dev/null 2>&1 && had_image=1
  "$B" --out "$OUT" vs-docker --skep "$SKEP" --replicas 50 --runs 3 || rc=1
  # the image is this run's fixture: remove it unless it was there before
  [ "$had_image" = 0 ] && docker image rm skep-bench-busybox:latest >/dev/null 2>&1
fi
# the Docker comparisons: the image is this run's fixture, removed afterwards unless it was there before
beside_docker() {
  local had_image=0
  docker image inspect skep-bench-busybox:latest >/dev/null 2>&1 && had_image=1
  "$B" --out "$OUT" "$@" --skep "$SKEP" || rc=1
  [ "$had_image" = 0 ] && docker image rm skep-bench-busybox:latest >/dev/null 2>&1
}
if [ "$what" = all ] || [ "$what" = secret-rotation ]; then
  beside_docker secret-rotation --replicas 10 --runs 3
fi
if [ "$what" = all ] || [ "$what" = rolling-update ]; then
  beside_docker rolling-update --replicas 50 --parallelism 5 --runs 3
fi
if [ "$what" = all ] || [ "$what" = health-cost ]; then
  beside_docker health-cost --replicas 20 --interval 1 --seconds 30
fi
echo "results: $OUT" >&2
exit $rc
