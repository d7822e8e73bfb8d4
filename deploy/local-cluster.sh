#!/usr/bin/env bash
# A 5-node skep swarm on this machine, each node in its own network namespace.
#
#   deploy/local-cluster.sh [up]   build skep, create the hosts, start daemons, form the swarm (runs `down` first)
#   deploy/local-cluster.sh down   stop the daemons, remove namespaces, links and data
#   deploy/local-cluster.sh status what runs, and `node ls` from n1
#
# Layout: switch namespace skep-sw holds bridge br0; hosts skep-n1..skep-n5 have eth0 = 10.213.250.1-5/24 and
# no default route (they reach each other only). Data, sockets and logs live in /tmp/skep-local/nX.
# n1 inits the swarm, n2 and n3 join as managers, n4 and n5 as workers. n1 also runs a registry (Debian's
# docker-registry, installed if missing) at 10.213.250.1:5000, which every daemon may reach over plain HTTP
# (--insecure-registry); the demo's image is built there from busybox-static with `skep image import`.
#
# Environment: SKEP_BIN (use this binary, skip the build), SKEP_LOCAL_DIR (default /tmp/skep-local),
# RUST_LOG (daemon log filter, default info), SKEP_ENGINE (process, the default, or docker), SKEP_DEMO=0 (no demo
# service). Needs root and iproute2.
set -Eeuo pipefail

ROOT_DIR=${SKEP_LOCAL_DIR:-/tmp/skep-local}
NET=10.213.250
SWITCH=skep-sw
NODES=(1 2 3 4 5)
MANAGERS=(2 3)
WORKERS=(4 5)
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
REGISTRY=$NET.1:5000
START_TRIES=60   # × 0.5 s for a daemon's API to answer
STOP_TRIES=20    # × 0.5 s between SIGTERM and SIGKILL
BIN=""

say() { printf '==> %s\n' "$*"; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

ns_of() { echo "skep-n$1"; }
dir_of() { echo "$ROOT_DIR/n$1"; }
sock_of() { echo "unix://$ROOT_DIR/n$1/skep.sock"; }
ns_exists() { ip netns list | awk '{print $1}' | grep -qx "$1"; }

require_root() {
    [[ $(id -u) -eq 0 ]] || die "run as root (network namespaces need it)"
    command -v ip >/dev/null || die "iproute2 (ip) is not installed"
}

find_bin() {
    if [[ -n ${SKEP_BIN:-} ]]; then
        [[ -x $SKEP_BIN ]] || die "SKEP_BIN=$SKEP_BIN is not an executable"
        BIN=$SKEP_BIN
        return
    fi
    BIN=${CARGO_TARGET_DIR:-$REPO/target}/release/skep
}

build() {
    find_bin
    if [[ -z ${SKEP_BIN:-} ]]; then
        command -v cargo >/dev/null || die "cargo not found; install Rust or set SKEP_BIN"
        say "building skep (cargo build --release -p skep-cli)"
        (cd "$REPO" && cargo build --release -p skep-cli)
    fi
    [[ -x $BIN ]] || die "no skep binary at $BIN"
    say "using $BIN"
}

skep() { # skep <node> <args...>
    local n=$1; shift
    "$BIN" -H "$(sock_of "$n")" "$@"
}

stop_daemon() {
    local n=$1 pidfile pid i
    pidfile="$(dir_of "$n")/daemon.pid"
    [[ -f $pidfile ]] || return 0
    pid=$(cat "$pidfile")
    if kill -0 "$pid" 2>/dev/null; then
        say "stopping n$n (pid $pid)"
        kill -TERM "$pid" 2>/dev/null || true
        for ((i = 0; i < STOP_TRIES; i++)); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.5
        done
        if kill -0 "$pid" 2>/dev/null; then
            say "n$n ignored SIGTERM; killing it"
            kill -KILL "$pid" 2>/dev/null || true
        fi
    fi
    rm -f "$pidfile"
}

down() {
    require_root
    local n ns pid
    for n in "${NODES[@]}"; do
        stop_daemon "$n"
        ns=$(ns_of "$n")
        if ns_exists "$ns"; then
            for pid in $(ip netns pids "$ns" 2>/dev/null); do
                kill -KILL "$pid" 2>/dev/null || true
            done
            ip netns delete "$ns"
            say "removed namespace $ns"
        fi
    done
    # process-engine tasks outlive their daemon on purpose (a restarted daemon adopts them) and run in namespaces of
    # their own, so they are found by their task directory under the data root
    if [[ -d $ROOT_DIR ]]; then
        local left
        left=$(pgrep -f "$ROOT_DIR/" || true)
        if [[ -n $left ]]; then
            kill -KILL $left 2>/dev/null || true
            say "stopped $(wc -w <<<"$left") task processes"
        fi
    fi
    # the daemons' overlay and sandbox namespaces lived in their mount namespaces; only empty files remain
    rm -f /run/netns/skep-n[0-9]-x-* 2>/dev/null || true
    if ns_exists "$SWITCH"; then
        ip netns delete "$SWITCH"
        say "removed namespace $SWITCH (bridge and veths went with it)"
    fi
    if [[ -d $ROOT_DIR ]]; then
        rm -rf "$ROOT_DIR"
        say "removed $ROOT_DIR"
    fi
}

make_network() {
    local n ns
    say "creating switch namespace $SWITCH with bridge br0"
    ip netns add "$SWITCH"
    ip -n "$SWITCH" link set lo up
    ip -n "$SWITCH" link add br0 type bridge
    ip -n "$SWITCH" link set br0 up
    for n in "${NODES[@]}"; do
        ns=$(ns_of "$n")
        say "creating host $ns at $NET.$n"
        ip netns add "$ns"
        ip -n "$ns" link set lo up
        ip -n "$SWITCH" link add "n$n" type veth peer name eth0 netns "$ns"
        ip -n "$SWITCH" link set "n$n" master br0
        ip -n "$SWITCH" link set "n$n" up
        ip -n "$ns" addr add "$NET.$n/24" dev eth0
        ip -n "$ns" link set eth0 up
    done
}

start_daemon() {
    local n=$1 dir i
    dir=$(dir_of "$n")
    mkdir -p "$dir"
    # each host also gets its own UTS namespace, so nodes show as skep-n1..skep-n5 in `node ls` and `service ps`
    RUST_LOG=${RUST_LOG:-info} setsid ip netns exec "$(ns_of "$n")" unshare --uts sh -c 'hostname "$0" && exec "$@"' \
        "skep-n$n" "$BIN" daemon --engine "${SKEP_ENGINE:-process}" --insecure-registry "$REGISTRY" --net-prefix "skep-n$n-x" --data-root "$dir" -H "$(sock_of "$n")" </dev/null >>"$dir/daemon.log" 2>&1 &
    echo $! >"$dir/daemon.pid"
    for ((i = 0; i < START_TRIES; i++)); do
        if skep "$n" info >/dev/null 2>&1; then
            say "n$n is up (pid $(cat "$dir/daemon.pid"), log $dir/daemon.log)"
            return 0
        fi
        kill -0 "$(cat "$dir/daemon.pid")" 2>/dev/null || break
        sleep 0.5
    done
    tail -n 30 "$dir/daemon.log" >&2 || true
    die "daemon n$n did not come up; its log is above"
}

# The registry on n1 (its files under $ROOT_DIR/registry), for the demo's image.
start_registry() {
    command -v docker-registry >/dev/null || { say "installing docker-registry for the demo's image"; apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker-registry >/dev/null; }
    local dir=$ROOT_DIR/registry i
    mkdir -p "$dir/data"
    printf 'version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: %s\nhttp:\n  addr: %s\n' "$dir/data" "$REGISTRY" >"$dir/config.yml"
    setsid ip netns exec "$(ns_of 1)" docker-registry serve "$dir/config.yml" </dev/null >>"$dir/registry.log" 2>&1 &
    echo $! >"$dir/registry.pid"
    for ((i = 0; i < START_TRIES; i++)); do
        if ip netns exec "$(ns_of 1)" bash -c "exec 3<>/dev/tcp/${REGISTRY%:*}/${REGISTRY#*:}" 2>/dev/null; then
            say "registry at $REGISTRY (log $dir/registry.log)"
            return 0
        fi
        sleep 0.5
    done
    die "the registry did not come up; see $dir/registry.log"
}

# The demo's image root: busybox-static and a CGI page naming the task.
make_image_root() {
    local root=$ROOT_DIR/image
    mkdir -p "$root/bin" "$root/www/cgi-bin" "$root/tmp"
    cp "$(command -v busybox)" "$root/bin/busybox"
    ln -sf busybox "$root/bin/sh"
    cat >"$root/www/cgi-bin/index.cgi" <<'CGI'
#!/bin/sh
printf 'Content-Type: text/plain\r\n\r\n'
echo "hello from $(busybox hostname), task address $(busybox ip -o -4 addr show eth0 | busybox awk '{print $4}')"
CGI
    chmod +x "$root/www/cgi-bin/index.cgi"
}

# The demo's image: that root as one layer, pushed with `skep image import`.
build_image() {
    local root=$ROOT_DIR/image
    make_image_root
    ip netns exec "$(ns_of 1)" "$BIN" image import --insecure --cmd /bin/busybox --cmd httpd --cmd -f --cmd -p --cmd 80 \
        --cmd -h --cmd /www "$root" "$REGISTRY/demo/web:1" >/dev/null
    say "image $REGISTRY/demo/web:1 built from busybox-static and pushed"
}

# The demo: an overlay network and a web service published through the routing mesh on port 8080. Each task runs
# the demo image (process engine: pulled from the registry on n1, its own root and namespaces) whose page names the
# task and its address; the script then asks every node for the page, including nodes that run no demo task.
demo() {
    command -v busybox >/dev/null || { say "installing busybox-static for the demo service"; apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq busybox-static >/dev/null; }
    local n i
    say "demo: overlay network 'demo-net' and service 'demo' (3 replicas, published on port 8080 of every node)"
    skep 1 network create -d overlay demo-net >/dev/null
    if [ "${SKEP_ENGINE:-process}" = docker ]; then
        # the docker engine pulls through the machine's Docker daemon, which cannot reach the lab's registry
        local www=$ROOT_DIR/image/www
        make_image_root
        skep 1 service create --name demo --replicas 3 --network demo-net --publish 8080:80 \
            --mount "type=bind,source=$www,target=/www" busybox httpd -f -p 80 -h /www
    else
        start_registry
        build_image
        skep 1 service create --name demo --replicas 3 --network demo-net --publish 8080:80 "$REGISTRY/demo/web:1"
    fi
    skep 1 service ps demo
    say "the routing mesh: GET http://10.213.250.N:8080/ on every node (asked from n1)"
    local k
    for n in "${NODES[@]}"; do
      for k in 1 2; do  # twice per node: each node balances connections over the tasks
        for ((i = 0; i < 20; i++)); do
            # (busybox nc rather than busybox wget: Debian's static wget crashes inside `ip netns exec`)
            out=$(printf 'GET / HTTP/1.0\r\n\r\n' | ip netns exec "$(ns_of 1)" busybox nc -w 2 "$NET.$n" 8080 2>/dev/null | tail -n 1 || true)
            if [[ $out == hello* ]]; then
                printf '  node n%s -> %s\n' "$n" "$out"
                break
            fi
            sleep 0.5
        done
        [ "$i" -lt 20 ] || printf '  node n%s -> no answer\n' "$n"
      done
    done
}

up() {
    require_root
    down
    trap 'printf "error: up failed (line %s); left as is for inspection: logs in %s/nX/daemon.log; remove with: %s down\n" "$LINENO" "$ROOT_DIR" "$0" >&2' ERR
    build
    make_network
    mkdir -p "$ROOT_DIR"
    local n
    for n in "${NODES[@]}"; do
        start_daemon "$n"
    done
    say "initialising the swarm on n1"
    skep 1 swarm init --advertise-addr "$NET.1" --listen-addr "$NET.1:2377"
    local mtoken wtoken
    mtoken=$(skep 1 swarm join-token -q manager)
    wtoken=$(skep 1 swarm join-token -q worker)
    for n in "${MANAGERS[@]}"; do
        say "n$n joins as a manager"
        skep "$n" swarm join --token "$mtoken" --advertise-addr "$NET.$n" --listen-addr "$NET.$n:2377" "$NET.1:2377"
    done
    for n in "${WORKERS[@]}"; do
        say "n$n joins as a worker"
        skep "$n" swarm join --token "$wtoken" --advertise-addr "$NET.$n" --listen-addr "$NET.$n:2377" "$NET.1:2377"
    done
    sleep 1
    say "skep node ls (from n1)"
    skep 1 node ls
    if [ "${SKEP_DEMO:-1}" = 1 ]; then
        demo
    fi
    cat <<USAGE

The cluster is up. To use it:
  export SKEP_HOST=unix://$ROOT_DIR/n1/skep.sock
  $BIN node ls
  $BIN service ls
  DOCKER_CONFIG=\$(mktemp -d) docker -H \$SKEP_HOST node ls      # the stock docker CLI works too
Other nodes: unix://$ROOT_DIR/nX/skep.sock (X = 1..5); logs: $ROOT_DIR/nX/daemon.log
The demo page through any node: printf 'GET / HTTP/1.0\r\n\r\n' | ip netns exec skep-n1 busybox nc $NET.4 8080
Shell on a host: ip netns exec skep-n2 bash      Stop everything: $0 down
USAGE
    trap - ERR
}

status() {
    require_root
    find_bin
    local n ns pid state
    for n in "${NODES[@]}"; do
        ns=$(ns_of "$n")
        pid=$(cat "$(dir_of "$n")/daemon.pid" 2>/dev/null || true)
        if ! ns_exists "$ns"; then
            state="no namespace"
        elif [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null; then
            state="running (pid $pid)"
        else
            state="daemon not running"
        fi
        printf 'n%s  %-14s %s\n' "$n" "$NET.$n" "$state"
    done
    if [[ -x $BIN ]] && skep 1 info >/dev/null 2>&1; then
        echo
        skep 1 node ls || true
    fi
}

case ${1:-up} in
    up) up ;;
    down) down; say "local cluster removed" ;;
    status) status ;;
    -h | --help | help) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//' ;;
    *) die "unknown command '$1' (use up, down or status)" ;;
esac
