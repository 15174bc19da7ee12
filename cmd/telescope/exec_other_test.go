//go:build !linux

package main

// cleanupExecutables: only Linux's daemon tests copy the test binary (daemon_linux_test.go).
func cleanupExecutables() {}
