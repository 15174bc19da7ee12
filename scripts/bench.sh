#!/usr/bin/env bash
# Replay throughput: builds a large SYN-dominated pcap, then in one run times
#   telescope replay (all detectors on, and all off),
#   tcpdump -r FILE -w /dev/null   (the cost of just reading the file),
#   tshark extracting the same tables (protocols, TCP flags, SYN and UDP dst ports),
# and prints packets/s and the ratios. Usage: scripts/bench.sh [packets] (default 5000000).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin:/usr/sbin:/sbin"
n=${1:-5000000}
dir=bench
mkdir -p "$dir"
pcap="$dir/syn-$n.pcap"
for tool in tcpdump tshark; do
	command -v "$tool" >/dev/null || { echo "bench: $tool is missing (apt-get install $tool)"; exit 1; }
done

echo "== building"
CGO_ENABLED=0 go build -o "$dir/telescope" ./cmd/telescope
[ -s "$pcap" ] || go run ./internal/cmd/mkpcap -n "$n" -o "$pcap"
# The generated traffic goes to 203.0.0.0/16, the telescope's dark space.
cat > "$dir/detectors-on.yaml" <<'YAML'
dark_prefixes: [203.0.0.0/16]
YAML
cat > "$dir/detectors-off.yaml" <<'YAML'
dark_prefixes: [203.0.0.0/16]
detect:
  scanner: {enabled: false}
  telnet: {enabled: false}
  udp_then_syn: {enabled: false}
  backscatter: {enabled: false}
  fingerprint: {enabled: false}
YAML
cat "$pcap" >/dev/null # warm the page cache so every contender reads from memory
size=$(stat -c %s "$pcap")
echo "file: $pcap, $n packets, $((size / 1048576)) MiB, $(nproc) CPUs"

# timed NAME CMD...: runs CMD, records wall seconds and max RSS.
declare -A secs rss
timed() {
	local name=$1
	shift
	local out
	/usr/bin/time -f '%e %M' -o "$dir/time.out" "$@" >/dev/null 2>&1 || { echo "bench: $name failed: $*"; exit 1; }
	out=$(tail -1 "$dir/time.out")
	secs[$name]=${out% *}
	rss[$name]=${out#* }
}
best() { # best of 3 runs
	local name=$1
	shift
	local b=""
	for _ in 1 2 3; do
		timed "$name" "$@"
		if [ -z "$b" ] || awk "BEGIN{exit !(${secs[$name]} < $b)}"; then b=${secs[$name]}; fi
	done
	secs[$name]=$b
}

best tcpdump tcpdump -r "$pcap" -w /dev/null
best replay "$dir/telescope" replay --config "$dir/detectors-on.yaml" --report /dev/null "$pcap"
best replay_nodetect "$dir/telescope" replay --config "$dir/detectors-off.yaml" --report /dev/null "$pcap"
timed tshark tshark -n -r "$pcap" -o ip.defragment:FALSE -T fields -E occurrence=f \
	-e ip.proto -e ipv6.nxt -e tcp.flags -e tcp.dstport -e udp.dstport

printf '\n%-34s %10s %14s %10s %12s\n' "contender" "seconds" "packets/s" "x tcpdump" "max RSS MiB"
for k in tcpdump replay replay_nodetect tshark; do
	s=${secs[$k]}
	awk -v k="$k" -v s="$s" -v n="$n" -v t="${secs[tcpdump]}" -v r="${rss[$k]}" \
		'BEGIN{printf "%-34s %10.2f %14.0f %10.2f %12.0f\n", k, s, n/s, s/t, r/1024}'
done
awk -v a="${secs[replay]}" -v b="${secs[replay_nodetect]}" \
	'BEGIN{printf "\ndetectors on keep %.0f%% of the packets/s with detectors off\n", 100*b/a}'
