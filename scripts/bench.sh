#!/usr/bin/env bash
# Replay throughput on three files (four with --full), one table each:
#   syn-N.pcap   a SYN-dominated capture with few sources (internal/cmd/mkpcap -n N)
#   day-S.pcap   the generated telescope day at scale S (internal/daygen ProfileTelescope,
#                2 h of packet time; scale 20 is ~3.4 M packets from ~540 k sources)
#   burst-F.pcap a spoofed flood: F SYNs to random ports of a /24, each from a fresh random
#                source, at 1 M packets/s of packet time (mkpcap -flood -span), so that the
#                whole flood falls in one detection window, as a live flood does: every
#                source is evicted from a full table, the hotspot counts thousands of
#                sources per destination
#   wide-W.pcap  (--full, or WIDE_PACKETS) a swarm of 100 000 bots sending W SYNs over 15
#                minutes to random addresses of a dark /8: the widest telescope, where most
#                destinations of a window are new and the hotspot has no dense index
# For each: tcpdump -r FILE -w /dev/null (reading only), telescope replay with every detector
# off (counters only), with every detector but hotspot, with every detector on (defaults; no
# report), the same writing the report (its cost is the difference), the log lines and bytes
# of the detectors-on run, and the max RSS; the hotspot's cost is the throughput it takes, as
# a share of the counters-only throughput (issue 9's measure). Timings are the best of 5 runs,
# taken in turn (one run of each, five times, each round starting one further on); the files
# are generated from fixed seeds. The CPU column (user + system, median of the runs) and
# the shares computed from it are steadier than wall times on a shared machine; the user
# column (median) steadier still:
# the system time of one command is mostly the kernel zeroing fresh pages of the tables,
# which on a virtual machine varied from 0.2 to 1.4 s between identical runs. The faults
# column (minor page faults of the last run: a fault a 4 KiB page, or a 2 MiB huge page,
# first touched) hardly varies, so it tells a change in the memory a run touches from that
# noise; `go run ./internal/cmd/memlat` times a first touch on the machine.
#
# Usage: scripts/bench.sh [--full] [--tshark] [--backed]
#   default: 1 M SYN packets, the day at scale 5, a 2 M-packet burst (a minute or two; the
#            burst needs more sources than the 1 M-entry table holds, or nothing is evicted)
#   --full:  5 M SYN packets, the day at scale 20 (the issue's day), a 3 M-packet burst, an
#            8 M-packet /8 swarm (a minute more)
#   --tshark also times a tshark extraction of the same tables on the SYN file (minutes)
#   --backed writes BACKED_MB (default 1024) MiB of fresh memory just before each timed run
#            (memlat -back), so that the run finds the guest's free memory backed by the host:
#            on a virtual machine that reports free memory to its host (free page reporting),
#            the first touch of memory freed a few seconds earlier costs about 2 ms a MiB, 30
#            times what it costs once backed, and that, not telescope's work, was a quarter to
#            a third of a replay's CPU time on the development VM (the kernel's
#            clear_page_erms, below the tables' first writes). A machine without a hypervisor
#            never pays it; on one with it, the default (without --backed) is what it pays.
# Environment: SYN_PACKETS, DAY_SCALE, BURST_PACKETS, WIDE_PACKETS and RUNS override the sizes and the run count;
# TELESCOPE=BINARY times that binary instead of building the tree.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin:/usr/sbin:/sbin"
full=0 tshark=0 backed=0
for a in "$@"; do
	case $a in
	--full) full=1 ;;
	--tshark) tshark=1 ;;
	--backed) backed=1 ;;
	*) echo "usage: $0 [--full] [--tshark] [--backed]" >&2; exit 2 ;;
	esac
done
n=${SYN_PACKETS:-$([ $full = 1 ] && echo 5000000 || echo 1000000)}
scale=${DAY_SCALE:-$([ $full = 1 ] && echo 20 || echo 5)}
nburst=${BURST_PACKETS:-$([ $full = 1 ] && echo 3000000 || echo 2000000)}
nwide=${WIDE_PACKETS:-$([ $full = 1 ] && echo 8000000 || echo)}
runs=${RUNS:-5}
dir=bench
mkdir -p "$dir"
need=(tcpdump)
[ $tshark = 1 ] && need+=(tshark)
for tool in "${need[@]}"; do
	command -v "$tool" >/dev/null || { echo "bench: $tool is missing (apt-get install $tool)"; exit 1; }
done

# shellcheck source=scripts/bench-files.sh
. scripts/bench-files.sh
bench_binary "$dir"
bench_pcaps "$dir" "$n" "$scale" "$nburst" "$nwide"
bench_configs "$dir"
if [ $backed = 1 ]; then
	backed_mb=${BACKED_MB:-1024}
	CGO_ENABLED=0 go build -o "$dir/memlat" ./internal/cmd/memlat
	"$dir/memlat" -back "$backed_mb" # the flag's check, before the first run
fi

# timed NAME CMD...: runs CMD (stdout discarded, stderr to $dir/NAME.log), records wall
# seconds, max RSS (KiB), minor page faults, CPU seconds (user + system, all threads) and
# user seconds.
declare -A secs rss flt cpu usr
timed() {
	local name=$1
	shift
	local u s
	[ $backed = 0 ] || "$dir/memlat" -back "$backed_mb"
	/usr/bin/time -f '%e %M %R %U %S' -o "$dir/time.out" "$@" >/dev/null 2>"$dir/$name.log" || {
		echo "bench: $name failed: $*"
		tail -3 "$dir/$name.log"
		exit 1
	}
	read -r secs[$name] rss[$name] flt[$name] u s < <(tail -1 "$dir/time.out")
	cpu[$name]=$(awk -v u="$u" -v s="$s" 'BEGIN{printf "%.2f", u+s}')
	usr[$name]=$u
}
# bestof NAME...: runs every NAME's command (the function cmd_NAME) $runs times, in turn
# (tcpdump, off, nohot, ... then again), so that a machine that slows down or speeds up
# over the minutes weighs on each the same; keeps each one's best time, the medians of its
# CPU and user times (steadier than wall times on a shared machine) and its last RSS. Each
# round starts one name further on (off, nohot, ..., tcpdump the second time): on a virtual
# machine that hands freed memory back to its host, the run that follows another may find
# that one's pages still in the guest and fault in its own at a fraction of the cost (in a
# fixed order, the same binary got 0.2 s of system time where the others got 0.3-0.6 s).
bestof() {
	local -A b=() c=() us=()
	local name r=0
	local names=("$@")
	for _ in $(seq "$runs"); do
		local order=("${names[@]:r}" "${names[@]:0:r}")
		r=$(((r + 1) % ${#names[@]}))
		for name in "${order[@]}"; do
			"cmd_$name"
			if [ -z "${b[$name]:-}" ] || awk "BEGIN{exit !(${secs[$name]} < ${b[$name]})}"; then b[$name]=${secs[$name]}; fi
			c[$name]+="${cpu[$name]} "
			us[$name]+="${usr[$name]} "
		done
	done
	for name in "$@"; do
		secs[$name]=${b[$name]}
		cpu[$name]=$(median ${c[$name]})
		usr[$name]=$(median ${us[$name]})
	done
}
median() { printf '%s\n' "$@" | sort -n | awk '{v[NR]=$1} END{print v[int((NR+1)/2)]}'; }

# bench FILE KIND: the runs and the table of one file.
bench() {
	local pcap=$1 kind=$2
	cat "$pcap" >/dev/null # warm the page cache so every contender reads from memory
	local size pkts
	size=$(stat -L -c %s "$pcap") # -L: the file may be a symlink to a shared copy
	"$dir/telescope" replay --config "$dir/$kind-off.yaml" --report "$dir/report-$kind.json" "$pcap" 2>/dev/null
	pkts=$(grep -o '"frames": *[0-9]*' "$dir/report-$kind.json" | grep -o '[0-9]*$')
	echo
	local mem="memory as the machine gives it"
	[ $backed = 0 ] || mem="$backed_mb MiB backed before each run (--backed)"
	echo "== $pcap: $pkts packets, $((size / 1048576)) MiB, $(nproc) CPUs, best of $runs, $mem"
	cmd_tcpdump() { timed tcpdump tcpdump -Z root -r "$pcap" -w /dev/null; }
	cmd_off() { timed off "$dir/telescope" replay --config "$dir/$kind-off.yaml" "$pcap"; }
	cmd_nohot() { timed nohot "$dir/telescope" replay --config "$dir/$kind-nohot.yaml" "$pcap"; }
	cmd_on() { timed on "$dir/telescope" replay --config "$dir/$kind-on.yaml" "$pcap"; }
	cmd_report() { timed report "$dir/telescope" replay --config "$dir/$kind-on.yaml" --report "$dir/report-$kind.json" "$pcap"; }
	bestof tcpdump off nohot on report
	local lines bytes
	lines=$(wc -l <"$dir/on.log")
	bytes=$(wc -c <"$dir/on.log")
	printf '%-40s %9s %12s %10s %9s %8s %8s %8s\n' "run" "seconds" "packets/s" "x tcpdump" "RSS MiB" "faults" "CPU s" "user s"
	for k in tcpdump off nohot on report; do
		local label
		case $k in
		tcpdump) label="tcpdump -r FILE -w /dev/null" ;;
		off) label="replay, counters only" ;;
		nohot) label="replay, all detectors but hotspot" ;;
		on) label="replay, all detectors" ;;
		report) label="replay, all detectors + --report" ;;
		esac
		awk -v l="$label" -v s="${secs[$k]}" -v n="$pkts" -v t="${secs[tcpdump]}" -v r="${rss[$k]}" -v f="${flt[$k]}" \
			-v c="${cpu[$k]}" -v u="${usr[$k]}" 'BEGIN{printf "%-40s %9.2f %12.0f %10.2f %9.0f %8d %8.2f %8.2f\n", l, s, n/s, s/t, r/1024, f, c, u}'
	done
	awk -v on="${secs[on]}" -v off="${secs[off]}" -v nohot="${secs[nohot]}" -v rep="${secs[report]}" -v l="$lines" -v b="$bytes" \
		-v con="${cpu[on]}" -v coff="${cpu[off]}" -v cnohot="${cpu[nohot]}" \
		-v uon="${usr[on]}" -v uoff="${usr[off]}" -v unohot="${usr[nohot]}" \
		-v rs="$(stat -c %s "$dir/report-$kind.json")" 'BEGIN{
		printf "detectors on keep %.0f%% of the counters-only packets/s (from median CPU time: %.0f%%, user time: %.0f%%)\n", 100*off/on, 100*coff/con, 100*uoff/uon
		# packets/s lost by turning hotspot on, as a share of the counters-only packets/s
		printf "hotspot costs %.0f%% of the counters-only packets/s (from median CPU time: %.0f%%, user time: %.0f%%)\n", 100*(off/nohot - off/on), 100*(coff/cnohot - coff/con), 100*(uoff/unohot - uoff/uon)
		printf "writing the report: %+.2f s (%.1f MiB)\n", rep-on, rs/1048576
		printf "log: %d lines, %.1f MiB\n", l, b/1048576 }'
}

bench "$syn" syn
bench "$day" day
bench "$burst" burst
[ -z "$wide" ] || bench "$wide" wide

if [ $tshark = 1 ]; then
	timed tshark tshark -n -r "$syn" -o ip.defragment:FALSE -T fields -E occurrence=f \
		-e ip.proto -e ipv6.nxt -e tcp.flags -e tcp.dstport -e udp.dstport
	echo
	echo "tshark extracting the same tables from $syn: ${secs[tshark]} s"
fi
