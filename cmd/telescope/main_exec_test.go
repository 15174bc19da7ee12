package main

import (
	"os"
	"testing"
)

// TestMain lets the test binary stand in for the telescope binary: with TELESCOPE_MAIN=1
// it runs the command line instead of the tests, so integration tests can start real
// daemon processes (in network namespaces, as another user) without a separate build.
func TestMain(m *testing.M) {
	if os.Getenv("TELESCOPE_MAIN") == "1" {
		os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
	}
	code := m.Run()
	cleanupExecutables()
	os.Exit(code)
}
