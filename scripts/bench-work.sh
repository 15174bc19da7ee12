#!/usr/bin/env bash
# The work per packet, counted rather than timed: valgrind's cachegrind runs telescope replay
# on three sample files and counts the instructions it executes and the misses of a
# simulated cache (32 KiB L1 data cache, 1 MiB last level: the AMD EPYC core the other
# benchmarks ran on). The counts do not depend on the machine's load, so a change of a few
# percent shows, where bench.sh's times on a shared virtual machine vary by 10-25 % between
# identical runs. They are a model, not a measure of time: cachegrind does not model
# prefetches, the reorder buffer or two cores sharing a cache (it runs the threads one at a
# time; it charges a sequential copy a miss per line, which a CPU's prefetcher mostly hides),
# so the cycle estimate below ranks changes, and bench.sh says what they are worth.
#
# Files (generated from fixed seeds, the shapes of bench.sh's at a tenth of the size):
#   syn    300 000 SYNs from few sources to a /16 over 86 minutes (mkpcap -n -span: the
#          rate of bench.sh's 5 M a day, so its heavy hitters are scanner episodes as there)
#   day    the generated telescope day at scale 2 (mkpcap -day 2: ~340 000 packets)
#   burst  300 000 SYNs from fresh random sources to random ports of a /24 over 0.3 s, with
#          max_sources 100 000, so that (as in bench.sh's burst) most sources are evicted
# Configs: every detector off (counters only), all but hotspot, all (the defaults); 2 workers.
# And tcpdump -r FILE -w /dev/null, counted the same way; cachegrind sees user space only, so
# tcpdump's reads (the kernel copying the file into one buffer) cost it nothing here, while
# telescope's loads of the mapped file count as misses: the ratio to tcpdump printed here is
# higher than the ratio of times.
#
# For each file and config: instructions (Ir), L1 data misses (D1) and last-level misses
# (LL) per packet, less those of the same run on the file's first packet alone (startup and
# the end of the run: 2 % of the day's detectors-on counts), and an estimated cycles per
# packet, Ir + 10 D1 + 100 LL (KCachegrind's estimate). Then, from the
# estimates, the share of the counters-only packet rate that all detectors keep and the share
# of it that the hotspot takes (issue 9's measure, as bench.sh computes it from times).
#
# Usage: scripts/bench-work.sh [--top N] [--each] [--base BINARY]
#   --top N        the N functions with the most estimated cycles in each detectors-on run
#                  (cg_annotate; inlined parts summed under their function)
#   --each         also each detector's share: all detectors less all but that one (a run per
#                  detector and file; shares move by about 100 cycles per packet between runs)
#   --base BINARY  also counts BINARY (e.g. a build of the commit before a change) on the same
#                  runs and prints its estimate and the change beside each row
# Environment: TELESCOPE=BINARY counts that binary instead of building the tree; WORK_PACKETS
# changes the SYN and burst sizes. Needs valgrind (apt-get install valgrind). A minute or two
# on 2 cores (two cachegrind runs at a time).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin:/usr/sbin:/sbin"
usage() { echo "usage: $0 [--top N] [--each] [--base BINARY]" >&2; exit 2; }
top=0 each=0 base=
while [ $# -gt 0 ]; do
	case $1 in
	--top)
		[ $# -ge 2 ] || usage
		top=$2
		shift 2
		;;
	--each) each=1 && shift ;;
	--base)
		[ $# -ge 2 ] || usage
		base=$2
		[ -x "$base" ] || { echo "bench-work: --base $base is not an executable file" >&2; exit 2; }
		shift 2
		;;
	*) usage ;;
	esac
done
for tool in valgrind cg_annotate tcpdump; do
	command -v $tool >/dev/null || { echo "bench-work: $tool is missing (apt-get install valgrind tcpdump)"; exit 1; }
done
n=${WORK_PACKETS:-300000}
dir=bench/work
mkdir -p "$dir"
# shellcheck source=scripts/bench-files.sh
. scripts/bench-files.sh
bench_binary "$dir"
bench_pcaps "$dir" "$n" 2 "$n"
for f in syn day burst; do # each file's first packet: the fixed cost of a run
	[ -s "$dir/$f-1.pcap" ] || tcpdump -r "${!f}" -c 1 -w "$dir/$f-1.pcap" 2>/dev/null
done

bench_configs "$dir" "capture: {workers: 2}" "burst: limits: {max_sources: 100000}"
[ -z "$base" ] || cp "$base" "$dir/telescope-base"
for f in syn day burst; do # KIND-no-DETECTOR.yaml: all detectors but one (--each)
	for x in "${bench_detectors[@]}"; do
		{ cat "$dir/$f-on.yaml"; printf 'detect:\n  %s: {enabled: false}\n' "$x"; } >"$dir/$f-no-$x.yaml"
	done
done

# count NAME CONF PCAP [BINARY]: one cachegrind run (CONF "tcpdump": tcpdump -r PCAP -w
# /dev/null); its summary goes to $dir/NAME.cg.err.
count() {
	local cmd=("${4:-$dir/telescope}" replay --config "$2" "$3")
	[ "$2" != tcpdump ] || cmd=(tcpdump -Z root -r "$3" -w /dev/null)
	# Go's runtime reads the clock with RDTSCP where the CPU has it, an instruction this
	# valgrind (Debian 12's 3.19) cannot run: GODEBUG turns that off (tcpdump ignores it).
	GODEBUG=cpu.rdtscp=off valgrind --tool=cachegrind --cache-sim=yes --D1=32768,8,64 --LL=1048576,16,64 \
		--cachegrind-out-file="$dir/$1.cg" "${cmd[@]}" >/dev/null 2>"$dir/$1.cg.err" || {
		echo "bench-work: $1 failed"
		tail -3 "$dir/$1.cg.err"
		exit 1
	}
}
# total NAME FIELD: a count from a run's summary (I refs, D1 misses, LL misses), less the
# one-packet run's, no commas.
total() {
	local a b
	a=$(grep -E "== $2:" "$dir/$1.cg.err" | head -1 | awk '{print $4}' | tr -d ,)
	b=$(grep -E "== $2:" "$dir/$1-1.cg.err" | head -1 | awk '{print $4}' | tr -d ,)
	echo $((a - b))
}

# The runs: NAME (a config of $dir, or tcpdump) for each file, on the file and on its first
# packet; with --base, the configs again with the base binary (names base-...).
runs=(on nohot off tcpdump)
[ $each = 0 ] || for x in "${bench_detectors[@]}"; do [ "$x" = hotspot ] || runs+=("no-$x"); done
for f in syn day burst; do
	pcap=${!f}
	for d in "${runs[@]}" ${base:+base-on base-nohot base-off}; do
		for one in "" -1; do
			if [ -z "$one" ]; then in=$pcap; else in=$dir/$f-1.pcap; fi
			conf=$dir/$f-${d#base-}.yaml bin=$dir/telescope
			[ "$d" != tcpdump ] || conf=tcpdump
			[ "${d#base-}" = "$d" ] || bin=$dir/telescope-base
			count "$f-$d$one" "$conf" "$in" "$bin" &
			# two at a time: cachegrind runs a process's threads one at a time
			if [ "$(jobs -rp | wc -l)" -ge 2 ]; then wait -n; fi
		done
	done
done
wait
# counts NAME: run NAME's instructions, L1 data misses and last-level misses (total's).
counts() { echo "$(total "$1" "I *refs") $(total "$1" "D1 *misses") $(total "$1" "LL misses")"; }
# cycles IR D1 LL PACKETS: the estimated cycles per packet of those counts.
cycles() { awk -v i="$1" -v a="$2" -v b="$3" -v p="$4" 'BEGIN{printf "%.1f", (i+10*a+100*b)/p}'; }
# estimate NAME PACKETS: estimated cycles per packet of run NAME.
estimate() {
	local ir d1 ll
	read -r ir d1 ll < <(counts "$1")
	cycles "$ir" "$d1" "$ll" "$2"
}

for f in syn day burst; do
	pcap=${!f}
	pkts=$("$dir/telescope" replay --config "$dir/$f-off.yaml" --report "$dir/report-$f.json" "$pcap" 2>/dev/null &&
		grep -o '"frames": *[0-9]*' "$dir/report-$f.json" | grep -o '[0-9]*$')
	echo
	echo "== $pcap: $pkts packets (per packet: instructions, simulated L1 data and last-level misses)"
	printf '%-28s %9s %8s %8s %12s' run Ir D1 LL "est. cycles"
	[ -z "$base" ] && echo || printf ' %12s %8s\n' "base" change
	declare -A est=() best=()
	for d in tcpdump off nohot on; do
		read -r ir d1 ll < <(counts "$f-$d")
		est[$d]=$(cycles "$ir" "$d1" "$ll" $((pkts - 1)))
		case $d in
		tcpdump) label="tcpdump -r -w /dev/null" ;;
		off) label="counters only" ;;
		nohot) label="all detectors but hotspot" ;;
		on) label="all detectors (defaults)" ;;
		esac
		awk -v l="$label" -v i="$ir" -v a="$d1" -v b="$ll" -v p="$((pkts - 1))" -v e="${est[$d]}" \
			'BEGIN{printf "%-28s %9.0f %8.2f %8.2f %12.0f", l, i/p, a/p, b/p, e}'
		if [ -n "$base" ] && [ $d != tcpdump ]; then
			best[$d]=$(estimate "$f-base-$d" $((pkts - 1)))
			awk -v e="${est[$d]}" -v b="${best[$d]}" 'BEGIN{printf " %12.0f %+7.1f%%\n", b, 100*(e-b)/b}'
		else
			echo
		fi
	done
	awk -v off="${est[off]}" -v nohot="${est[nohot]}" -v on="${est[on]}" -v td="${est[tcpdump]}" 'BEGIN{
		printf "detectors on take %.2fx the cycles of tcpdump, counters only %.2fx\n", on/td, off/td
		printf "detectors on keep %.0f%% of the counters-only packets per cycle\n", 100*off/on
		printf "hotspot costs %.0f%% of the counters-only packets per cycle\n", 100*(off/nohot - off/on)
	}'
	[ -z "$base" ] || awk -v off="${best[off]}" -v nohot="${best[nohot]}" -v on="${best[on]}" 'BEGIN{
		printf "base: keep %.0f%%, hotspot %.0f%%\n", 100*off/on, 100*(off/nohot - off/on)
	}'
	if [ $each = 1 ]; then
		printf 'each detector (estimated cycles per packet: all detectors less all but it):'
		for x in "${bench_detectors[@]}"; do
			if [ "$x" = hotspot ]; then without=${est[nohot]}; else without=$(estimate "$f-no-$x" $((pkts - 1))); fi
			awk -v x="$x" -v on="${est[on]}" -v w="$without" 'BEGIN{printf " %s %.0f", x, on-w}'
		done
		echo
	fi
	if [ "$top" -gt 0 ]; then
		echo "-- top functions of the detectors-on run (estimated cycles, whole run)"
		cg_annotate --show=Ir,D1mr,DLmr,D1mw,DLmw --show-percs=no --auto=no "$dir/$f-on.cg" 2>/dev/null |
			awk '/file:function/{f=1; next} f && NF>=6 && $1 ~ /^[0-9,]+$/' |
			awk '{c=0; for(i=1;i<=5;i++){v=$i; gsub(",","",v); c+=(i==1?1:(i%2==0?10:100))*v}
				fn=$6; for(i=7;i<=NF;i++) fn=fn" "$i
				sub(/^[^:]*:/,"",fn); gsub(/go\.shape\.struct \{[^]]*\}\]/,"…]",fn); sub(/^github.com\/telescope-dev\/telescope\//,"",fn)
				sum[fn]+=c} END{for(f in sum) printf "%14.0f  %s\n", sum[f], f}' |
			sort -rn | head -"$top"
	fi
done
