#!/usr/bin/env bash
# The hostile-input figures of issue 13, measured again beside the values the issue
# reported (before the fixes). Replay only (no root, no network namespaces):
#   1. a flood of one-packet Mirai episodes (random spoofed sources, seq == dst IP),
#      max_sources 20000: maximum RSS, report size, log bytes;
#   2. SIGTERM during a replay with many open episodes: seconds from the signal to exit;
#   3. stderr on a FIFO nobody reads: does the replay finish and write its report?
# Usage: scripts/abuse.sh [packets] (default 1000000). OLD=path/to/old/telescope also
# runs an older binary on the same inputs, for a before/after on this machine.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin"
n=${1:-1000000}
dir=bench/abuse
mkdir -p "$dir"
echo "== building"
CGO_ENABLED=0 go build -o "$dir/telescope" ./cmd/telescope
[ -s "$dir/mirai-$n.pcap" ] || go run ./internal/cmd/floodgen -n "$n" -o "$dir/mirai-$n.pcap"
# The same packets inside one minute of packet time: every episode is still open at the end.
[ -s "$dir/mirai-$n-1m.pcap" ] || go run ./internal/cmd/floodgen -n "$n" -span 1m -o "$dir/mirai-$n-1m.pcap"
cat > "$dir/abuse.yaml" <<'YAML'
dark_prefixes: [203.0.113.0/24]
limits:
  max_sources: 20000
# Log every one-packet Mirai episode (the defaults log none of them), as the issue's
# figures did: the log volume and the stalled-stderr runs compare like for like.
detect:
  fingerprint: {log_min_packets: 1}
YAML
bins=("$dir/telescope")
[ -n "${OLD:-}" ] && bins+=("$OLD")

for bin in "${bins[@]}"; do
	echo
	echo "== $bin"
	# 1. RSS, report and log of the one-packet-episode flood.
	/usr/bin/time -v "$bin" replay --config "$dir/abuse.yaml" --report "$dir/report.json" \
		"$dir/mirai-$n.pcap" 2>"$dir/stderr.txt" || true
	rss=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$dir/stderr.txt")
	logb=$(grep -c '"msg"' "$dir/stderr.txt" || true)
	printf '%-52s %10.0f MB   (issue: 3.9 GB for 3 M packets)\n' "flood of $n one-packet episodes, max RSS" "$(echo "$rss / 1024" | bc -l)"
	printf '%-52s %10.0f MB\n' "report size" "$(echo "$(stat -c %s "$dir/report.json") / 1000000" | bc -l)"
	printf '%-52s %10.0f MB   (%s lines; issue: 478 MB of log for 54 MB of packets, live)\n' "log bytes" \
		"$(echo "$(stat -c %s "$dir/stderr.txt") / 1000000" | bc -l)" "$logb"

	# 2. SIGTERM with every episode still open.
	"$bin" replay --config "$dir/abuse.yaml" --report "$dir/report-term.json" "$dir/mirai-$n-1m.pcap" 2>"$dir/stderr-term.txt" &
	pid=$!
	sleep 3
	t0=$(date +%s.%N)
	kill -TERM "$pid"
	wait "$pid" || true
	t1=$(date +%s.%N)
	printf '%-52s %10.2f s    (issue: 10 s with 1 M open episodes, live)\n' "SIGTERM to exit, episodes open" "$(echo "$t1 - $t0" | bc -l)"

	# 3. stderr on a FIFO that is held open but never read.
	fifo="$dir/stalled.fifo"
	rm -f "$fifo" "$dir/report-stalled.json"
	mkfifo "$fifo"
	exec 3<>"$fifo" # keeps a reader so writes block instead of failing
	t0=$(date +%s.%N)
	status=finished
	timeout -k 5 120 "$bin" replay --config "$dir/abuse.yaml" --report "$dir/report-stalled.json" \
		"$dir/mirai-$n.pcap" 2>"$fifo" || status="did not finish (exit $?)"
	t1=$(date +%s.%N)
	exec 3<&-
	rm -f "$fifo"
	[ -s "$dir/report-stalled.json" ] && rep="report written" || rep="no report"
	printf '%-52s %s in %.1f s, %s   (issue: counting stops, SIGTERM ignored: timeout kills it)\n' "stderr stalled (FIFO nobody reads)" "$status" "$(echo "$t1 - $t0" | bc -l)" "$rep"
done
