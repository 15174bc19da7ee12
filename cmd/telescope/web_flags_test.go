package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestWebConfigFlag: a bad --web.config.file stops run and replay --serve before they
// capture or read anything, with one line naming the flag; the flags are listed in --help.
func TestWebConfigFlag(t *testing.T) {
	pcap, _ := smallCapture(t)
	dir := t.TempDir()
	bad := filepath.Join(dir, "web.yml")
	if err := os.WriteFile(bad, []byte("tls_server_config:\n  cert_file: absent.crt\n  key_file: absent.key\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"run", "--web.listen-address", "127.0.0.1:0", "--web.config.file", bad},
		{"replay", "--serve", "--web.listen-address", "127.0.0.1:0", "--web.config.file", bad, pcap},
		{"replay", "--serve", "--web.listen-address", "127.0.0.1:0", "--web.config.file", filepath.Join(dir, "absent.yml"), pcap},
	} {
		code, _, stderr := telescope(t, args...)
		if code != 1 || !strings.Contains(lastLine(stderr), "--web.config.file") {
			t.Errorf("telescope %s: exit %d, last line %q; want 1 and an error naming --web.config.file", strings.Join(args, " "), code, lastLine(stderr))
		}
		if strings.Contains(stderr, "replay finished") {
			t.Errorf("telescope %s: the replay ran despite the bad web config", strings.Join(args, " "))
		}
	}
	for cmd, flags := range map[string][]string{
		"run":    {"-web.config.file", "-web.enable-lifecycle"},
		"replay": {"-web.config.file"},
	} {
		code, _, stderr := telescope(t, cmd, "--help")
		for _, f := range flags {
			if code != 0 || !strings.Contains(stderr, f) {
				t.Errorf("telescope %s --help: exit %d, no %s in\n%s", cmd, code, f, stderr)
			}
		}
	}
}
