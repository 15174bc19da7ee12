#!/usr/bin/env bash
# The one test command: installs what the tests need (Debian, as root), then runs the
# static checks, the unit and integration tests (live capture in network namespaces
# included) and the cgo libpcap build. Under CI=true a missing prerequisite fails a test
# instead of skipping it.
set -euo pipefail
cd "$(dirname "$0")/.."

export PATH="$PATH:/usr/local/go/bin:$(go env GOPATH 2>/dev/null)/bin:/usr/sbin:/sbin"
# Build and test with the toolchain go.mod names (a patched Go: govulncheck checks it), fetched
# through the module proxy when the machine's Go is older.
export GOTOOLCHAIN=auto
packages=(libpcap-dev tcpdump tshark tcpreplay prometheus iproute2 gcc chromium
	prometheus-alertmanager podman buildah libcap2-bin curl)
need_install=0
for tool in tcpdump tshark tcpreplay promtool ip gcc chromium prometheus-alertmanager amtool podman buildah setcap curl; do
	command -v "$tool" >/dev/null 2>&1 || need_install=1
done
[ -e /usr/include/pcap/pcap.h ] || need_install=1
if [ "$need_install" = 1 ]; then
	if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
		echo "== installing test prerequisites: ${packages[*]}"
		export DEBIAN_FRONTEND=noninteractive
		apt-get update -qq
		apt-get install -y -qq "${packages[@]}" >/dev/null
	else
		echo "!! some test prerequisites are missing and this is not a root Debian shell;"
		echo "!! the tests that need them will skip (or fail under CI=true): ${packages[*]}"
	fi
fi

echo "== go mod tidy"
if ! go mod tidy -diff; then
	echo "go.mod/go.sum are not tidy: run go mod tidy"; exit 1
fi

echo "== govulncheck"
# The vulnerability database: GOVULNDB if set (a URL or file:// mirror), else built here from
# the OSV files of a pinned golang.org/x/vulndb module (the module proxy is reachable where
# vuln.go.dev may not be). Bump vulndb_version to pick up newer advisories.
vulndb_version=v0.0.0-20261105234957-e22db6528018
vulndb="${GOVULNDB:-}"
if [ -z "$vulndb" ]; then
	vtmp=$(mktemp -d)
	trap 'rm -rf "$vtmp"' EXIT
	vdir=$(cd "$vtmp" && go mod download -json "golang.org/x/vulndb@$vulndb_version" | sed -n 's/.*"Dir": "\(.*\)".*/\1/p')
	(cd "$vtmp" && go run "golang.org/x/vulndb/cmd/indexdb@$vulndb_version" -vulns "$vdir/data/osv" -out "$vtmp/db")
	vulndb="file://$vtmp/db"
fi
go run golang.org/x/vuln/cmd/govulncheck@v1.9.0 -db "$vulndb" ./...

echo "== go vet"
go vet ./...
go vet -tags pcap ./...
# replay (and every package, tests included) builds on macOS, which researchers use; live
# capture there says it needs Linux. (The BSDs build the same files; a second system
# doubled this step's ~4 minutes on a cold cache.)
GOOS=darwin go vet ./...

echo "== gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$unformatted" ]; then
	echo "gofmt would change:"; echo "$unformatted"; exit 1
fi

echo "== staticcheck"
go run honnef.co/go/tools/cmd/staticcheck@v0.8.2 ./...

echo "== unit and integration tests"
# The HTML study's browser test keeps its screenshots here.
export TELESCOPE_ARTIFACTS="${TELESCOPE_ARTIFACTS:-$PWD/test-artifacts}"
go test -count=1 -timeout 15m ./...

echo "== soak, short (the live daemon for 100 s: looped day, checkpoints, reloads, flaps; no growth after warm-up)"
if [ "$(id -u)" = 0 ]; then
	SOAK_SHORT=1 scripts/soak.sh
elif [ "${CI:-}" = true ]; then
	echo "the soak needs root (CI=true)"; exit 1
else
	echo "!! SOAK SKIPPED: needs root"
fi

echo "== race detector (concurrent packages)"
go test -count=1 -race -timeout 10m -short ./pipeline/... ./metrics/... ./aggregate/... ./detect/...

echo "== container image (final stage of the Dockerfile from the static binary; buildah, podman inspect)"
go test -count=1 -run 'TestImage' -v ./deploy/ | grep -E '^(---|ok|FAIL)'

echo "== cgo build with libpcap (method: pcap)"
CGO_ENABLED=1 go test -count=1 -tags pcap -timeout 5m -run 'LibPcap|RunStartupErrors' ./cmd/...
CGO_ENABLED=0 go build -o /dev/null ./cmd/telescope

echo "== all tests passed"
