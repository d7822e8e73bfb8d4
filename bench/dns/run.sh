#!/usr/bin/env bash
# DNS benchmark (see bench/dns/README.md): dnsperf queries/s for service names against skep's embedded DNS, unbound
# and dnsmasq serving the same names. Each server runs on core 1 (one thread / one single-threaded runtime), dnsperf
# on core 0. Run from anywhere, as root (installs dnsperf, unbound and dnsmasq-base when missing). Only 127.0.0.1.
#   bench/dns/run.sh
#   SERVICES=1000 SECONDS_PER_RUN=10 ROUNDS=3 CLIENTS=16 OUTSTANDING=200 LATENCY_QPS=20000 bench/dns/run.sh
# Takes about ROUNDS*3*SECONDS_PER_RUN + 3*LATENCY_SECONDS seconds (~3 min with the defaults) after the build.
set -u
cd "$(dirname "$0")/../.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"

SERVICES="${SERVICES:-1000}"           # svc0..svcN-1, each with a VIP and tasks.svcI with 3 addresses
SECONDS_PER_RUN="${SECONDS_PER_RUN:-10}"
ROUNDS="${ROUNDS:-5}"                  # throughput runs per server, interleaved skep/unbound/dnsmasq; median and best reported
CLIENTS="${CLIENTS:-16}"               # dnsperf -c (source sockets)
OUTSTANDING="${OUTSTANDING:-200}"      # dnsperf -q (queries in flight)
LATENCY_QPS="${LATENCY_QPS:-20000}"    # fixed rate of the latency run (dnsperf -Q), the same for every server
LATENCY_SECONDS="${LATENCY_SECONDS:-5}"
SERVER_CPU=1
CLIENT_CPU=0
PORT_SKEP=15301 PORT_UNBOUND=15302 PORT_DNSMASQ=15303

[ "$(nproc)" -ge 2 ] || { echo "needs 2 cores (server and dnsperf on different cores)" >&2; exit 1; }

# --- tools -------------------------------------------------------------------------------------------------------
missing=()
command -v dnsperf >/dev/null || missing+=(dnsperf)
[ -x /usr/sbin/unbound ] || missing+=(unbound)
[ -x /usr/sbin/dnsmasq ] || missing+=(dnsmasq-base)
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing ${missing[*]}" >&2
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive timeout 600 apt-get install -y -qq "${missing[@]}"; } >/dev/null \
    || { echo "apt-get install ${missing[*]} failed" >&2; exit 1; }
fi
# the unbound package may start its own service on port 53; ours uses its own config and port, so leave it be
cargo build --release -q -p skep-bench-dns >&2 || exit 1
SKEP="$CARGO_TARGET_DIR/release/skep-bench-dns"

# --- servers are stopped on any exit -----------------------------------------------------------------------------
W="$(mktemp -d /tmp/skep-bench-dns.XXXXXX)"
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
  for p in "${PIDS[@]}"; do
    for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$p" 2>/dev/null
  done
  rm -rf "$W"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- the same names for every server -----------------------------------------------------------------------------
# svcI: VIP 10.1.x.y; tasks.svcI: 10.2.x.y 10.3.x.y 10.4.x.y (x.y = I in base 256)
for ((i = 0; i < SERVICES; i++)); do
  xy="$((i / 256 % 256)).$((i % 256))"
  echo "service svc$i 10.1.$xy"
  echo "tasks svc$i 10.2.$xy 10.3.$xy 10.4.$xy"
done > "$W/names.skep"
awk '$1 == "service" { print $3, $2 } $1 == "tasks" { for (i = 3; i <= NF; i++) print $i, "tasks." $2 }' \
  "$W/names.skep" > "$W/hosts"
{
  cat <<EOF
server:
  interface: 127.0.0.1
  port: $PORT_UNBOUND
  do-ip6: no
  do-tcp: yes
  num-threads: 1
  do-daemonize: no
  chroot: ""
  username: ""
  directory: "$W"
  pidfile: ""
  use-syslog: no
  logfile: ""
  verbosity: 0
  access-control: 127.0.0.0/8 allow
  do-not-query-localhost: yes
  module-config: "iterator"
  rrset-roundrobin: yes
  minimal-responses: yes
  # no recursion: every name is local data, anything else NXDOMAIN from the static root zone
  local-zone: "." static
EOF
  awk '$1 == "service" { printf "  local-data: \"%s. 1 IN A %s\"\n", $2, $3 }
       $1 == "tasks" { for (i = 3; i <= NF; i++) printf "  local-data: \"tasks.%s. 1 IN A %s\"\n", $2, $i }' \
    "$W/names.skep"
} > "$W/unbound.conf"
awk '$1 == "service" { print $2, "A" } $1 == "tasks" { print "tasks." $2, "A" }' "$W/names.skep" > "$W/queries"

# --- start the three servers on the server core ------------------------------------------------------------------
declare -A PID
taskset -c $SERVER_CPU "$SKEP" "$W/names.skep" "127.0.0.1:$PORT_SKEP" 2>"$W/skep.log" &
PIDS+=($!) PID[skep]=$!
/usr/sbin/unbound-checkconf "$W/unbound.conf" >/dev/null || { echo "bad unbound config" >&2; exit 1; }
taskset -c $SERVER_CPU /usr/sbin/unbound -d -c "$W/unbound.conf" 2>"$W/unbound.log" &
PIDS+=($!) PID[unbound]=$!
taskset -c $SERVER_CPU /usr/sbin/dnsmasq -k -C /dev/null --no-resolv --no-hosts --addn-hosts="$W/hosts" \
  --listen-address=127.0.0.1 --bind-interfaces --port=$PORT_DNSMASQ --local-ttl=1 --pid-file= --user=root \
  --log-facility=- 2>"$W/dnsmasq.log" &
PIDS+=($!) PID[dnsmasq]=$!

declare -A PORT=([skep]=$PORT_SKEP [unbound]=$PORT_UNBOUND [dnsmasq]=$PORT_DNSMASQ)
SERVERS=(skep unbound dnsmasq)
last=$((SERVICES - 1))
for s in "${SERVERS[@]}"; do
  ok=0
  for _ in $(seq 50); do   # up to ~10 s for each to answer correctly
    if "$SKEP" check "127.0.0.1:${PORT[$s]}" svc0=1 tasks.svc0=3 "svc$last=1" "TASKS.svc$last.=3" 2>"$W/check.err"; then
      ok=1; break
    fi
    sleep 0.2
  done
  [ $ok = 1 ] || { echo "$s does not answer as expected: $(cat "$W/check.err")" >&2; tail -5 "$W/$s.log" >&2; exit 1; }
done

# --- measure -----------------------------------------------------------------------------------------------------
# dnsperf is single-threaded: on a busy machine it, not the server, may set the pace. So besides queries/s the server's
# own CPU time is measured (from /proc/PID/stat): queries answered per second of server CPU is the efficiency figure
# that does not depend on who was the bottleneck.
perf() { # server extra-args...
  local s=$1; shift
  taskset -c $CLIENT_CPU timeout $((SECONDS_PER_RUN + LATENCY_SECONDS + 30)) dnsperf -s 127.0.0.1 -p "${PORT[$s]}" \
    -d "$W/queries" -c "$CLIENTS" -q "$OUTSTANDING" "$@" 2>&1
}
ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }   # user+system CPU time so far, in clock ticks
TCK=$(getconf CLK_TCK)
declare -A QPS QPC CPU AVG LOST RSIZE P50 P99 P999 LMAX USQ
for ((r = 1; r <= ROUNDS; r++)); do
  for s in "${SERVERS[@]}"; do
    t0=$(ticks "${PID[$s]}")
    out="$(perf "$s" -l "$SECONDS_PER_RUN")"
    t=$(( $(ticks "${PID[$s]}") - t0 ))
    q=$(awk '/Queries per second:/ { printf "%.0f", $4 }' <<<"$out")
    done_=$(awk '/Queries completed:/ { print $3 }' <<<"$out")
    [ -n "$q" ] && [ "$t" -gt 0 ] || { echo "dnsperf against $s failed:" >&2; echo "$out" | tail -5 >&2; exit 1; }
    a=$(awk '/Average Latency/ { printf "%.3f", $4 * 1000 }' <<<"$out")
    l=$(awk '/Queries lost:/ { print $3 }' <<<"$out")
    c=$(( t * 100 / TCK / SECONDS_PER_RUN ))
    qpc=$(( done_ * TCK / t ))
    QPS[$s]+="$q " QPC[$s]+="$qpc " CPU[$s]+="$c " AVG[$s]+="$a " LOST[$s]+="$l "
    RSIZE[$s]=$(awk '/Average packet size:/ { print $7 }' <<<"$out")
    echo "round $r $s: $q q/s, server CPU ${c}% ($qpc q per CPU-second), avg ${a} ms, lost $l" >&2
  done
done
for s in "${SERVERS[@]}"; do
  # a fixed rate, the same for all: every response's latency (-v) for percentiles, and the CPU time per query
  t0=$(ticks "${PID[$s]}")
  perf "$s" -l "$LATENCY_SECONDS" -Q "$LATENCY_QPS" -v | awk '/^> / { print $NF * 1000 }' | sort -g > "$W/lat.$s"
  t=$(( $(ticks "${PID[$s]}") - t0 ))
  n=$(wc -l < "$W/lat.$s")
  pct() { awk -v n="$n" -v p="$1" 'BEGIN { k = int(n * p); if (k < n * p) k++; if (k < 1) k = 1 } NR == k { printf "%.3f", $1; exit }' "$W/lat.$s"; }
  P50[$s]=$(pct 0.5) P99[$s]=$(pct 0.99) P999[$s]=$(pct 0.999) LMAX[$s]=$(tail -1 "$W/lat.$s")
  USQ[$s]=$(awk -v t="$t" -v k="$TCK" -v n="$n" 'BEGIN { printf "%.1f", n ? t / k * 1e6 / n : 0 }')
  echo "latency $s: $n answers at $LATENCY_QPS q/s, p99 ${P99[$s]} ms, ${USQ[$s]} µs server CPU per query" >&2
done

median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
best() { tr ' ' '\n' | grep -v '^$' | sort -g | tail -1; }
echo "# DNS: skep embedded DNS vs unbound vs dnsmasq — $(date -u +%FT%TZ)"
echo
echo "Machine: $(nproc) cores ($(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)), $(uname -r); load average at end: $(cut -d' ' -f1-3 /proc/loadavg)."
echo "$(dnsperf -h 2>&1 | awk '/^Version/ { print "dnsperf " $2 }'), $(/usr/sbin/unbound -V | awk 'NR == 1 { print "unbound", $2 }'), $(/usr/sbin/dnsmasq -v | awk 'NR == 1 { print "dnsmasq", $3 }'), skep-dns (hickory-server $(awk '/^name = "hickory-server"/ { getline; print $3 }' Cargo.lock | tr -d '"'))."
echo "Names: $SERVICES services (svcN → VIP, tasks.svcN → 3 addresses); queries alternate svcN A / tasks.svcN A."
echo "Servers on core $SERVER_CPU, one thread each: skep = skep_dns::serve on a single-threaded (current_thread) tokio runtime; unbound num-threads: 1, local-data only; dnsmasq (single-threaded), addn-hosts."
echo "dnsperf on core $CLIENT_CPU: -c $CLIENTS -q $OUTSTANDING -l $SECONDS_PER_RUN, UDP, no EDNS; $ROUNDS rounds interleaved. Other load on the machine only lowers a round's q/s, so the best round is the closest to capacity; the median is shown too."
echo "q/CPU-s: queries answered per second of the server's own CPU time (independent of whether dnsperf or the server was the limit)."
echo "Latency and µs/q: a separate ${LATENCY_SECONDS} s run at a fixed $LATENCY_QPS q/s (dnsperf -Q -v), every response's latency."
echo
printf '| %-8s | %8s | %10s | %-34s | %-21s | %10s | %7s | %6s | %6s | %8s | %6s | %6s | %6s |\n' server "q/s best" "q/s median" \
  "q/s per round" "server CPU% per round" "q/CPU-s" "avg ms" "p50 ms" "p99 ms" "p99.9 ms" "max ms" "µs/q" "resp B"
echo "|----------|----------|------------|------------------------------------|-----------------------|------------|---------|--------|--------|----------|--------|--------|--------|"
for s in "${SERVERS[@]}"; do
  printf '| %-8s | %8s | %10s | %-34s | %-21s | %10s | %7s | %6s | %6s | %8s | %6s | %6s | %6s |\n' "$s" "$(best <<<"${QPS[$s]}")" \
    "$(median <<<"${QPS[$s]}")" "${QPS[$s]% }" "${CPU[$s]% }" "$(median <<<"${QPC[$s]}")" "$(median <<<"${AVG[$s]}")" \
    "${P50[$s]}" "${P99[$s]}" "${P999[$s]}" "${LMAX[$s]}" "${USQ[$s]}" "${RSIZE[$s]}"
done
echo
echo "Lost queries per round (dnsperf counts the queries still in flight when a run stops): $(for s in "${SERVERS[@]}"; do printf '%s %s; ' "$s" "$(tr ' ' '+' <<<"${LOST[$s]% }")"; done)"
echo
for s in unbound dnsmasq; do
  awk -v a="$(best <<<"${QPS[skep]}")" -v b="$(best <<<"${QPS[$s]}")" \
      -v e="$(median <<<"${QPS[skep]}")" -v f="$(median <<<"${QPS[$s]}")" \
      -v c="$(median <<<"${QPC[skep]}")" -v d="$(median <<<"${QPC[$s]}")" -v s="$s" \
      'BEGIN { printf "skep/%s: %.2f (best q/s), %.2f (median q/s), %.2f (q per CPU-second)\n", s, a / b, e / f, c / d }'
done
