#!/usr/bin/env bash
# Soak of the live daemon: `telescope run` on one end of a veth pair inside a private
# network namespace, fed a generated telescope day (mkpcap -day) replayed in a loop by
# tcpreplay from a second namespace, with a checkpoint every SOAK_CHECKPOINT, /metrics
# scraped every SOAK_SCRAPE, a reload (SIGHUP) every SOAK_RELOAD and an interface flap
# (link down, then up) every SOAK_FLAP. Once a minute (SOAK_ROW) it prints a row: elapsed
# time, RSS, Go heap in use, goroutines, open fds, packets captured, kernel drops, and the
# last checkpoint (time, worker pause, bytes, from the daemon's debug log).
#
# Usage (root; needs ip, tcpreplay, curl): scripts/soak.sh DURATION   e.g. 1h, 90m, 300s
#   SOAK_SHORT=1 scripts/soak.sh     a 100 s run with everything every few seconds that
#                                    fails (exit 1) on a growth trend: RSS, goroutines or fds
#                                    at the end above their values after warm-up by more
#                                    than SOAK_MAX_RSS_MB (40), SOAK_MAX_GOROUTINES (5),
#                                    SOAK_MAX_FDS (5).
#   SOAK_SCALE (2; short 1) day scale, SOAK_PPS (5000; short 10000) replay rate, SOAK_WINDOW (the
#   config's window: 5m; short 10s), SOAK_WARMUP (600 s; short 50 s).
#   SOAK_PCAP=FILE replays FILE instead of the generated day, SOAK_DARK (default the day's
#   "[203.0.113.0/24, 198.51.100.0/24, 2001:db8:1::/48]") sets dark_prefixes: e.g. a swarm
#   over a dark /16, SOAK_PCAP=sw.pcap SOAK_DARK="[203.0.0.0/16]" (mkpcap -swarm).
#   SOAK_RING_MB (16) the capture ring's size (the config's default is 64).
# Everything it creates (namespaces by name, processes by PID) is removed on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin:/usr/sbin:/sbin"

to_seconds() {
	local d=$1
	case "$d" in
	*h) echo $((${d%h} * 3600)) ;;
	*m) echo $((${d%m} * 60)) ;;
	*s) echo "${d%s}" ;;
	*) echo "$d" ;;
	esac
}

if [ "${SOAK_SHORT:-}" = 1 ]; then
	duration=$(to_seconds "${1:-100s}")
	: "${SOAK_ROW:=10}" "${SOAK_SCRAPE:=2}" "${SOAK_RELOAD:=25}" "${SOAK_FLAP:=40}" "${SOAK_CHECKPOINT:=5s}" "${SOAK_WARMUP:=50}"
	# A short window and a fast replay: the tables reach their steady state (every source
	# of the day seen, episodes of a window ending) within the warm-up.
	# (one loop of the scale-1 day takes ~25 s; the state is steady after two).
	: "${SOAK_WINDOW:=10s}" "${SOAK_PPS:=10000}" "${SOAK_SCALE:=1}"
else
	[ $# -ge 1 ] || { echo "usage: scripts/soak.sh DURATION (e.g. 1h)" >&2; exit 2; }
	duration=$(to_seconds "$1")
	: "${SOAK_ROW:=60}" "${SOAK_SCRAPE:=5}" "${SOAK_RELOAD:=180}" "${SOAK_FLAP:=300}" "${SOAK_CHECKPOINT:=10s}" "${SOAK_WARMUP:=600}"
	: "${SOAK_WINDOW:=5m}" "${SOAK_PPS:=5000}" "${SOAK_SCALE:=2}"
fi
scale=$SOAK_SCALE
pps=$SOAK_PPS
[ "$(id -u)" = 0 ] || { echo "soak: needs root (network namespaces, AF_PACKET)" >&2; exit 2; }
for tool in ip tcpreplay curl; do
	command -v "$tool" >/dev/null || { echo "soak: needs $tool" >&2; exit 2; }
done

dir=$(mktemp -d /tmp/telescope-soak.XXXXXX)
nsa="tsoak-$$-a"
nsb="tsoak-$$-b"
ifa="tsk$$a"
ifb="tsk$$b"
ifa=${ifa:0:15}
ifb=${ifb:0:15}
daemon_pid=""
replay_pid=""
cleanup() {
	set +e
	[ -n "$replay_pid" ] && kill "$replay_pid" 2>/dev/null && wait "$replay_pid" 2>/dev/null
	if [ -n "$daemon_pid" ] && kill -0 "$daemon_pid" 2>/dev/null; then
		kill -TERM "$daemon_pid"
		for _ in $(seq 50); do kill -0 "$daemon_pid" 2>/dev/null || break; sleep 0.2; done
		kill -KILL "$daemon_pid" 2>/dev/null
	fi
	ip netns del "$nsa" 2>/dev/null
	ip netns del "$nsb" 2>/dev/null
	if [ "${SOAK_KEEP:-}" = 1 ]; then echo "soak: files kept in $dir"; else rm -rf "$dir"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

CGO_ENABLED=0 go build -o "$dir/telescope" ./cmd/telescope
if [ -n "${SOAK_PCAP:-}" ]; then
	echo "== built the daemon; replaying $SOAK_PCAP"
	ln -s "$(realpath "$SOAK_PCAP")" "$dir/day.pcap"
else
	echo "== building the daemon and a generated day (scale $scale)"
	go run ./internal/cmd/mkpcap -day "$scale" -seed 1 -o "$dir/day.pcap" >/dev/null
fi

for ns in "$nsa" "$nsb"; do
	ip netns add "$ns"
	ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
done
ip -n "$nsa" link set lo up
link_up() {
	ip -n "$nsa" link add "$ifa" type veth peer name "$ifb" netns "$nsb"
	ip -n "$nsb" link set "$ifb" up
	ip -n "$nsa" link set "$ifa" up
}
link_up

cat >"$dir/telescope.yaml" <<YAML
sensor: soak
window: $SOAK_WINDOW
dark_prefixes: ${SOAK_DARK:-[203.0.113.0/24, 198.51.100.0/24, 2001:db8:1::/48]}
capture: {interface: $ifa, workers: 2, ring_mb: ${SOAK_RING_MB:-16}}
web: {listen_address: "127.0.0.1:9813"}
state: {path: $dir/state, checkpoint_interval: $SOAK_CHECKPOINT}
log: {level: debug}
YAML

# ip netns exec execs the command in place: $! is the daemon's own PID.
ip netns exec "$nsa" "$dir/telescope" run --config "$dir/telescope.yaml" 2>"$dir/daemon.log" &
daemon_pid=$!
scrape() { ip netns exec "$nsa" curl -sf --max-time 5 http://127.0.0.1:9813/metrics >"$dir/metrics.txt"; }
for _ in $(seq 100); do scrape && break; sleep 0.1; done
scrape || { echo "soak: the daemon did not come up:"; cat "$dir/daemon.log"; exit 1; }

start_replay() {
	ip netns exec "$nsb" tcpreplay -q --loop=0 --pps="$pps" -i "$ifb" "$dir/day.pcap" >"$dir/tcpreplay.log" 2>&1 &
	replay_pid=$!
}
start_replay

metric() { # metric NAME [LABEL-SUBSTRING]: sum of the samples of NAME (matching the substring)
	awk -v n="$1" -v l="${2:-}" '$1 ~ "^"n"({|$)" && index($1, l) { s += $NF } END { printf "%.0f", s }' "$dir/metrics.txt"
}
rss_mb() { awk '/^VmRSS/ { printf "%.1f", $2 / 1024 }' "/proc/$daemon_pid/status"; }
fds() { ls "/proc/$daemon_pid/fd" | wc -l; }
last_ck() { # elapsed, max worker pause, MB of the last periodic checkpoint
	{ grep '"msg":"state checkpoint written"' "$dir/daemon.log" || true; } | tail -1 |
		sed -n 's/.*"bytes":\([0-9]*\).*"max_worker_pause":"\([^"]*\)".*"elapsed":"\([^"]*\)".*/\3 \2 \1/p' |
		awk '{ printf "%s %s %.1f", $1, $2, $3 / 1e6 }'
}

printf '%8s %9s %9s %6s %5s %12s %8s %7s %5s %12s %12s %6s\n' elapsed rss_MB heap_MB gorout fds packets k_drops reloads flaps ck_elapsed ck_pause ck_MB
t0=$(date +%s)
next_row=$((t0 + SOAK_ROW))
next_reload=$((t0 + SOAK_RELOAD))
next_flap=$((t0 + SOAK_FLAP))
reloads=0
flaps=0
warm_rss="" warm_gor="" warm_fds=""
row() {
	local now=$1
	scrape || { echo "soak: scrape failed"; return 1; }
	local ck
	ck=$(last_ck)
	local r g f
	r=$(rss_mb) g=$(metric go_goroutines) f=$(fds)
	printf '%7ss %9s %9.1f %6s %5s %12s %8s %7s %5s %12s %12s %6s\n' $((now - t0)) "$r" \
		"$(metric go_memstats_heap_inuse_bytes | awk '{ print $1 / 1048576 }')" "$g" "$f" \
		"$(metric telescope_capture_packets_total)" "$(metric telescope_capture_drops_total 'where="kernel"')" \
		"$reloads" "$flaps" "$(echo "$ck" | awk '{print $1}')" "$(echo "$ck" | awk '{print $2}')" "$(echo "$ck" | awk '{print $3}')"
	if [ -z "$warm_rss" ] && [ $((now - t0)) -ge "$SOAK_WARMUP" ]; then
		warm_rss=$r warm_gor=$g warm_fds=$f
	fi
	last_rss=$r last_gor=$g last_fds=$f
}

while :; do
	now=$(date +%s)
	[ $((now - t0)) -ge "$duration" ] && break
	kill -0 "$daemon_pid" 2>/dev/null || { echo "soak: the daemon exited:"; tail -20 "$dir/daemon.log"; exit 1; }
	kill -0 "$replay_pid" 2>/dev/null || start_replay # it stops when the link goes away
	scrape || echo "soak: scrape failed at $((now - t0)) s"
	if [ "$now" -ge "$next_reload" ]; then
		kill -HUP "$daemon_pid"
		reloads=$((reloads + 1))
		next_reload=$((now + SOAK_RELOAD))
	fi
	if [ "$now" -ge "$next_flap" ]; then
		ip -n "$nsa" link set "$ifa" down
		sleep 2
		ip -n "$nsa" link set "$ifa" up
		flaps=$((flaps + 1))
		next_flap=$((now + SOAK_FLAP))
	fi
	if [ "$now" -ge "$next_row" ]; then
		row "$now"
		next_row=$((next_row + SOAK_ROW))
	fi
	sleep "$SOAK_SCRAPE"
done
row "$(date +%s)"
ck_count=$(grep -c '"msg":"state checkpoint written"' "$dir/daemon.log" || true)
ck_fail=$(grep -c '"msg":"state checkpoint failed' "$dir/daemon.log" || true)
reload_ok=$(grep -c '"msg":"config reloaded"' "$dir/daemon.log" || true)
# Error lines other than the capture reopening after a flap (expected).
errors=$(grep '"level":"error"' "$dir/daemon.log" | grep -vc '"msg":"capture stopped; reopening"' || true)
echo "checkpoints written $ck_count, failed $ck_fail; reloads $reload_ok of $reloads; interface flaps $flaps; error lines $errors"

if [ "${SOAK_SHORT:-}" = 1 ]; then
	fail=0
	[ -n "$warm_rss" ] || { echo "soak: no row after the warm-up"; exit 1; }
	check() { # check WHAT WARM LAST BOUND
		if awk -v w="$2" -v l="$3" -v b="$4" 'BEGIN { exit !(l > w + b) }'; then
			echo "FAIL: $1 grew from $2 after warm-up to $3 (bound +$4)"
			fail=1
		else
			echo "ok: $1 $2 after warm-up, $3 at the end (bound +$4)"
		fi
	}
	check "RSS MB" "$warm_rss" "$last_rss" "${SOAK_MAX_RSS_MB:-40}"
	check goroutines "$warm_gor" "$last_gor" "${SOAK_MAX_GOROUTINES:-5}"
	check fds "$warm_fds" "$last_fds" "${SOAK_MAX_FDS:-5}"
	[ "$ck_count" -gt 0 ] && [ "$ck_fail" = 0 ] || { echo "FAIL: checkpoints written $ck_count, failed $ck_fail"; fail=1; }
	[ "$reload_ok" = "$reloads" ] || { echo "FAIL: $reload_ok of $reloads reloads logged"; fail=1; }
	[ "$errors" = 0 ] || { echo "FAIL: $errors error lines in the log:"; grep '"level":"error"' "$dir/daemon.log" | grep -v '"msg":"capture stopped; reopening"' | head -5; fail=1; }
	[ "$(metric telescope_capture_packets_total)" -gt 0 ] || { echo "FAIL: nothing captured"; fail=1; }
	exit "$fail"
fi
