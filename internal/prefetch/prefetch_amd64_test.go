package prefetch

import (
	"os"
	"runtime"
	"strings"
	"testing"
)

// The CPUID bit Write trusts is the one Linux shows as the flag 3dnowprefetch.
func TestHasWriteMatchesCPUInfo(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("reads /proc/cpuinfo")
	}
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if name, flags, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(name) == "flags" {
			want := strings.Contains(" "+flags+" ", " 3dnowprefetch ")
			if got := hasWrite(); got != want {
				t.Fatalf("hasWrite() = %v, /proc/cpuinfo has 3dnowprefetch: %v", got, want)
			}
			return
		}
	}
	t.Fatal("no flags line in /proc/cpuinfo")
}
