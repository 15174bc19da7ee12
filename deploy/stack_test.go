package deploy

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	sigsyaml "sigs.k8s.io/yaml"

	"github.com/telescope-dev/telescope/internal/daygen"
)

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// proc is a process the test started; it is killed by its id at cleanup.
type proc struct {
	cmd  *exec.Cmd
	done chan struct{}
	log  *lockedBuffer
}

type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func start(t *testing.T, name string, args ...string) *proc {
	t.Helper()
	p := &proc{cmd: exec.Command(name, args...), done: make(chan struct{}), log: &lockedBuffer{}}
	p.cmd.Stdout, p.cmd.Stderr = p.log, p.log
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		p.stop()
		if t.Failed() {
			t.Logf("%s log:\n%s", filepath.Base(name), tail(p.log.String(), 3000))
		}
	})
	return p
}

func (p *proc) stop() {
	select {
	case <-p.done:
	default:
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func httpOK(u string) bool {
	resp, err := http.Get(u)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == 200
}

// promSample is one element of an instant-vector result.
type promSample struct {
	Metric map[string]string `json:"metric"`
	Value  [2]any            `json:"value"`
}

func (s promSample) float(t *testing.T) float64 {
	var f float64
	if _, err := fmt.Sscan(s.Value[1].(string), &f); err != nil {
		t.Fatal(err)
	}
	return f
}

func query(t *testing.T, prom, q string) ([]promSample, error) {
	t.Helper()
	resp, err := http.Get(prom + "/api/v1/query?query=" + url.QueryEscape(q))
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var r struct {
		Status, Error, ErrorType string
		Data                     struct {
			ResultType string          `json:"resultType"`
			Result     json.RawMessage `json:"result"`
		}
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		return nil, err
	}
	if r.Status != "success" {
		return nil, fmt.Errorf("%s: %s", r.ErrorType, r.Error)
	}
	if r.Data.ResultType == "scalar" {
		return []promSample{{Value: [2]any{0, "0"}}}, nil
	}
	var out []promSample
	return out, json.Unmarshal(r.Data.Result, &out)
}

type replay struct {
	addr, report string
	packets      float64
}

// startReplay runs `telescope replay --serve` of pcap as sensor on addr and waits for its
// report.
func startReplay(t *testing.T, bin, dir, sensor, addr, pcap string) (*proc, replay) {
	t.Helper()
	cfg := filepath.Join(dir, sensor+".yaml")
	if err := os.WriteFile(cfg, []byte("sensor: "+sensor+"\ncapture: {workers: 2}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	report := filepath.Join(dir, sensor+"-report.json")
	os.Remove(report)
	p := start(t, bin, "replay", "--serve", "--config", cfg, "--web.listen-address", addr, "--report", report, pcap)
	waitFor(t, "the report of sensor "+sensor, 60*time.Second, func() bool {
		_, err := os.Stat(report)
		return err == nil && httpOK("http://"+addr+"/-/ready")
	})
	var r struct{ Packets map[string]map[string]float64 }
	waitFor(t, "a complete report of "+sensor, 10*time.Second, func() bool {
		b, err := os.ReadFile(report)
		return err == nil && json.Unmarshal(b, &r) == nil
	})
	rp := replay{addr: addr, report: report}
	for _, byProto := range r.Packets {
		for _, n := range byProto {
			rp.packets += n
		}
	}
	return p, rp
}

// webhook collects the alerts Alertmanager posts.
type webhook struct {
	mu     sync.Mutex
	alerts []struct {
		Status string            `json:"status"`
		Labels map[string]string `json:"labels"`
	}
}

func (w *webhook) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	var msg struct {
		Alerts []struct {
			Status string            `json:"status"`
			Labels map[string]string `json:"labels"`
		} `json:"alerts"`
	}
	b, _ := io.ReadAll(r.Body)
	if err := json.Unmarshal(b, &msg); err != nil {
		http.Error(rw, err.Error(), 400)
		return
	}
	w.mu.Lock()
	w.alerts = append(w.alerts, msg.Alerts...)
	w.mu.Unlock()
}

func (w *webhook) has(status, alertname, sensor string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, a := range w.alerts {
		if a.Status == status && a.Labels["alertname"] == alertname && a.Labels["sensor"] == sensor {
			return true
		}
	}
	return false
}

// yamlMap reads a YAML file as a generic map, to change ports and intervals only.
func yamlMap(t *testing.T, path string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := sigsyaml.Unmarshal(read(t, path), &m); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return m
}

func writeYAML(t *testing.T, path string, v any) {
	t.Helper()
	b, err := sigsyaml.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// startAlertmanager runs Debian's Alertmanager on loopback with the shipped route, every
// receiver pointed at hook and short group waits; it returns its address.
func startAlertmanager(t *testing.T, alertmanager, dir, hook string) string {
	t.Helper()
	am := yamlMap(t, "alertmanager/alertmanager.yml")
	route := am["route"].(map[string]any)
	route["group_wait"], route["group_interval"] = "1s", "1s"
	for _, r := range am["receivers"].([]any) {
		for _, w := range r.(map[string]any)["webhook_configs"].([]any) {
			w.(map[string]any)["url"] = hook
		}
	}
	amCfg := filepath.Join(dir, "alertmanager.yml")
	writeYAML(t, amCfg, am)
	amAddr := freePort(t)
	start(t, alertmanager, "--config.file="+amCfg, "--storage.path="+filepath.Join(dir, "am"),
		"--web.listen-address="+amAddr, "--cluster.listen-address=")
	return amAddr
}

// startPrometheus runs Debian's Prometheus on loopback with the shipped scrape config:
// intervals of 1s, the given rule files, Alertmanager at amAddr, and the shipped job's
// static configs retargeted to targets (sensor label → address). A shipped static config
// whose sensor is not in targets is dropped; a sensor the shipped config lacks gets a copy of
// its first static config. It waits until Prometheus is ready and returns its URL.
func startPrometheus(t *testing.T, prometheus, dir, amAddr string, targets map[string]string, ruleFiles ...string) string {
	t.Helper()
	pc := yamlMap(t, "prometheus/prometheus.yml")
	pc["global"] = map[string]any{"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"}
	rules := []any{}
	for _, f := range ruleFiles {
		rules = append(rules, f)
	}
	pc["rule_files"] = rules
	pc["alerting"].(map[string]any)["alertmanagers"].([]any)[0].(map[string]any)["static_configs"] = []any{map[string]any{"targets": []any{amAddr}}}
	job := pc["scrape_configs"].([]any)[0].(map[string]any)
	statics := job["static_configs"].([]any)
	if len(statics) == 0 {
		t.Fatal("the shipped scrape config has no static target")
	}
	var out []any
	seen := map[string]bool{}
	for _, sc := range statics {
		m := sc.(map[string]any)
		sensor, _ := m["labels"].(map[string]any)["sensor"].(string)
		if addr, ok := targets[sensor]; ok {
			m["targets"] = []any{addr}
			out = append(out, m)
			seen[sensor] = true
		}
	}
	for _, sensor := range slices.Sorted(maps.Keys(targets)) {
		if seen[sensor] {
			continue
		}
		var m map[string]any
		b, _ := sigsyaml.Marshal(statics[0])
		if err := sigsyaml.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		m["targets"] = []any{targets[sensor]}
		m["labels"].(map[string]any)["sensor"] = sensor
		out = append(out, m)
	}
	job["static_configs"] = out
	promCfg := filepath.Join(dir, "prometheus.yml")
	writeYAML(t, promCfg, pc)
	promAddr := freePort(t)
	start(t, prometheus, "--config.file="+promCfg, "--storage.tsdb.path="+filepath.Join(dir, "tsdb"),
		"--web.listen-address="+promAddr)
	prom := "http://" + promAddr
	waitFor(t, "prometheus ready", 60*time.Second, func() bool { return httpOK(prom + "/-/ready") })
	return prom
}

// TestNOCStack: Debian's prometheus and prometheus-alertmanager on loopback with the
// shipped configs (ports and intervals substituted) and the shipped rule file, scraping two
// `telescope replay --serve` sensors (a, b) of two generated days: the per-sensor packet
// sums equal the reports, every recording rule evaluates, every dashboard query returns
// data; then sensor b stops and TelescopeSensorDown reaches a webhook through Alertmanager
// with sensor="b", and resolves when b is back.
func TestNOCStack(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	prometheus := requireTool(t, "prometheus", "prometheus")
	alertmanager := requireTool(t, "prometheus-alertmanager", "prometheus-alertmanager")
	bin := telescopeBinary(t)
	dir := t.TempDir()

	// Two different small days.
	days := map[string]string{}
	for i, s := range []string{"a", "b"} {
		days[s] = filepath.Join(dir, "day-"+s+".pcap")
		f, err := os.Create(days[s])
		if err != nil {
			t.Fatal(err)
		}
		if _, err := daygen.Generate(f, daygen.Options{Seed: int64(100 + i), Duration: daygen.MinDuration, Scale: 0.02}); err != nil {
			t.Fatal(err)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
	}
	sensors := map[string]replay{}
	procs := map[string]*proc{}
	for _, s := range []string{"a", "b"} {
		procs[s], sensors[s] = startReplay(t, bin, dir, s, freePort(t), days[s])
	}
	if sensors["a"].packets == sensors["b"].packets || sensors["a"].packets == 0 {
		t.Fatalf("the two days are not different: %v %v packets", sensors["a"].packets, sensors["b"].packets)
	}

	hook := &webhook{}
	hs := httptest.NewServer(hook)
	defer hs.Close()

	amAddr := startAlertmanager(t, alertmanager, dir, hs.URL+"/hook")

	// The shipped rule file as is, plus a test-only copy of TelescopeSensorDown whose only
	// change is `for: 1s` (the shipped 2m would make the test wait minutes).
	rulesAbs, err := filepath.Abs("prometheus/telescope-rules.yml")
	if err != nil {
		t.Fatal(err)
	}
	var down monitoringv1.Rule
	for _, r := range ruleSpec(t).Groups[1].Rules {
		if r.Alert == "TelescopeSensorDown" {
			down = r
		}
	}
	short := monitoringv1.Duration("1s")
	down.For = &short
	testRules := filepath.Join(dir, "test-only-sensor-down.yml")
	writeYAML(t, testRules, monitoringv1.PrometheusRuleSpec{Groups: []monitoringv1.RuleGroup{{Name: "telescope.test-only", Rules: []monitoringv1.Rule{down}}}})

	prom := startPrometheus(t, prometheus, dir, amAddr, map[string]string{"a": sensors["a"].addr, "b": sensors["b"].addr}, rulesAbs, testRules)

	// 1. Per-sensor packet sums equal each replay's report.
	waitFor(t, "both sensors scraped", 60*time.Second, func() bool {
		r, err := query(t, prom, "sum by (sensor) (telescope_packets_total)")
		return err == nil && len(r) == 2
	})
	r, _ := query(t, prom, "sum by (sensor) (telescope_packets_total)")
	for _, s := range r {
		if want := sensors[s.Metric["sensor"]].packets; s.float(t) != want {
			t.Errorf("sensor %q: sum of telescope_packets_total %v, report %v", s.Metric["sensor"], s.float(t), want)
		}
	}

	// 2. Every rule evaluates without error; every recording rule gives data.
	// The drop ratio is undefined (no data) while no packets flow, as after a replay.
	noData := map[string]bool{"sensor_interface:telescope_capture_drop_ratio:rate5m": true}
	var missing []string
	deadline := time.Now().Add(60 * time.Second)
	for {
		missing = nil
		for _, g := range ruleSpec(t).Groups {
			for _, rule := range g.Rules {
				if rule.Record == "" || noData[rule.Record] {
					continue
				}
				if r, err := query(t, prom, rule.Record); err != nil || len(r) < 2 {
					missing = append(missing, rule.Record)
				}
			}
		}
		if len(missing) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	if len(missing) > 0 {
		t.Errorf("recording rules without data for both sensors: %v", missing)
	}
	resp, err := http.Get(prom + "/api/v1/rules")
	if err != nil {
		t.Fatal(err)
	}
	var rules struct {
		Data struct {
			Groups []struct {
				Name  string
				File  string
				Rules []struct {
					Name, Health, LastError, Type string
				}
			}
		}
	}
	if err := json.NewDecoder(resp.Body).Decode(&rules); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	evaluated := 0
	for _, g := range rules.Data.Groups {
		for _, rule := range g.Rules {
			evaluated++
			if rule.Health != "ok" || rule.LastError != "" {
				t.Errorf("rule %s (%s): health %q, error %q", rule.Name, g.Name, rule.Health, rule.LastError)
			}
		}
	}
	want := 1 // every rule of the file, each loaded and healthy, and the test-only copy
	for _, g := range ruleSpec(t).Groups {
		want += len(g.Rules)
	}
	if evaluated != want {
		t.Errorf("%d rules loaded, want %d", evaluated, want)
	}

	// 3. Every dashboard query, variables substituted, returns data without error.
	_, panels := loadDashboard(t)
	subst := strings.NewReplacer(`$sensor`, `a|b`, `$__rate_interval`, `1m`)
	for _, p := range panels {
		for _, q := range p.Targets {
			expr := subst.Replace(q.Expr)
			r, err := query(t, prom, expr)
			switch {
			case err != nil:
				t.Errorf("panel %q: %s: %v", p.Title, expr, err)
			case len(r) == 0:
				t.Errorf("panel %q: %s returns no data", p.Title, expr)
			}
		}
	}

	// 4. Sensor b stops: TelescopeSensorDown{sensor="b"} reaches the webhook through
	// Alertmanager, and resolves once b serves again on its address.
	procs["b"].stop()
	waitFor(t, "TelescopeSensorDown for sensor b at the webhook", 60*time.Second, func() bool {
		return hook.has("firing", "TelescopeSensorDown", "b")
	})
	if hook.has("firing", "TelescopeSensorDown", "a") {
		t.Errorf("TelescopeSensorDown fired for sensor a, which is up")
	}
	startReplay(t, bin, dir, "b", sensors["b"].addr, days["b"])
	waitFor(t, "TelescopeSensorDown for sensor b resolved at the webhook", 60*time.Second, func() bool {
		return hook.has("resolved", "TelescopeSensorDown", "b")
	})
}
