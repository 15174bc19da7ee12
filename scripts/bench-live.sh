#!/usr/bin/env bash
# Live capture under load: floods one end of a veth pair (inside two network namespaces this
# script creates and removes; nothing is sent anywhere else) and prints, per workload, the
# packets sent, the rate the sender reached with nothing capturing and while each program
# captured, and for telescope run (all detectors on, 2 workers, the day's dark prefixes), the
# same with every detector off (counting only: what the detectors add live) and then tcpdump
# -w /dev/null on the SAME packets: packets counted, kernel drops, and CPU time per packet
# counted (utime+stime of the whole process, all threads, from /proc/PID/stat before the
# injection and once the program has drained its ring). Root only.
#
# Workloads (arguments, default: flood day):
#   flood  FLOOD_PACKETS (default 3 M) TCP/23 SYNs from random sources (random source port,
#          IP ID and sequence number) to 203.0.113.0/24, sent by trafgen at its top rate from
#          one CPU (-P 1, no rate limit; RATE=500000pps sets trafgen's -b instead), each
#          program seeing the same packets (fixed trafgen seed)
#   mirai  the same flood with Mirai's fingerprint (seq == destination address): every packet
#          is a one-packet fingerprint episode
#   day    the generated telescope day at 20x (bench/day-20.pcap, built as scripts/bench.sh
#          --full does; DAY_PACKETS limits it), sent with tcpreplay --topspeed: trafgen 0.6.8
#          can read a pcap (-i FILE.pcap) but its load time grows faster than the packet
#          count (0.45 s for 20 k packets, 25 s for 100 k here), so it cannot send millions;
#          DAY_PPS=N sends at N packets per second instead (a quiet telescope: the workers
#          wait for most blocks, so the cost of waiting shows)
# Needs trafgen (apt-get install netsniff-ng), tcpreplay, tcpdump, ip.
#
# PERF=1 also records telescope with perf (call graphs, all threads) from the injection until
# it has drained, into bench/perf-WORKLOAD.data (perf report -i bench/perf-day.data
# --no-children -g none --sort sym), and the counters-only run into perf-WORKLOAD-off.data. TELESCOPE=BINARY runs that binary instead of building one
# (to interleave runs of two versions). WARM=1 sends each workload to telescope once before
# the measured run (the floods from other sources; the day again), so that the measure is of
# a running daemon whose tables are grown and faulted in, not of a fresh one: a fresh daemon
# spends much of a flood's CPU zeroing the pages its per-source and episode tables grow into.
# ROUNDS=N (default 1) measures each workload N times, the three programs in a rotating
# order (telescope, counters only, tcpdump; then counters only, tcpdump, telescope; ...), and
# prints each one's median CPU time per packet with its range and every round's figure: one
# run's figure moves by up to a half between identical runs on the development VM (297 and
# 497 ns a packet for the same binary within minutes; medians of three rounds of it 313 and
# 440 ns within the hour): compare two builds in runs alternated with each other (TELESCOPE).
# With PERF=1 the profiles are the last round's. PREFAULT=1 runs telescope with
# limits.prefault: true (its source tables' memory committed at start, before the measure).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin:/usr/sbin:/sbin"
[ "$(id -u)" = 0 ] || { echo "bench-live: needs root (network namespaces, AF_PACKET)"; exit 1; }
work=("${@:-flood day}")
read -r -a work <<<"${work[*]}"
need=(ip tcpdump)
for w in "${work[@]}"; do
	case $w in
	flood | mirai) need+=(trafgen) ;;
	day) need+=(tcpreplay) ;;
	*) echo "usage: $0 [flood] [mirai] [day]" >&2; exit 2 ;;
	esac
done
for tool in "${need[@]}"; do
	if ! command -v "$tool" >/dev/null; then
		case $tool in
		trafgen) echo "bench-live: trafgen is missing: install netsniff-ng (apt-get install netsniff-ng)" ;;
		*) echo "bench-live: $tool is missing (apt-get install $tool)" ;;
		esac
		exit 1
	fi
done
flood_n=${FLOOD_PACKETS:-3000000}
rounds=${ROUNDS:-1}
case $rounds in '' | *[!0-9]* | 0) echo "bench-live: ROUNDS must be a positive number, not '$rounds'"; exit 2 ;; esac
dir=bench
mkdir -p "$dir"
bin=${TELESCOPE:-$dir/telescope}
[ -n "${TELESCOPE:-}" ] || CGO_ENABLED=0 go build -o "$bin" ./cmd/telescope
# shellcheck source=scripts/bench-files.sh
. scripts/bench-files.sh # median, spread
if [ -n "${PERF:-}" ] && ! command -v perf >/dev/null; then
	echo "bench-live: PERF=1 needs perf (apt-get install linux-perf)"; exit 1
fi
day=$dir/day-20.pcap
case " ${work[*]} " in *" day "*) [ -s "$day" ] || go run ./internal/cmd/mkpcap -day 20 -seed 1 -o "$day" ;; esac
hz=$(getconf CLK_TCK)
cpu_ns() { # cpu_ns PID: user+system CPU time of PID in ns (fields 14, 15 of /proc/PID/stat)
	awk -v hz="$hz" '{sub(/.*\) /, ""); printf "%.0f", ($12 + $13) * 1e9 / hz}' "/proc/$1/stat"
}
per_pkt() { awk -v ns="$1" -v n="$2" 'BEGIN{if (n > 0) printf "%.0f", ns / n; else printf "-"}'; }
now_ns() { date +%s%N; }
# settle PID: returns once PID has used at most 10 ms (one tick) of CPU in half a second, and
# at least 2 s after the injection (a ring block not yet full reaches the reader when its
# timeout, 1 s in libpcap, retires it): it has worked through the packets queued in its ring.
# Waits at most 2 minutes.
settle() {
	local a b
	sleep 2
	b=$(cpu_ns "$1")
	for _ in $(seq 240); do
		sleep 0.5
		a=$b b=$(cpu_ns "$1")
		[ $((b - a)) -le 10000000 ] && return
	done
	echo "bench-live: PID $1 still busy 2 minutes after the injection"
}

nsA="tsbench-$$-a" nsB="tsbench-$$-b" ifA="tsbencha$$" ifB="tsbenchb$$"
ifA=${ifA:0:15} ifB=${ifB:0:15}
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
	ip netns del "$nsA" 2>/dev/null || true
	ip netns del "$nsB" 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM
ip netns add "$nsA"
ip netns add "$nsB"
for ns in "$nsA" "$nsB"; do ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1; done
ip -n "$nsA" link set lo up
ip -n "$nsA" link add "$ifA" type veth peer name "$ifB" netns "$nsB"
ip -n "$nsA" link set "$ifA" up
ip -n "$nsB" link set "$ifB" up

# flood_cfg MIRAI: a trafgen config of 256 packets, one per destination 203.0.113.0-255 (trafgen
# sends them round robin), each an Ethernet/IPv4/TCP SYN to port 23 with a random source
# address, IP ID and source port, and a random sequence number (MIRAI=0) or seq == the
# destination address (MIRAI=1); IPv4 and TCP checksums are computed for each packet sent. The
# destination MAC is not the capturing end's, as on a tap: the kernel drops the frames after
# the packet sockets have seen them.
flood_cfg() {
	local d seq
	for d in $(seq 0 255); do
		seq=drnd\(4\)
		[ "$1" = 1 ] && seq="203, 0, 113, $d"
		cat <<CFG
{
  0x02, 0x00, 0x00, 0x00, 0x00, 0x02, 0x02, 0x00, 0x00, 0x00, 0x00, 0x01, c16(0x0800),
  0x45, 0x00, c16(40), drnd(2), c16(0), 64, 6, csumip(14, 33), drnd(4), 203, 0, 113, $d,
  drnd(2), c16(23), $seq, c32(0), 0x50, 0x02, c16(65535), csumtcp(14, 34), c16(0)
}
CFG
	done
}
flood_cfg 0 >"$dir/flood.trafgen"
flood_cfg 1 >"$dir/mirai.trafgen"

inj_seed=1 # trafgen's seed (the warm-up's floods use another: fresh sources)
# inject WORKLOAD LOG: sends WORKLOAD into namespace B's end of the veth, output to LOG; sets
# inj_sent, inj_rate (packets sent per second) and inj_name (the injector). Not in a subshell,
# so that cleanup knows the injector's PID.
inject() {
	local t0 t1
	t0=$(now_ns)
	case $1 in
	flood | mirai)
		local rate=()
		[ -n "${RATE:-}" ] && rate=(-b "$RATE")
		# --no-sock-mem, --notouch-irq: leave the machine's socket memory and IRQ settings alone.
		ip netns exec "$nsB" trafgen --no-sock-mem --notouch-irq -P 1 -E "$inj_seed" "${rate[@]}" \
			-i "$dir/$1.trafgen" -o "$ifB" -n "$flood_n" >"$2" 2>&1 &
		;;
	day)
		local limit=()
		[ -n "${DAY_PACKETS:-}" ] && limit=(--limit="$DAY_PACKETS")
		local speed=(--topspeed)
		[ -n "${DAY_PPS:-}" ] && speed=(--pps="$DAY_PPS")
		ip netns exec "$nsB" tcpreplay -i "$ifB" --preload-pcap "${speed[@]}" "${limit[@]}" "$day" >"$2" 2>&1 &
		;;
	esac
	pids+=($!)
	wait "${pids[-1]}" || { echo "bench-live: injecting $1 failed:"; tail -5 "$2"; exit 1; }
	unset 'pids[-1]'
	t1=$(now_ns)
	case $1 in
	day)
		inj_name=tcpreplay inj_sent=$(awk '/Actual:/ {print $2}' "$2")
		# tcpreplay's own rate (after preloading the file), not the wall time
		inj_rate=$(awk '/Rated:/ {for (i = 1; i <= NF; i++) if ($i ~ /pps/) printf "%.0f", $(i-1)}' "$2") ;;
	*)
		inj_name=trafgen inj_sent=$(tr -d '\r' <"$2" | awk '/packets outgoing/ {print $1}')
		inj_rate=$(awk -v n="$inj_sent" -v ns=$((t1 - t0)) 'BEGIN {printf "%.0f", n / (ns / 1e9)}') ;;
	esac
}

# scrape prints telescope's /metrics from inside namespace A (bash's /dev/tcp: no curl needed).
scrape() {
	ip netns exec "$nsA" bash -c 'exec 3<>/dev/tcp/127.0.0.1/9813; printf "GET /metrics HTTP/1.0\r\n\r\n" >&3; cat <&3'
}
metric() { # metric NAME LABEL-SUBSTRING: sum of matching samples
	scrape | awk -v n="$1" -v l="$2" '$1 ~ "^"n"[{ ]" && (l == "" || index($1, l)) {s += $2} END {printf "%.0f", s}'
}

# The day's dark prefixes (the floods go to the first). Every detector on (the defaults).
cat >"$dir/live.yaml" <<YAML
dark_prefixes: [203.0.113.0/24, 198.51.100.0/24, '2001:db8:1::/48']
capture: {interface: $ifA, workers: 2, ring_mb: 64, shed_backlog: ${SHED_BACKLOG:-0.5}}
web: {listen_address: "127.0.0.1:9813"}
limits: {prefault: $([ -n "${PREFAULT:-}" ] && echo true || echo false)}
YAML
# The same with every detector off: counting only.
{
	cat "$dir/live.yaml"
	echo "detect:"
	for d in scanner telnet udp_then_syn backscatter fingerprint hotspot; do echo "  $d: {enabled: false}"; done
} >"$dir/live-off.yaml"
# telescope_run WORKLOAD CONFIG KEY: a fresh daemon (so that one run's state does not slow
# the next) with $dir/CONFIG.yaml, warmed up first under WARM=1, measured while WORKLOAD is
# injected; sets t_count, t_drop, t_shed and t_cpu[KEY], and sent, rate and injector[KEY].
telescope_run() {
	local w=$1 conf=$2 key=$3 tp c0 c1 k0 k1 s0 s1 u0 u1
	ip netns exec "$nsA" "$bin" run --config "$dir/$conf.yaml" 2>"$dir/$conf-$w.log" &
	tp=$!
	pids+=("$tp")
	for _ in $(seq 100); do scrape >/dev/null 2>&1 && break; sleep 0.1; done
	if [ -n "${WARM:-}" ]; then
		# A running telescope, not a fresh one: the same workload once before (floods from
		# other sources), so that its tables are grown (or full) and their memory faulted in.
		inj_seed=2
		inject "$w" "$dir/inject-warm-$w.out"
		inj_seed=1
		settle "$tp"
	fi
	c0=$(metric telescope_frames_total 'result=')
	k0=$(metric telescope_capture_drops_total 'where="kernel"') s0=$(metric telescope_detection_shed_packets_total '')
	local perf=
	if [ -n "${PERF:-}" ]; then
		perf=1
		perf record -q -g -p "$tp" -o "$dir/perf-$key.data" 2>"$dir/perf-$key.log" &
		pids+=($!)
		sleep 0.5 # perf attaches to every thread
	fi
	u0=$(cpu_ns "$tp")
	inject "$w" "$dir/inject-$conf-$w.out"
	sent[$key]=$inj_sent rate[$key]=$inj_rate injector[$key]=$inj_name
	settle "$tp"
	u1=$(cpu_ns "$tp")
	if [ -n "$perf" ]; then
		kill -INT "${pids[-1]}"
		wait "${pids[-1]}" || true
		unset 'pids[-1]'
	fi
	c1=$(metric telescope_frames_total 'result=')
	k1=$(metric telescope_capture_drops_total 'where="kernel"') s1=$(metric telescope_detection_shed_packets_total '')
	kill "$tp"
	wait "$tp" || true
	unset 'pids[-1]'
	local n=$((c1 - c0))
	t_count[$key]=$(( ${t_count[$key]:-0} + n )) t_drop[$key]=$(( ${t_drop[$key]:-0} + k1 - k0 ))
	t_shed[$key]=$(( ${t_shed[$key]:-0} + s1 - s0 ))
	t_cpus[$key]+=" $(per_pkt $((u1 - u0)) "$n")"
}

# tcpdump_run WORKLOAD: tcpdump with a 64 MiB buffer, as telescope's ring, measured while
# WORKLOAD is injected; adds to d_count, d_drop and d_cpus, sets d_sent and d_rate.
tcpdump_run() {
	local w=$1 tp u0 u1 n
	ip netns exec "$nsA" tcpdump -Z root -n -B 65536 -i "$ifA" -w /dev/null 2>"$dir/tcpdump-$w.log" &
	tp=$!
	pids+=("$tp")
	for _ in $(seq 100); do grep -q listening "$dir/tcpdump-$w.log" && break; sleep 0.1; done
	sleep 0.5
	u0=$(cpu_ns "$tp")
	inject "$w" "$dir/inject-tcpdump-$w.out"
	d_sent[$w]=$inj_sent d_rate[$w]=$inj_rate
	settle "$tp"
	u1=$(cpu_ns "$tp")
	kill -INT "$tp"
	wait "$tp" || true
	unset 'pids[-1]'
	n=$(awk '/packets captured/ {print $1}' "$dir/tcpdump-$w.log")
	d_count[$w]=$(( ${d_count[$w]:-0} + n ))
	d_drop[$w]=$(( ${d_drop[$w]:-0} + $(awk '/dropped by kernel/ {print $1}' "$dir/tcpdump-$w.log") ))
	d_cpus[$w]+=" $(per_pkt $((u1 - u0)) "$n")"
}

echo "load before: $(uptime)"
declare -A sent n_rate rate d_rate d_sent injector t_count t_drop t_shed t_cpus d_count d_drop d_cpus t_cpu d_cpu
for w in "${work[@]}"; do
	# The sender's ceiling: the same packets with nothing capturing.
	inject "$w" "$dir/inject-none-$w.out"
	n_rate[$w]=$inj_rate

	# All detectors, counters only (every detector off: what the detectors add live) and
	# tcpdump, each round in the next order of the three.
	for r in $(seq 0 $((rounds - 1))); do
		for k in 0 1 2; do
			case $(((k + r) % 3)) in
			0) telescope_run "$w" live "$w" ;;
			1) telescope_run "$w" live-off "$w-off" ;;
			2) tcpdump_run "$w" ;;
			esac
		done
		[ "${d_sent[$w]}" = "${sent[$w]}" ] || echo "bench-live: $w: sent ${sent[$w]} packets for telescope, ${d_sent[$w]} for tcpdump"
		[ "${sent[$w-off]}" = "${sent[$w]}" ] || echo "bench-live: $w: sent ${sent[$w]} packets for telescope, ${sent[$w-off]} for it with every detector off"
	done
	t_cpu[$w]=$(median ${t_cpus[$w]}) t_cpu[$w-off]=$(median ${t_cpus[$w-off]}) d_cpu[$w]=$(median ${d_cpus[$w]})
done
echo "load after:  $(uptime)"

echo
[ "$rounds" = 1 ] || echo "$rounds rounds: packets counted and dropped are sums over the rounds, rates the last round's, ns/pkt medians (ranges and rounds below)"
echo "CPU ns/pkt: utime+stime of the process (telescope: all threads, 2 workers) per packet counted;"
echo "drops/shed: packets the kernel dropped / packets the detectors skipped to keep up (counted);"
echo "rate none/t/d: packets sent per second with nothing capturing / while telescope captured /"
echo "while tcpdump captured (trafgen: sent / its wall time; tcpreplay: its own figure, after preloading)"
printf '%-6s %-9s %9s %23s | %9s %15s %8s | %9s %8s %8s | %6s\n' workload injector sent "rate none/t/d" \
	"telescope" "drops/shed" "ns/pkt" "tcpdump" "drops" "ns/pkt" ratio
for w in "${work[@]}"; do
	printf '%-6s %-9s %9s %23s | %9s %15s %8s | %9s %8s %8s | %6s\n' "$w" "${injector[$w]}" "${sent[$w]}" "${n_rate[$w]}/${rate[$w]}/${d_rate[$w]}" \
		"${t_count[$w]}" "${t_drop[$w]}/${t_shed[$w]}" "${t_cpu[$w]}" "${d_count[$w]}" "${d_drop[$w]}" "${d_cpu[$w]}" \
		"$(awk -v a="${t_cpu[$w]}" -v b="${d_cpu[$w]}" 'BEGIN {if (b > 0) printf "%.1fx", a / b; else printf "-"}')"
done
echo
echo "Counters only: telescope with every detector off, on the same packets (a fresh daemon, warmed"
echo "up the same way); keep: the packets per CPU second all detectors keep of it (off ns / on ns)."
printf '%-6s | %9s %15s %8s | %9s | %6s\n' workload "counted" "drops/shed" "ns/pkt" "x tcpdump" keep
for w in "${work[@]}"; do
	printf '%-6s | %9s %15s %8s | %9s | %6s\n' "$w" "${t_count[$w-off]}" "${t_drop[$w-off]}/${t_shed[$w-off]}" "${t_cpu[$w-off]}" \
		"$(awk -v a="${t_cpu[$w-off]}" -v b="${d_cpu[$w]}" 'BEGIN {if (b > 0) printf "%.1fx", a / b; else printf "-"}')" \
		"$(awk -v off="${t_cpu[$w-off]}" -v on="${t_cpu[$w]}" 'BEGIN {if (on > 0) printf "%.0f%%", 100 * off / on; else printf "-"}')"
done
if [ "$rounds" != 1 ]; then
	echo
	echo "CPU ns/pkt of each round (in order), range:"
	for w in "${work[@]}"; do
		printf '%-6s all detectors %s (%s); counters only %s (%s); tcpdump %s (%s)\n' "$w" \
			"${t_cpus[$w]# }" "$(spread ${t_cpus[$w]})" "${t_cpus[$w-off]# }" "$(spread ${t_cpus[$w-off]})" \
			"${d_cpus[$w]# }" "$(spread ${d_cpus[$w]})"
	done
fi
