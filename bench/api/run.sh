#!/usr/bin/env bash
# API round trip over TLS (client certificates, a new connection per request as the CLIs make them) beside the unix
# socket, on one daemon: `GET /services` timed by curl (time_total: connect, TLS handshake, request, answer; no
# process start), and `skep service ls` end to end (process start included). Reports p50/p90; asserts nothing.
#   bench/api/run.sh [N]     (N requests per case, default 200; SKEP_BIN overrides the binary)
set -euo pipefail
N=${1:-200}
REPO=$(cd "$(dirname "$0")/../.." && pwd)
BIN=${SKEP_BIN:-${CARGO_TARGET_DIR:-$REPO/target}/debug/skep}
[ -x "$BIN" ] || { echo "no skep binary at $BIN (cargo build -p skep-cli, or set SKEP_BIN)" >&2; exit 1; }
DIR=$(mktemp -d /tmp/skep-bench-api.XXXXXX)
PORT=${SKEP_BENCH_API_PORT:-23761}
cleanup() { [ -n "${PID:-}" ] && kill "$PID" 2>/dev/null; wait 2>/dev/null; rm -rf "$DIR"; }
trap cleanup EXIT
cd "$DIR"
key="openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes"
$key -x509 -days 1 -subj /CN=bench-ca -keyout ca-key.pem -out ca.pem 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' >server.ext
printf 'extendedKeyUsage=clientAuth\n' >client.ext
for who in server client; do
    $key -subj /CN=$who -keyout $who-key.pem -out $who.csr 2>/dev/null
    openssl x509 -req -days 1 -in $who.csr -CA ca.pem -CAkey ca-key.pem -CAcreateserial -extfile $who.ext -out $who-cert.pem 2>/dev/null
done
mkdir certs && cp ca.pem certs/ca.pem && cp client-cert.pem certs/cert.pem && cp client-key.pem certs/key.pem
SOCK=$DIR/skep.sock
"$BIN" daemon --engine process --data-root "$DIR/data" -H "unix://$SOCK" -H "tcp://127.0.0.1:$PORT" \
    --tlsverify --tlscacert ca.pem --tlscert server-cert.pem --tlskey server-key.pem >daemon.log 2>&1 &
PID=$!
for _ in $(seq 100); do [ -S "$SOCK" ] && break; sleep 0.1; done
"$BIN" -H "unix://$SOCK" swarm init --advertise-addr 127.0.0.1 --listen-addr 127.0.0.1:23777 >/dev/null

pct() { sort -n | awk -v p="$1" '{a[NR]=$1} END {i=int((NR-1)*p+1); printf "%.2f", a[i]*1000}'; }
report() { # name file
    printf '%-36s p50 %6s ms   p90 %6s ms\n' "$1" "$(pct 0.5 <"$2")" "$(pct 0.9 <"$2")"
}
for i in $(seq "$N"); do curl -s -o /dev/null -w '%{time_total}\n' --unix-socket "$SOCK" http://localhost/v1.50/services; done >unix.txt
for i in $(seq "$N"); do
    curl -s -o /dev/null -w '%{time_total}\n' --cacert ca.pem --cert client-cert.pem --key client-key.pem "https://127.0.0.1:$PORT/v1.50/services"
done >tls.txt
urls() { local u=$1; for _ in $(seq "$N"); do echo "$u"; done; }
# shellcheck disable=SC2046
curl -s -w '\n%{time_total}\n' --unix-socket "$SOCK" $(urls http://localhost/v1.50/services) \
    | grep -E '^[0-9]+\.[0-9]+$' | tail -n +2 >unix-ka.txt
# shellcheck disable=SC2046
curl -s -w '\n%{time_total}\n' --cacert ca.pem --cert client-cert.pem --key client-key.pem \
    $(urls "https://127.0.0.1:$PORT/v1.50/services") | grep -E '^[0-9]+\.[0-9]+$' | tail -n +2 >tls-ka.txt
t() { local s e; s=$(date +%s.%N); "$@" >/dev/null; e=$(date +%s.%N); echo "$e - $s" | bc -l; }
for i in $(seq "$N"); do t "$BIN" -H "unix://$SOCK" service ls; done >cli-unix.txt
for i in $(seq "$N"); do t env SKEP_TLS_VERIFY=1 SKEP_CERT_PATH="$DIR/certs" "$BIN" -H "tcp://127.0.0.1:$PORT" service ls; done >cli-tls.txt
echo "API round trip, $N requests each ($(nproc) cores, $(date -u +%F))"
report "GET /services, unix socket" unix.txt
report "GET /services, TLS (new connection)" tls.txt
report "GET /services, unix, kept alive" unix-ka.txt
report "GET /services, TLS, kept alive" tls-ka.txt
report "skep service ls, unix socket" cli-unix.txt
report "skep service ls, TLS" cli-tls.txt
