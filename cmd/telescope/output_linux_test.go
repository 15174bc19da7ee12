package main

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// TestOutputDeviceStaysDevice: a character device (a private null device made with mknod,
// never the machine's /dev/null) is written through and stays a device.
func TestOutputDeviceStaysDevice(t *testing.T) {
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("needs root to mknod a character device")
		}
		t.Skip("SKIPPING: needs root to mknod a character device (scripts/test.sh runs as root)")
	}
	pcap, _ := smallCapture(t)
	dev := filepath.Join(t.TempDir(), "null")
	if err := unix.Mknod(dev, unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))); err != nil {
		t.Fatalf("mknod: %v", err)
	}
	code, _, stderr := telescope(t, "replay", "--report", dev, "--metrics-out", filepath.Join(t.TempDir(), "m.prom"), pcap)
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	st, err := os.Lstat(dev)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode()&os.ModeCharDevice == 0 {
		t.Fatalf("%s is now %v, want a character device", dev, st.Mode())
	}
	if rdev := st.Sys().(*syscall.Stat_t).Rdev; unix.Major(rdev) != 1 || unix.Minor(rdev) != 3 {
		t.Fatalf("device numbers changed: %d:%d", unix.Major(rdev), unix.Minor(rdev))
	}
}
