# shellcheck shell=bash
# Sourced by bench.sh, bench-work.sh, bench-ab.sh and bench-live.sh: the binary they run,
# the files they generate and the configs they run them with, written the same way for all,
# and the medians they print.

# median V...: the median of the numbers V ("-" for none, or when one is "-": a run that
# counted nothing); spread V...: their smallest and largest, "lo-hi".
median() {
	[ $# -gt 0 ] || { echo -; return; }
	printf '%s\n' "$@" | sort -n | awk '{v[NR] = $1; if ($1 == "-") bad = 1}
		END {m = int((NR + 1) / 2); if (bad) print "-"; else if (NR % 2) print v[m]; else printf "%g\n", (v[m] + v[m + 1]) / 2}'
}
spread() {
	[ $# -gt 0 ] || return 0
	printf '%s\n' "$@" | sort -n | awk 'NR == 1 {lo = $1} {hi = $1} END {printf "%s-%s", lo, hi}'
}

# bench_binary DIR: DIR/telescope is $TELESCOPE (a prebuilt binary, e.g. to compare two
# versions) or a build of the tree.
bench_binary() {
	if [ -n "${TELESCOPE:-}" ]; then
		cp "$TELESCOPE" "$1/telescope"
	else
		echo "== building"
		CGO_ENABLED=0 go build -o "$1/telescope" ./cmd/telescope
	fi
}

# bench_pcaps DIR SYN_PACKETS DAY_SCALE BURST_PACKETS [WIDE_PACKETS]: sets syn, day and burst to the three
# files in DIR, generating those missing from fixed seeds (mkpcap): SYN_PACKETS SYNs from few
# sources to 203.0.0.0/16 at 5 M a day of packet time (fewer span less time, so that each
# source sends as many probes a window as in the 5 M file: its heavy hitters are scanner
# episodes there; a sample named without its span spread 300 000 over a day, and they never
# were); the generated telescope day at DAY_SCALE (two /24s and an IPv6 /48); BURST_PACKETS
# SYNs to random ports of 203.0.113.0/24, each from a fresh random source, at 1 M packets/s
# of packet time; with WIDE_PACKETS, wide to that many SYNs from a swarm of 100 000 bots over
# 15 minutes to random addresses of a dark /8 (44.0.0.0/8, every other one to TCP/23): the
# widest telescope, whose destinations are mostly new in every window.
bench_pcaps() {
	local span=$(($2 * 86400 / 5000000))
	syn="$1/syn-$2.pcap"
	[ "$2" = 5000000 ] || syn="$1/syn-$2-${span}s.pcap"
	day="$1/day-$3.pcap"
	burst="$1/burst-$4.pcap"
	[ -s "$syn" ] || go run ./internal/cmd/mkpcap -n "$2" -span "${span}s" -o "$syn"
	[ -s "$day" ] || go run ./internal/cmd/mkpcap -day "$3" -seed 1 -o "$day"
	[ -s "$burst" ] || go run ./internal/cmd/mkpcap -flood -n "$4" -span "$(($4 / 1000))ms" -o "$burst"
	wide=
	if [ -n "${5:-}" ]; then
		wide="$1/wide-$5.pcap"
		[ -s "$wide" ] || go run ./internal/cmd/mkpcap -swarm 100000 -n "$5" -span 15m -dark 44.0.0.0/8 -o "$wide"
	fi
}

# bench_detectors: every detector's config key, in the order the off configs list them.
bench_detectors=(scanner telnet udp_then_syn backscatter fingerprint hotspot)

# bench_configs DIR [LINE...]: writes DIR/KIND-DETECT.yaml for each file kind (syn, day,
# burst, wide) and DETECT: on (every detector, the defaults), nohot (all but hotspot), off
# (counters only). Each LINE is added to every config; a LINE "KIND: TEXT" only to KIND's.
bench_configs() {
	local dir=$1 kind d dark line x
	shift
	for kind in syn day burst wide; do
		case $kind in
		syn) dark="203.0.0.0/16" ;;
		day) dark="203.0.113.0/24, 198.51.100.0/24, '2001:db8:1::/48'" ;;
		burst) dark="203.0.113.0/24" ;;
		wide) dark="44.0.0.0/8" ;;
		esac
		for d in on nohot off; do
			{
				echo "dark_prefixes: [$dark]"
				for line in "$@"; do
					case $line in
					"$kind: "*) echo "${line#"$kind: "}" ;;
					syn:* | day:* | burst:* | wide:*) ;;
					*) echo "$line" ;;
					esac
				done
				case $d in
				nohot) printf 'detect:\n  hotspot: {enabled: false}\n' ;;
				off)
					echo "detect:"
					for x in "${bench_detectors[@]}"; do echo "  $x: {enabled: false}"; done
					;;
				esac
			} >"$dir/$kind-$d.yaml"
		done
	done
}
