#!/usr/bin/env bash
# Builds the skep container image with the local Docker engine, FROM scratch: no base image is pulled, so it works
# without a registry. The root is assembled from this machine: the skep binary, the ip, nft and nsenter programs it
# runs, every shared library they load (from ldd, the dynamic loader included), the CA bundle (registry pulls over
# HTTPS), a minimal /etc/passwd and /etc/group, and empty /tmp, /run/skep, /var/lib/skep.
#
#   deploy/docker/build.sh [--bin PATH] [--tag NAME:TAG]
#
#   --bin PATH      the skep binary (default: target/release/skep; `cargo build --release -p skep-cli`)
#   --tag NAME:TAG  the image's name (default skep:<workspace version>)
#
# How to run it: deploy/docker/Dockerfile and docs/install.md. Prints the tag.
set -Eeuo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BIN=$REPO/target/release/skep
TAG=""

die() { printf 'docker/build.sh: %s\n' "$*" >&2; exit 1; }

while [[ $# -gt 0 ]]; do
    case $1 in
        --bin) [[ $# -ge 2 ]] || die "--bin needs a path"; BIN=$2; shift 2 ;;
        --tag) [[ $# -ge 2 ]] || die "--tag needs NAME:TAG"; TAG=$2; shift 2 ;;
        -h|--help) sed -n '2,/^set -E/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown argument: $1 (see --help)" ;;
    esac
done
[[ -f $BIN && -x $BIN ]] || die "no skep binary at $BIN: build it with \`cargo build --release -p skep-cli\` or give --bin"
if [[ -z $TAG ]]; then
    version=$(sed -n '/^\[workspace.package\]/,/^\[/{s/^version *= *"\(.*\)"/\1/p}' "$REPO/Cargo.toml" | head -n1)
    TAG=skep:${version:-latest}
fi
command -v docker >/dev/null || die "the docker CLI is missing"

CTX=$(mktemp -d)
trap 'rm -rf "$CTX"' EXIT
ROOT=$CTX/rootfs
install -D -m 0755 "$BIN" "$ROOT/usr/bin/skep"
progs=("$ROOT/usr/bin/skep")
for tool in ip nft nsenter; do
    path=$(command -v "$tool") || die "$tool is missing here (apt-get install iproute2 nftables util-linux)"
    path=$(readlink -f "$path")
    install -D -m 0755 "$path" "$ROOT/usr/sbin/$tool"
    progs+=("$path")
done
# every library at the path the loader looks for it (ldd's left-hand absolute paths cover the loader itself)
for lib in $(ldd "${progs[@]}" | awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// && NF == 2 {print $1}' | sort -u); do
    real=$(readlink -f "$lib")
    install -D -m "$(stat -c %a "$real")" "$real" "$ROOT$lib"
done
if [[ -f /etc/ssl/certs/ca-certificates.crt ]]; then
    install -D -m 0644 /etc/ssl/certs/ca-certificates.crt "$ROOT/etc/ssl/certs/ca-certificates.crt"
else
    printf 'docker/build.sh: warning: no /etc/ssl/certs/ca-certificates.crt; the image cannot pull over HTTPS\n' >&2
fi
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n' >"$ROOT/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' >"$ROOT/etc/group"
install -d -m 1777 "$ROOT/tmp"
install -d -m 0755 "$ROOT/run/skep" "$ROOT/run/netns" "$ROOT/etc/skep"
install -d -m 0700 "$ROOT/var/lib/skep"
cp "$REPO/deploy/docker/Dockerfile" "$CTX/Dockerfile"
# the classic builder: buildx may be absent, and FROM scratch needs nothing it adds
DOCKER_BUILDKIT=0 docker build -q -t "$TAG" "$CTX" >/dev/null
echo "$TAG"
