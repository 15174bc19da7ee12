#!/usr/bin/env bash
# Profile-guided optimisation: writes cmd/telescope/default.pgo, the CPU profile that every
# `go build ./cmd/telescope` then uses (the go command's -pgo=auto default). The profile is
# the replay of bench.sh's three --full files with every detector on (the generated 20x day,
# the 5 M SYN file scanning a /16, the 3 M-packet spoofed burst), taken through
# BenchmarkReplayDay, merged with equal weight per file. It inlines and lays out the packet
# path the way those runs use it: 11-17 % less CPU time on each file (see docs/DESIGN.md).
# Regenerate it after large changes to the packet path; a stale profile still builds
# correct code, only less of it benefits.
#
# Usage: scripts/pgo.sh   (builds the files with bench.sh --full first if they are missing)
set -euo pipefail
cd "$(dirname "$0")/.."
dir=bench
for f in day-20 syn-5000000 burst-3000000; do
	[ -s "$dir/$f.pcap" ] || { echo "pgo: $dir/$f.pcap is missing: run scripts/bench.sh --full first"; exit 1; }
done
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
profile() { # NAME DARK_PREFIXES
	echo "== profiling $1"
	# -pgo=off: the profile is of the code as written, not of a previous profile's build.
	TELESCOPE_BENCH_PCAP="$PWD/$dir/$1.pcap" TELESCOPE_BENCH_DARK="$2" \
		go test -pgo=off -run '^$' -bench 'ReplayDay/detectors=on' -benchtime 3x \
		-cpuprofile "$tmp/$1.pprof" -o "$tmp/pipeline.test" ./pipeline/ | grep -E '^Benchmark'
}
# The dark prefixes of bench.sh's configs for each file.
profile day-20 "203.0.113.0/24, 198.51.100.0/24, '2001:db8:1::/48'"
profile syn-5000000 203.0.0.0/16
profile burst-3000000 203.0.113.0/24
go tool pprof -proto "$tmp/day-20.pprof" "$tmp/syn-5000000.pprof" "$tmp/burst-3000000.pprof" >cmd/telescope/default.pgo
echo "pgo: wrote cmd/telescope/default.pgo ($(wc -c <cmd/telescope/default.pgo) bytes)"
