#!/usr/bin/env bash
# Live capture under load: injects a SYN-dominated pcap into one end of a veth pair (inside
# network namespaces this script creates and removes) at rising rates (tcpreplay --pps, then
# --topspeed) and prints, per rate, packets sent, packets counted by telescope (all
# detectors on, 2 workers) and its kernel drops, then in the same run at the same rates the
# drops tcpdump -i IF -w /dev/null reports, and each one's CPU time per packet captured
# (utime+stime from /proc/PID/stat before and after the injection). Root only.
# Usage: scripts/bench-live.sh [rates...]; PCAP=FILE injects FILE instead of the SYN file
# (e.g. a random-source flood, or bench/day-20.pcap from scripts/bench.sh --full).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin:/usr/sbin:/sbin"
[ "$(id -u)" = 0 ] || { echo "bench-live: needs root (network namespaces, AF_PACKET)"; exit 1; }
for tool in ip tcpreplay tcpdump; do
	command -v "$tool" >/dev/null || { echo "bench-live: $tool is missing"; exit 1; }
done
rates=("${@:-20000 50000 100000 200000 400000 topspeed}")
read -r -a rates <<<"${rates[*]}"
dir=bench
mkdir -p "$dir"
pcap=${PCAP:-$dir/live-1000000.pcap}
CGO_ENABLED=0 go build -o "$dir/telescope" ./cmd/telescope
[ -s "$pcap" ] || go run ./internal/cmd/mkpcap -n 1000000 -o "$pcap"
hz=$(getconf CLK_TCK)
cpu_ns() { # cpu_ns PID: user+system CPU time of PID in ns (fields 14, 15 of /proc/PID/stat)
	awk -v hz="$hz" '{sub(/.*\) /, ""); printf "%.0f", ($12 + $13) * 1e9 / hz}' "/proc/$1/stat"
}
per_pkt() { awk -v ns="$1" -v n="$2" 'BEGIN{if (n > 0) printf "%.0f", ns / n; else printf "-"}'; }

nsA="tsbench-$$-a" nsB="tsbench-$$-b" ifA="tsbencha$$" ifB="tsbenchb$$"
ifA=${ifA:0:15} ifB=${ifB:0:15}
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
	ip netns del "$nsA" 2>/dev/null || true
	ip netns del "$nsB" 2>/dev/null || true
}
trap cleanup EXIT
ip netns add "$nsA"
ip netns add "$nsB"
for ns in "$nsA" "$nsB"; do ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1; done
ip -n "$nsA" link set lo up
ip -n "$nsA" link add "$ifA" type veth peer name "$ifB" netns "$nsB"
ip -n "$nsA" link set "$ifA" up
ip -n "$nsB" link set "$ifB" up

# scrape prints telescope's /metrics from inside namespace A (bash's /dev/tcp: no curl needed).
scrape() {
	ip netns exec "$nsA" bash -c 'exec 3<>/dev/tcp/127.0.0.1/9813; printf "GET /metrics HTTP/1.0\r\n\r\n" >&3; cat <&3'
}
metric() { # metric NAME LABEL-SUBSTRING: sum of matching samples
	scrape | awk -v n="$1" -v l="$2" '$1 ~ "^"n"[{ ]" && index($1, l) {s += $2} END {printf "%.0f", s}'
}
# inject RATE N: sends N packets at RATE (or topspeed); prints "sent achieved_pps".
inject() {
	local speed=(--pps="$1")
	[ "$1" = topspeed ] && speed=(--topspeed)
	ip netns exec "$nsB" tcpreplay -i "$ifB" --preload-pcap "${speed[@]}" --limit="$2" "$pcap" 2>&1 |
		awk '/Actual:/ {sent=$2} /Rated:/ {for (i=1;i<=NF;i++) if ($i ~ /pps/) pps=$(i-1)} END {print sent, pps}'
}
count_for() { # packets to send at a rate: about 4 s worth, at most 1 M
	local r=$1
	[ "$r" = topspeed ] && { echo 1000000; return; }
	echo $(( r * 4 < 1000000 ? r * 4 : 1000000 ))
}

cat > "$dir/live.yaml" <<YAML
capture: {interface: $ifA, workers: 2, ring_mb: 64}
web: {listen_address: "127.0.0.1:9813"}
YAML
ip netns exec "$nsA" "$dir/telescope" run --config "$dir/live.yaml" 2>"$dir/live.log" &
pids+=($!)
for _ in $(seq 100); do scrape >/dev/null 2>&1 && break; sleep 0.1; done

declare -A t_sent t_rate t_count t_drop t_cpu d_count d_drop d_cpu
for r in "${rates[@]}"; do
	n=$(count_for "$r")
	c0=$(metric telescope_frames_total 'result="ip"'); k0=$(metric telescope_capture_drops_total 'where="kernel"')
	u0=$(cpu_ns "${pids[0]}")
	read -r sent pps < <(inject "$r" "$n")
	sleep 1
	u1=$(cpu_ns "${pids[0]}")
	c1=$(metric telescope_frames_total 'result="ip"'); k1=$(metric telescope_capture_drops_total 'where="kernel"')
	t_sent[$r]=$sent t_rate[$r]=$pps t_count[$r]=$((c1 - c0)) t_drop[$r]=$((k1 - k0))
	t_cpu[$r]=$(per_pkt $((u1 - u0)) "${t_count[$r]}")
done
kill "${pids[0]}"; wait "${pids[0]}" || true; pids=()

for r in "${rates[@]}"; do
	n=$(count_for "$r")
	ip netns exec "$nsA" tcpdump -Z root -n -i "$ifA" -w /dev/null 2>"$dir/tcpdump.log" &
	tp=$!; pids=("$tp")
	sleep 1
	u0=$(cpu_ns "$tp")
	inject "$r" "$n" >/dev/null
	sleep 1
	u1=$(cpu_ns "$tp")
	kill -INT "$tp"; wait "$tp" || true; pids=()
	d_count[$r]=$(awk '/packets captured/ {print $1}' "$dir/tcpdump.log")
	d_drop[$r]=$(awk '/dropped by kernel/ {print $1}' "$dir/tcpdump.log")
	d_cpu[$r]=$(per_pkt $((u1 - u0)) "${d_count[$r]}")
done

echo
echo "$pcap; CPU ns/pkt: utime+stime per packet counted (telescope: all threads, 2 workers)"
printf '%-10s %10s %12s | %14s %14s %10s | %14s %14s %10s\n' "rate" "sent" "achieved pps" "telescope cnt" "telescope drop" "ns/pkt" "tcpdump cnt" "tcpdump drop" "ns/pkt"
for r in "${rates[@]}"; do
	printf '%-10s %10s %12s | %14s %14s %10s | %14s %14s %10s\n' "$r" "${t_sent[$r]}" "${t_rate[$r]}" "${t_count[$r]}" "${t_drop[$r]}" "${t_cpu[$r]}" "${d_count[$r]}" "${d_drop[$r]}" "${d_cpu[$r]}"
done
