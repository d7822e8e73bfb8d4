#!/usr/bin/env bash
# Installs skep on a Debian host (or into a staging root): the binary, the systemd unit, /etc/default/skep and the
# directories skep keeps its state and TLS files in, with the modes they need.
#
#   deploy/install.sh [--bin PATH] [--prefix DIR] [--destdir DIR] [--unit-dir DIR] [--enable] [--restart]
#                     [--no-reload]
#   deploy/install.sh --uninstall [--prefix DIR] [--destdir DIR] [--unit-dir DIR]
#
#   --bin PATH      the skep binary (default: target/release/skep of this checkout, or $CARGO_TARGET_DIR/release/skep;
#                   build it with `cargo build --release -p skep-cli`)
#   --prefix DIR    installs DIR/bin/skep and points the unit's ExecStart at it (default /usr/local; env PREFIX)
#   --destdir DIR   stages everything under DIR instead of / (env DESTDIR); systemctl is never run then
#   --unit-dir DIR  where the unit goes (default /etc/systemd/system)
#   --enable        systemctl enable --now skep after installing
#   --restart       systemctl try-restart skep: a running daemon restarts on the new binary over the same data
#                   root, its tasks keep running (an upgrade; do one manager at a time, see docs/install.md)
#   --no-reload     do not run systemctl at all
#   --uninstall     removes the binary and the unit; keeps /var/lib/skep (the node's identity and, on managers, the
#                   cluster state), /etc/default/skep and /etc/skep
#
# Installed: PREFIX/bin/skep 0755, UNIT_DIR/skep.service 0644, /etc/default/skep 0644 (only if absent: it is the
# operator's), /etc/skep 0755, /etc/skep/tls 0700 (the API's TLS key and certificates), /var/lib/skep 0700.
# The unit itself is deploy/systemd/skep.service; docs/install.md explains its KillMode=process and Delegate=yes.
set -Eeuo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN=""
PREFIX=${PREFIX:-/usr/local}
DESTDIR=${DESTDIR:-}
UNIT_DIR=/etc/systemd/system
ENABLE=0
RESTART=0
RELOAD=1
UNINSTALL=0

die() { printf 'install.sh: %s\n' "$*" >&2; exit 1; }
say() { printf '==> %s\n' "$*"; }

while [[ $# -gt 0 ]]; do
    case $1 in
        --bin) [[ $# -ge 2 ]] || die "--bin needs a path"; BIN=$2; shift 2 ;;
        --prefix) [[ $# -ge 2 ]] || die "--prefix needs a directory"; PREFIX=$2; shift 2 ;;
        --destdir) [[ $# -ge 2 ]] || die "--destdir needs a directory"; DESTDIR=$2; shift 2 ;;
        --unit-dir) [[ $# -ge 2 ]] || die "--unit-dir needs a directory"; UNIT_DIR=$2; shift 2 ;;
        --enable) ENABLE=1; shift ;;
        --restart) RESTART=1; shift ;;
        --no-reload) RELOAD=0; shift ;;
        --uninstall) UNINSTALL=1; shift ;;
        -h|--help) sed -n '2,/^set -E/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown argument: $1 (see --help)" ;;
    esac
done

[[ $PREFIX == /* ]] || die "--prefix must be absolute (it is the path the unit runs), not $PREFIX"
[[ $UNIT_DIR == /* ]] || die "--unit-dir must be absolute, not $UNIT_DIR"
[[ -z $DESTDIR || $DESTDIR == /* ]] || DESTDIR=$(pwd)/$DESTDIR
# a path with characters the unit's ExecStart or sed would read differently is refused, not mangled
[[ $PREFIX =~ ^[A-Za-z0-9_./-]+$ ]] || die "--prefix may hold only letters, digits and _ . / -: $PREFIX"
if [[ -n $DESTDIR ]]; then
    if [[ $ENABLE == 1 || $RESTART == 1 ]]; then die "--enable and --restart act on this host, not on --destdir"; fi
    RELOAD=0
elif [[ $(id -u) -ne 0 ]]; then
    die "run as root to install into / (or stage with --destdir DIR)"
fi

systemd_running() { [[ $RELOAD == 1 && -d /run/systemd/system ]] && command -v systemctl >/dev/null; }
if [[ $ENABLE == 1 || $RESTART == 1 ]] && ! systemd_running; then
    die "--enable and --restart need systemd running here (and no --no-reload)"
fi

if [[ $UNINSTALL == 1 ]]; then
    if systemd_running && systemctl is-active --quiet skep.service; then
        die "skep.service is running: have the node leave the swarm (skep swarm leave), then systemctl disable --now skep"
    fi
    rm -f "$DESTDIR$PREFIX/bin/skep" "$DESTDIR$UNIT_DIR/skep.service"
    if systemd_running; then systemctl daemon-reload; fi
    say "removed $DESTDIR$PREFIX/bin/skep and $DESTDIR$UNIT_DIR/skep.service"
    say "kept $DESTDIR/var/lib/skep, $DESTDIR/etc/default/skep and $DESTDIR/etc/skep (remove them by hand)"
    exit 0
fi

if [[ -z $BIN ]]; then
    for b in "$REPO/target/release/skep" "${CARGO_TARGET_DIR:+$CARGO_TARGET_DIR/release/skep}"; do
        if [[ -n $b && -x $b ]]; then BIN=$b; break; fi
    done
    [[ -n $BIN ]] || die "no skep binary: build it with \`cargo build --release -p skep-cli\` or give --bin PATH"
fi
[[ -f $BIN && -x $BIN ]] || die "$BIN is not an executable file"
"$BIN" --version >/dev/null 2>&1 || die "$BIN --version fails: not a skep binary for this machine?"

for tool in ip nft nsenter; do
    command -v "$tool" >/dev/null || printf 'install.sh: warning: %s is missing; skep needs it (apt-get install iproute2 nftables util-linux)\n' "$tool" >&2
done

say "installing $("$BIN" --version) into ${DESTDIR:-/} (prefix $PREFIX)"
# install(1) writes a new file and renames it: a daemon running the old binary keeps running it until restarted
install -d -m 0755 "$DESTDIR$PREFIX/bin" "$DESTDIR$UNIT_DIR" "$DESTDIR/etc/default" "$DESTDIR/etc/skep"
install -m 0755 "$BIN" "$DESTDIR$PREFIX/bin/skep"
sed "s|^ExecStart=/usr/local/bin/skep |ExecStart=$PREFIX/bin/skep |" "$REPO/deploy/systemd/skep.service" \
    >"$DESTDIR$UNIT_DIR/skep.service.tmp"
grep -q "^ExecStart=$PREFIX/bin/skep daemon " "$DESTDIR$UNIT_DIR/skep.service.tmp" || die "could not set the unit's ExecStart"
chmod 0644 "$DESTDIR$UNIT_DIR/skep.service.tmp"
mv -f "$DESTDIR$UNIT_DIR/skep.service.tmp" "$DESTDIR$UNIT_DIR/skep.service"
if [[ -e $DESTDIR/etc/default/skep ]]; then
    say "kept the existing $DESTDIR/etc/default/skep"
else
    install -m 0644 "$REPO/deploy/systemd/skep.default" "$DESTDIR/etc/default/skep"
fi
# the TLS key and the state are root's alone; an existing directory is narrowed to these modes too
install -d -m 0700 "$DESTDIR/etc/skep/tls" "$DESTDIR/var/lib/skep"
chmod 0700 "$DESTDIR/etc/skep/tls" "$DESTDIR/var/lib/skep"

if systemd_running; then
    systemctl daemon-reload
    if [[ $ENABLE == 1 ]]; then systemctl enable --now skep.service; fi
    if [[ $RESTART == 1 ]]; then systemctl try-restart skep.service; fi
    if systemctl is-active --quiet skep.service && [[ $RESTART == 0 && $ENABLE == 0 ]]; then
        say "skep.service runs the old binary until \`systemctl restart skep\` (one manager at a time: docs/install.md)"
    fi
elif [[ -z $DESTDIR && $RELOAD == 1 ]]; then
    say "systemd is not running here: start \`$PREFIX/bin/skep daemon\` another way"
fi
say "done; next: systemctl enable --now skep, then skep swarm init or skep swarm join (docs/install.md)"
