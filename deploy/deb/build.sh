#!/usr/bin/env bash
# Builds a Debian package of skep with Debian's own dpkg-deb (no cargo plugin needed):
#
#   deploy/deb/build.sh [--bin PATH] [--out DIR] [--version VERSION] [--compression xz|gzip|none]
#
#   --bin PATH         the skep binary (default: target/release/skep; `cargo build --release -p skep-cli`)
#   --out DIR          where skep_<version>_<arch>.deb is written (default: the current directory)
#   --version VERSION  the package version (default: the workspace version in Cargo.toml)
#   --compression C    of the package's data (default xz, Debian's; none is fast, for tests of a debug build)
#
# The package holds what deploy/install.sh installs with --prefix /usr --unit-dir /lib/systemd/system:
# /usr/bin/skep, /lib/systemd/system/skep.service, /etc/default/skep (a conffile: dpkg keeps the operator's edits),
# /etc/skep/tls (0700) and /var/lib/skep (0700), all owned by root. Depends: the shared libraries' packages (found
# with dpkg -S from ldd), iproute2, nftables and util-linux (skep runs ip, nft and nsenter).
# Maintainer scripts: a fresh install does not start the daemon (`systemctl enable --now skep` after writing
# /etc/default/skep); an upgrade restarts a running daemon on the new binary (try-restart: its tasks keep running and
# are adopted), which is how docs/install.md upgrades one manager at a time; removal stops the daemon; nothing
# removes /var/lib/skep, not even a purge (it holds the node's identity and, on managers, the cluster state).
# Prints the path of the package.
set -Eeuo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BIN=""
OUT=$PWD
VERSION=""
COMPRESSION=xz

die() { printf 'deb/build.sh: %s\n' "$*" >&2; exit 1; }

while [[ $# -gt 0 ]]; do
    case $1 in
        --bin) [[ $# -ge 2 ]] || die "--bin needs a path"; BIN=$2; shift 2 ;;
        --out) [[ $# -ge 2 ]] || die "--out needs a directory"; OUT=$2; shift 2 ;;
        --version) [[ $# -ge 2 ]] || die "--version needs a value"; VERSION=$2; shift 2 ;;
        --compression) [[ $# -ge 2 ]] || die "--compression needs xz, gzip or none"; COMPRESSION=$2; shift 2 ;;
        -h|--help) sed -n '2,/^set -E/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown argument: $1 (see --help)" ;;
    esac
done
command -v dpkg-deb >/dev/null || die "dpkg-deb is missing (apt-get install dpkg)"
if [[ -z $VERSION ]]; then
    VERSION=$(sed -n '/^\[workspace.package\]/,/^\[/{s/^version *= *"\(.*\)"/\1/p}' "$REPO/Cargo.toml" | head -n1)
    [[ -n $VERSION ]] || die "no version in $REPO/Cargo.toml's [workspace.package]; give --version"
fi
[[ $VERSION =~ ^[0-9][A-Za-z0-9.+~-]*$ ]] || die "not a Debian version: $VERSION"
ARCH=$(dpkg --print-architecture)
[[ -d $OUT ]] || die "--out $OUT is not a directory"
case $COMPRESSION in xz|gzip|none) ;; *) die "--compression must be xz, gzip or none, not $COMPRESSION" ;; esac

STAGE=$(mktemp -d)
trap 'rm -rf "$STAGE"' EXIT
ROOT=$STAGE/root
"$REPO/deploy/install.sh" ${BIN:+--bin "$BIN"} --prefix /usr --unit-dir /lib/systemd/system --destdir "$ROOT" >/dev/null
BIN=$ROOT/usr/bin/skep

# the shared libraries' packages; a library no package owns is reported, not silently left out
deps=()
while read -r lib; do
    pkg=$(dpkg -S "$lib" 2>/dev/null | head -n1 | cut -d: -f1) || true
    if [[ -z $pkg ]]; then
        real=$(readlink -f "$lib")
        pkg=$(dpkg -S "$real" 2>/dev/null | head -n1 | cut -d: -f1) || true
    fi
    [[ -n $pkg ]] || die "no package owns $lib, which skep links; build skep against packaged libraries"
    deps+=("$pkg")
done < <(ldd "$BIN" | awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// && NF == 2 {print $1}')
depends=$(printf '%s\n' "${deps[@]}" iproute2 nftables util-linux | sort -u | paste -sd, | sed 's/,/, /g')

mkdir -p "$ROOT/DEBIAN"
cat >"$ROOT/DEBIAN/control" <<EOF
Package: skep
Version: $VERSION
Architecture: $ARCH
Maintainer: ${DEB_MAINTAINER:-skep developers <skep@localhost>}
Installed-Size: $(du -sk --exclude=DEBIAN "$ROOT" | cut -f1)
Depends: $depends
Section: admin
Priority: optional
Description: swarm-mode clustering layer for container hosts
 skep runs a Docker-swarm-compatible cluster: managers keep the state in a
 Raft-replicated store, nodes talk QUIC with mutual TLS, and the daemon's API
 is the Docker Engine API (swarm subset) on /run/skep/skep.sock.
EOF
echo /etc/default/skep >"$ROOT/DEBIAN/conffiles"
cat >"$ROOT/DEBIAN/postinst" <<'EOF'
#!/bin/sh
set -e
if [ "$1" = configure ] && [ -d /run/systemd/system ]; then
    systemctl daemon-reload || true
    if [ -n "$2" ]; then
        # an upgrade: a running daemon restarts on the new binary; its tasks keep running and are adopted
        systemctl try-restart skep.service || true
    else
        echo "skep: edit /etc/default/skep, then systemctl enable --now skep (docs/install.md)"
    fi
fi
EOF
cat >"$ROOT/DEBIAN/prerm" <<'EOF'
#!/bin/sh
set -e
if [ "$1" = remove ] && [ -d /run/systemd/system ]; then
    # the tasks keep running (KillMode=process); `skep swarm leave` before removing the package stops them
    systemctl disable --now skep.service || true
fi
EOF
cat >"$ROOT/DEBIAN/postrm" <<'EOF'
#!/bin/sh
set -e
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload || true
fi
if [ "$1" = purge ]; then
    echo "skep: /var/lib/skep (node identity, cluster state) and /etc/skep are kept; remove them by hand"
fi
EOF
chmod 0755 "$ROOT/DEBIAN/postinst" "$ROOT/DEBIAN/prerm" "$ROOT/DEBIAN/postrm"
chmod 0644 "$ROOT/DEBIAN/control" "$ROOT/DEBIAN/conffiles"

DEB=$OUT/skep_${VERSION}_${ARCH}.deb
dpkg-deb --root-owner-group "-Z$COMPRESSION" --build "$ROOT" "$DEB" >/dev/null
echo "$DEB"
