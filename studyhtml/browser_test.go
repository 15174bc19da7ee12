package studyhtml

import (
	"bytes"
	"context"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// chromium returns the path of Debian's chromium, skipping loudly outside CI when it is
// missing (scripts/test.sh installs it; under CI=true its absence fails).
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("chromium is not installed (apt-get install chromium)")
	}
	t.Skip("SKIPPING browser test: chromium is not installed (apt-get install chromium); scripts/test.sh installs it")
	return ""
}

// headless runs chromium on url with extra flags and returns stdout and stderr. Every run
// gets a fresh profile; host names other than loopback resolve to nothing, so a page that
// tried to load anything from elsewhere would fail to.
func headless(t *testing.T, bin, url string, extra ...string) (string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	args := []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--user-data-dir=" + t.TempDir(), "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
		"--enable-logging=stderr", "--v=0", "--hide-scrollbars", "--virtual-time-budget=3000"}
	args = append(append(args, extra...), url)
	var out, errb bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("chromium %s: %v\n%s", url, err, errb.String())
	}
	return out.String(), errb.String()
}

// consoleErrors returns the console errors and uncaught exceptions chromium logged.
func consoleErrors(stderr string) []string {
	var out []string
	for _, l := range strings.Split(stderr, "\n") {
		if strings.Contains(l, "Uncaught") || strings.Contains(l, ":CONSOLE") && strings.Contains(strings.ToLower(l), "error") {
			out = append(out, l)
		}
	}
	return out
}

// TestBrowser opens the study page of the generated day and the live overview (served
// on loopback) in headless chromium: no console errors, the script ran (the pagers say
// which rows they show), and screenshots are kept (TELESCOPE_ARTIFACTS or the temp dir).
func TestBrowser(t *testing.T) {
	bin := chromium(t)
	dir := artifactDir(t)

	// The check catches errors: a page with a failing script is reported.
	bad := filepath.Join(t.TempDir(), "bad.html")
	if err := os.WriteFile(bad, []byte(`<!DOCTYPE html><html><body><script>noSuchFunction();</script></body></html>`), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, errs := headless(t, bin, "file://"+bad, "--dump-dom"); len(consoleErrors(errs)) == 0 {
		t.Fatalf("a failing script went unnoticed; chromium logged:\n%s", errs)
	}

	var buf bytes.Buffer
	if err := Render(&buf, generatedDay(t), Options{Inputs: []string{"day.pcap (generated)"}}); err != nil {
		t.Fatal(err)
	}
	study := filepath.Join(dir, "study.html")
	if err := os.WriteFile(study, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	dom, errs := headless(t, bin, "file://"+study, "--dump-dom")
	if e := consoleErrors(errs); len(e) > 0 {
		t.Errorf("study page: console errors:\n%s", strings.Join(e, "\n"))
	}
	if !strings.Contains(dom, "rows 1–25 of") {
		t.Error("study page: the table script did not run (no pager text in the DOM)")
	}
	shot := filepath.Join(dir, "study.png")
	if _, errs := headless(t, bin, "file://"+study, "--window-size=1100,3000", "--screenshot="+shot); len(consoleErrors(errs)) > 0 {
		t.Errorf("study page screenshot run: console errors:\n%s", strings.Join(consoleErrors(errs), "\n"))
	}
	checkPNG(t, shot)

	srv := httptest.NewServer(LiveHandler(testOverview, 5*time.Second))
	defer srv.Close()
	dom, errs = headless(t, bin, srv.URL+"/", "--dump-dom")
	if e := consoleErrors(errs); len(e) > 0 {
		t.Errorf("live page: console errors:\n%s", strings.Join(e, "\n"))
	}
	if !strings.Contains(dom, "live-syn-ports") || !strings.Contains(dom, "eth1") {
		t.Error("live page: the DOM lacks the charts")
	}
	liveShot := filepath.Join(dir, "live.png")
	headless(t, bin, srv.URL+"/", "--window-size=1100,1800", "--screenshot="+liveShot)
	checkPNG(t, liveShot)
	t.Logf("screenshots: %s, %s", shot, liveShot)
}

func checkPNG(t *testing.T, path string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("no screenshot: %v", err)
	}
	if !bytes.HasPrefix(b, []byte("\x89PNG")) || len(b) < 10000 {
		t.Errorf("%s: not a plausible screenshot (%d bytes)", path, len(b))
	}
}
