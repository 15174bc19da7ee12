#!/usr/bin/env bash
# Two builds of telescope on the same replay files, for a change whose effect is smaller
# than a shared machine's noise: rounds of A B B A (each build first as often as second),
# and per file and detector set, each build's median user, system and wall time, the
# change of NEW against OLD, and whether their reports are byte for byte the same.
#
# Why not bench.sh's best of 5: on the development VM the same pair of binaries, timed in
# 7-15 rounds of A B, came out 5-10 % apart in CPU time one way, then the other way within
# the hour. The difference was system time: the kernel zeroing the pages the tables
# first touch, 1.7-2.6 ms a MiB there (400-600 MB/s: the host backs each fresh guest page;
# scripts/bench.sh's header), which depends on what ran before, not on the build. User time
# is the build's own, and A B B A rounds spread the slow hours and the order over both.
#
# Usage: scripts/bench-ab.sh [--full] OLD NEW
#   OLD, NEW  a telescope binary, or a revision of this repository (built, with its
#             default.pgo, in a temporary directory removed at the end)
#   --full    bench.sh --full's files (5 M SYN packets, the day at scale 20, a 3 M burst);
#             default: bench.sh's default sizes
# Environment: ROUNDS (default 4: 8 runs of each build per file and set), SETS (default
# "on": any of on, nohot, off, as bench.sh's configs), FILES (default "syn day burst"; also
# wide, bench.sh's /8 swarm: 8 M packets with --full, else 2 M), and bench.sh's SYN_PACKETS,
# DAY_SCALE, BURST_PACKETS, WIDE_PACKETS. Needs GNU time (/usr/bin/time).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin"
full=0
args=()
for a in "$@"; do
	case $a in
	--full) full=1 ;;
	-*) echo "usage: $0 [--full] OLD NEW" >&2; exit 2 ;;
	*) args+=("$a") ;;
	esac
done
[ ${#args[@]} = 2 ] || { echo "usage: $0 [--full] OLD NEW (binaries or revisions)" >&2; exit 2; }
[ -x /usr/bin/time ] || { echo "bench-ab: /usr/bin/time is missing (apt-get install time)"; exit 1; }
rounds=${ROUNDS:-4}
sets=${SETS:-on}
files=${FILES:-syn day burst}
case $rounds in '' | *[!0-9]* | 0) echo "bench-ab: ROUNDS must be a positive number, not '$rounds'"; exit 2 ;; esac
for s in $sets; do
	case $s in on | nohot | off) ;; *) echo "bench-ab: SETS: unknown set '$s' (on, nohot, off)"; exit 2 ;; esac
done
for f in $files; do
	case $f in syn | day | burst | wide) ;; *) echo "bench-ab: FILES: unknown file '$f' (syn, day, burst, wide)"; exit 2 ;; esac
done
n=${SYN_PACKETS:-$([ $full = 1 ] && echo 5000000 || echo 1000000)}
scale=${DAY_SCALE:-$([ $full = 1 ] && echo 20 || echo 5)}
nburst=${BURST_PACKETS:-$([ $full = 1 ] && echo 3000000 || echo 2000000)}
nwide=
case " $files " in *" wide "*) nwide=${WIDE_PACKETS:-$([ $full = 1 ] && echo 8000000 || echo 2000000)} ;; esac
dir=bench
mkdir -p "$dir"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# binary NAME ARG: sets bin[NAME] to ARG if it is an executable file, else builds revision ARG.
declare -A bin
binary() {
	if [ -f "$2" ] && [ -x "$2" ]; then
		cp "$2" "$tmp/$1"
	else
		git rev-parse --verify --quiet "$2^{commit}" >/dev/null ||
			{ echo "bench-ab: $2 is neither an executable file nor a revision of this repository"; exit 2; }
		echo "== building $2 ($(git rev-parse --short "$2"))"
		mkdir -p "$tmp/src-$1"
		git archive "$2" | tar -x -C "$tmp/src-$1"
		(cd "$tmp/src-$1" && CGO_ENABLED=0 go build -o "$tmp/$1" ./cmd/telescope)
	fi
	bin[$1]=$tmp/$1
}
binary old "${args[0]}"
binary new "${args[1]}"

# shellcheck source=scripts/bench-files.sh
. scripts/bench-files.sh
bench_pcaps "$dir" "$n" "$scale" "$nburst" "$nwide"
bench_configs "$dir"

# run NAME PCAP CONFIG: one timed replay of build NAME; appends user, system and wall seconds.
declare -A user sys wall
run() {
	local u s e
	/usr/bin/time -f '%U %S %e' -o "$tmp/time.out" "${bin[$1]}" replay --config "$3" "$2" >/dev/null 2>"$tmp/$1.log" || {
		echo "bench-ab: $1 failed on $2 with $3:"
		tail -3 "$tmp/$1.log"
		exit 1
	}
	read -r u s e < <(tail -1 "$tmp/time.out")
	user[$1]+="$u " sys[$1]+="$s " wall[$1]+="$e "
}

for kind in $files; do
	case $kind in syn) pcap=$syn ;; day) pcap=$day ;; burst) pcap=$burst ;; wide) pcap=$wide ;; esac
	cat "$pcap" >/dev/null # from the page cache, for both builds
	for set in $sets; do
		conf=$dir/$kind-$set.yaml
		user=() sys=() wall=()
		for _ in $(seq "$rounds"); do
			run old "$pcap" "$conf"
			run new "$pcap" "$conf"
			run new "$pcap" "$conf"
			run old "$pcap" "$conf"
		done
		echo
		echo "== $pcap, detectors $set ($conf), $((2 * rounds)) runs of each build, A B B A"
		printf '%-5s %-28s %-28s %s\n' build "user s: median (range)" "system s: median (range)" "wall s: median (range)"
		for b in old new; do
			# shellcheck disable=SC2086 # the lists are words
			printf '%-5s %-28s %-28s %s\n' $b "$(median ${user[$b]}) ($(spread ${user[$b]}))" \
				"$(median ${sys[$b]}) ($(spread ${sys[$b]}))" "$(median ${wall[$b]}) ($(spread ${wall[$b]}))"
		done
		# shellcheck disable=SC2086
		awk -v uo="$(median ${user[old]})" -v un="$(median ${user[new]})" -v so="$(median ${sys[old]})" \
			-v sn="$(median ${sys[new]})" -v wo="$(median ${wall[old]})" -v wn="$(median ${wall[new]})" \
			'function pc(a, b) { return a > 0 ? sprintf("%+.1f %%", 100 * (b - a) / a) : "-" }
			BEGIN { printf "new against old: user %s, system %s, wall %s\n", pc(uo, un), pc(so, sn), pc(wo, wn) }'
		for b in old new; do
			"${bin[$b]}" replay --config "$conf" --report "$tmp/report-$b.json" "$pcap" >/dev/null 2>&1
		done
		if cmp -s "$tmp/report-old.json" "$tmp/report-new.json"; then
			echo "reports: byte for byte the same"
		else
			echo "reports: DIFFER ($(cmp "$tmp/report-old.json" "$tmp/report-new.json" 2>&1 | head -1))"
		fi
	done
done
