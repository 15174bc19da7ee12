package deploy

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	sigsyaml "sigs.k8s.io/yaml"

	"github.com/telescope-dev/telescope/configs"
)

var update = flag.Bool("update", false, "regenerate kubernetes/prometheusrule.yaml from prometheus/telescope-rules.yml")

// requireTool returns the path of a tool, skipping loudly outside CI and failing under CI=true.
func requireTool(t *testing.T, name, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is not installed (apt-get install %s)", name, pkg)
		}
		t.Skipf("SKIPPING: %s is not installed (apt-get install %s); scripts/test.sh installs it", name, pkg)
	}
	return p
}

func read(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// strict decodes YAML into v, refusing unknown fields.
func strict(t *testing.T, path string, v any) {
	t.Helper()
	if err := sigsyaml.UnmarshalStrict(read(t, path), v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// ruleSpec reads the shipped rule file as the operator's rule spec (strictly).
func ruleSpec(t *testing.T) monitoringv1.PrometheusRuleSpec {
	var spec monitoringv1.PrometheusRuleSpec
	strict(t, "prometheus/telescope-rules.yml", &spec)
	return spec
}

const ruleHeader = "# GENERATED from deploy/prometheus/telescope-rules.yml by `go test ./deploy -run PrometheusRule -update`.\n# Do not edit: edit the rule file and regenerate (a test fails when the two differ).\n"

func TestPrometheusRuleIsTheRuleFile(t *testing.T) {
	spec := ruleSpec(t)
	path := "kubernetes/prometheusrule.yaml"
	if *update {
		pr := monitoringv1.PrometheusRule{
			TypeMeta:   metav1.TypeMeta{APIVersion: "monitoring.coreos.com/v1", Kind: "PrometheusRule"},
			ObjectMeta: metav1.ObjectMeta{Name: "telescope", Namespace: "telescope", Labels: map[string]string{"app.kubernetes.io/name": "telescope"}},
			Spec:       spec,
		}
		b, err := sigsyaml.Marshal(pr)
		if err != nil {
			t.Fatal(err)
		}
		b = regexp.MustCompile(`(?m)^\s*creationTimestamp: null\n`).ReplaceAll(b, nil)
		if err := os.WriteFile(path, append([]byte(ruleHeader), b...), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var pr monitoringv1.PrometheusRule
	strict(t, path, &pr)
	if pr.Kind != "PrometheusRule" || pr.APIVersion != "monitoring.coreos.com/v1" {
		t.Errorf("%s: kind %s %s", path, pr.APIVersion, pr.Kind)
	}
	if !reflect.DeepEqual(pr.Spec, spec) {
		t.Errorf("%s differs from prometheus/telescope-rules.yml: run go test ./deploy -run PrometheusRule -update", path)
	}
	if len(spec.Groups) != 2 || len(spec.Groups[1].Rules) < 11 {
		t.Errorf("rule file: %d groups", len(spec.Groups))
	}
}

// The alerts the issue asks for, each with a summary, a description, a runbook URL that
// points at a README section, and a promtool unit test (both firing and not firing).
func TestAlertsAreDocumentedAndTested(t *testing.T) {
	readme := string(read(t, "../README.md"))
	tests := string(read(t, "prometheus/telescope-rules.test.yml"))
	want := []string{"TelescopeTelnetSurge", "TelescopeTelnetSourcesAboveBaseline", "TelescopeNewHeavyScanner",
		"TelescopeWatchedPortScanner", "TelescopeBackscatter", "TelescopePrefixSilent", "TelescopeCaptureDrops", "TelescopeDetectionShed",
		"TelescopeCaptureDown", "TelescopeLastPacketTooOld", "TelescopeSensorDown", "TelescopeConfigReloadFailed"}
	var got []string
	for _, g := range ruleSpec(t).Groups {
		for _, r := range g.Rules {
			if r.Alert == "" {
				continue
			}
			got = append(got, r.Alert)
			for _, a := range []string{"summary", "description", "runbook_url"} {
				if r.Annotations[a] == "" {
					t.Errorf("%s has no %s", r.Alert, a)
				}
			}
			if r.Labels["severity"] == "" {
				t.Errorf("%s has no severity", r.Alert)
			}
			anchor := strings.ToLower(r.Alert)
			if !strings.HasSuffix(r.Annotations["runbook_url"], "README.md#"+anchor) || !strings.Contains(readme, "#### "+r.Alert+"\n") {
				t.Errorf("%s: runbook_url %q has no README section '#### %s'", r.Alert, r.Annotations["runbook_url"], r.Alert)
			}
			// Firing: an exp_alerts entry with labels; not firing: an empty exp_alerts.
			re := regexp.MustCompile(`alertname: ` + r.Alert + `\n\s+exp_alerts:(.*)\n`)
			var fires, silent bool
			for _, m := range re.FindAllStringSubmatch(tests, -1) {
				if strings.TrimSpace(m[1]) == "[]" {
					silent = true
				} else {
					fires = true
				}
			}
			if !fires || !silent {
				t.Errorf("%s: promtool unit tests firing %v, not firing %v; want both", r.Alert, fires, silent)
			}
		}
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("alerts %v, want %v", got, want)
	}
}

func TestPromtoolAndAmtool(t *testing.T) {
	promtool := requireTool(t, "promtool", "prometheus")
	run(t, promtool, "check", "config", "prometheus/prometheus.yml")
	run(t, promtool, "check", "rules", "prometheus/telescope-rules.yml")
	if out := run(t, promtool, "test", "rules", "prometheus/telescope-rules.test.yml"); !strings.Contains(out, "SUCCESS") {
		t.Errorf("promtool test rules: %s", out)
	}
	// The compose copy of the scrape config, beside the rules as it is mounted.
	dir := t.TempDir()
	for src, dst := range map[string]string{"compose/prometheus.yml": "prometheus.yml", "prometheus/telescope-rules.yml": "telescope-rules.yml"} {
		if err := os.WriteFile(filepath.Join(dir, dst), read(t, src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	run(t, promtool, "check", "config", filepath.Join(dir, "prometheus.yml"))
	amtool := requireTool(t, "amtool", "prometheus-alertmanager")
	run(t, amtool, "check-config", "alertmanager/alertmanager.yml")
	// A broken rule is caught (the checks can fail).
	bad := filepath.Join(dir, "bad.yml")
	if err := os.WriteFile(bad, bytes.Replace(read(t, "prometheus/telescope-rules.yml"), []byte("sum by (sensor) (rate("), []byte("sum by (sensor) (rate(("), 1), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(promtool, "check", "rules", bad).CombinedOutput(); err == nil {
		t.Errorf("promtool accepted a broken rule file:\n%s", out)
	}
}

func TestKubernetesManifests(t *testing.T) {
	var kust struct {
		APIVersion string   `json:"apiVersion"`
		Kind       string   `json:"kind"`
		Resources  []string `json:"resources"`
	}
	strict(t, "kubernetes/kustomization.yaml", &kust)
	files, _ := filepath.Glob("kubernetes/*.yaml")
	for _, f := range files {
		if base := filepath.Base(f); base != "kustomization.yaml" && !slices.Contains(kust.Resources, base) {
			t.Errorf("%s is not listed in kustomization.yaml", f)
		}
	}
	for _, r := range kust.Resources {
		if _, err := os.Stat(filepath.Join("kubernetes", r)); err != nil {
			t.Errorf("kustomization.yaml: %v", err)
		}
	}
	var ns corev1.Namespace
	strict(t, "kubernetes/namespace.yaml", &ns)
	var cm corev1.ConfigMap
	strict(t, "kubernetes/configmap.yaml", &cm)
	var ds appsv1.DaemonSet
	strict(t, "kubernetes/daemonset.yaml", &ds)
	var svc corev1.Service
	strict(t, "kubernetes/service.yaml", &svc)
	var sm monitoringv1.ServiceMonitor
	strict(t, "kubernetes/servicemonitor.yaml", &sm)

	if _, err := configs.Parse([]byte(cm.Data["telescope.yaml"]), "configmap telescope.yaml"); err != nil {
		t.Errorf("ConfigMap telescope.yaml: %v", err)
	}
	for _, o := range []metav1.ObjectMeta{cm.ObjectMeta, ds.ObjectMeta, svc.ObjectMeta, sm.ObjectMeta} {
		if o.Namespace != ns.Name {
			t.Errorf("%s is in namespace %q, not %q", o.Name, o.Namespace, ns.Name)
		}
	}
	spec := ds.Spec.Template.Spec
	if !spec.HostNetwork || len(spec.Containers) != 1 {
		t.Fatalf("DaemonSet: hostNetwork %v, %d containers", spec.HostNetwork, len(spec.Containers))
	}
	c := spec.Containers[0]
	sc := c.SecurityContext
	if sc == nil || sc.Capabilities == nil || !reflect.DeepEqual(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) ||
		!reflect.DeepEqual(sc.Capabilities.Add, []corev1.Capability{"NET_RAW", "NET_ADMIN"}) || (sc.Privileged != nil && *sc.Privileged) {
		t.Errorf("DaemonSet capabilities: %+v", sc)
	}
	if ps := spec.SecurityContext; ps == nil || ps.RunAsNonRoot == nil || !*ps.RunAsNonRoot || ps.RunAsUser == nil || *ps.RunAsUser == 0 {
		t.Errorf("DaemonSet does not run as non-root: %+v", spec.SecurityContext)
	}
	if c.LivenessProbe == nil || c.LivenessProbe.HTTPGet == nil || c.LivenessProbe.HTTPGet.Path != "/-/healthy" ||
		c.ReadinessProbe == nil || c.ReadinessProbe.HTTPGet == nil || c.ReadinessProbe.HTTPGet.Path != "/-/ready" {
		t.Errorf("DaemonSet probes: %+v %+v", c.LivenessProbe, c.ReadinessProbe)
	}
	if len(c.Ports) != 1 || c.Ports[0].ContainerPort != 9813 || c.LivenessProbe.HTTPGet.Port.StrVal != c.Ports[0].Name {
		t.Errorf("DaemonSet ports: %+v", c.Ports)
	}
	if !slices.Contains(c.Args, "/etc/telescope/telescope.yaml") || len(spec.Volumes) != 1 || spec.Volumes[0].ConfigMap == nil ||
		spec.Volumes[0].ConfigMap.Name != cm.Name || len(c.VolumeMounts) != 1 || c.VolumeMounts[0].MountPath != "/etc/telescope" {
		t.Errorf("DaemonSet does not run with the ConfigMap's telescope.yaml: args %v, volumes %+v", c.Args, spec.Volumes)
	}
	// The Go runtime's soft memory limit sits under the container's hard one, so that the
	// collector works before the kernel kills the sensor.
	hard := c.Resources.Limits.Memory().Value()
	soft := int64(-1)
	for _, e := range c.Env {
		if e.Name == "GOMEMLIMIT" {
			soft = goMemLimit(e.Value)
		}
	}
	if hard <= 0 || soft <= 0 || soft >= hard {
		t.Errorf("DaemonSet: GOMEMLIMIT %d bytes, memory limit %d: want a soft limit under the hard one", soft, hard)
	}
	if !reflect.DeepEqual(ds.Spec.Selector.MatchLabels, ds.Spec.Template.Labels) || !reflect.DeepEqual(svc.Spec.Selector, ds.Spec.Template.Labels) {
		t.Errorf("selectors: DaemonSet %v, template %v, Service %v", ds.Spec.Selector.MatchLabels, ds.Spec.Template.Labels, svc.Spec.Selector)
	}
	if len(svc.Spec.Ports) != 1 || svc.Spec.Ports[0].TargetPort.StrVal != c.Ports[0].Name {
		t.Errorf("Service ports: %+v", svc.Spec.Ports)
	}
	if !reflect.DeepEqual(sm.Spec.Selector.MatchLabels, svc.Labels) || len(sm.Spec.Endpoints) != 1 || sm.Spec.Endpoints[0].Port != svc.Spec.Ports[0].Name {
		t.Errorf("ServiceMonitor does not select the Service's metrics port: %+v", sm.Spec)
	}
}

// goMemLimit parses a GOMEMLIMIT value (a number of bytes with an optional B, KiB, MiB,
// GiB or TiB suffix, as the runtime reads it), or returns -1.
func goMemLimit(v string) int64 {
	mult := int64(1)
	for i, suf := range []string{"KiB", "MiB", "GiB", "TiB"} {
		if strings.HasSuffix(v, suf) {
			v, mult = strings.TrimSuffix(v, suf), int64(1)<<(10*(i+1))
			break
		}
	}
	n, err := strconv.ParseInt(strings.TrimSuffix(v, "B"), 10, 64)
	if err != nil || n <= 0 {
		return -1
	}
	return n * mult
}

// composeFile is the part of the compose specification the shipped file uses; unknown keys
// are errors.
type composeFile struct {
	Name     string `json:"name"`
	Services map[string]struct {
		Build *struct {
			Context    string `json:"context"`
			Dockerfile string `json:"dockerfile"`
		} `json:"build"`
		Image       string            `json:"image"`
		NetworkMode string            `json:"network_mode"`
		CapDrop     []string          `json:"cap_drop"`
		CapAdd      []string          `json:"cap_add"`
		Command     []string          `json:"command"`
		Environment map[string]string `json:"environment"`
		Volumes     []string          `json:"volumes"`
		Ports       []string          `json:"ports"`
		ExtraHosts  []string          `json:"extra_hosts"`
		Restart     string            `json:"restart"`
	} `json:"services"`
}

func TestComposeFile(t *testing.T) {
	var cf composeFile
	strict(t, "compose/compose.yaml", &cf)
	for _, s := range []string{"telescope", "prometheus", "alertmanager", "grafana"} {
		if _, ok := cf.Services[s]; !ok {
			t.Errorf("compose: no service %s", s)
		}
	}
	for name, s := range cf.Services {
		for _, v := range s.Volumes {
			host := strings.SplitN(v, ":", 2)[0]
			if _, err := os.Stat(filepath.Join("compose", host)); err != nil {
				t.Errorf("compose service %s mounts a missing file: %v", name, err)
			}
		}
		if s.Build != nil {
			if _, err := os.Stat(filepath.Join("compose", s.Build.Context, s.Build.Dockerfile)); err != nil {
				t.Errorf("compose service %s: %v", name, err)
			}
		}
	}
	tel := cf.Services["telescope"]
	if tel.NetworkMode != "host" || !reflect.DeepEqual(tel.CapAdd, []string{"NET_RAW", "NET_ADMIN"}) || !reflect.DeepEqual(tel.CapDrop, []string{"ALL"}) {
		t.Errorf("compose telescope: network %q, caps +%v -%v", tel.NetworkMode, tel.CapAdd, tel.CapDrop)
	}
	if _, err := configs.Load("compose/telescope.yaml"); err != nil {
		t.Errorf("compose telescope.yaml: %v", err)
	}
	// Grafana's provisioning points at the mount of the dashboards.
	var prov struct {
		APIVersion int `json:"apiVersion"`
		Providers  []struct {
			Name                  string `json:"name"`
			Folder                string `json:"folder"`
			Type                  string `json:"type"`
			DisableDeletion       bool   `json:"disableDeletion"`
			UpdateIntervalSeconds int    `json:"updateIntervalSeconds"`
			AllowUIUpdates        bool   `json:"allowUiUpdates"`
			Options               struct {
				Path                      string `json:"path"`
				FoldersFromFilesStructure bool   `json:"foldersFromFilesStructure"`
			} `json:"options"`
		} `json:"providers"`
	}
	strict(t, "grafana/provisioning/dashboards/telescope.yml", &prov)
	if len(prov.Providers) != 1 || !slices.Contains(cf.Services["grafana"].Volumes, "../grafana/dashboards:"+prov.Providers[0].Options.Path+":ro") {
		t.Errorf("grafana provisioning path %+v is not where compose mounts deploy/grafana/dashboards", prov.Providers)
	}
	var dsProv struct {
		APIVersion  int `json:"apiVersion"`
		Datasources []struct {
			Name      string            `json:"name"`
			Type      string            `json:"type"`
			Access    string            `json:"access"`
			URL       string            `json:"url"`
			IsDefault bool              `json:"isDefault"`
			JSONData  map[string]string `json:"jsonData"`
		} `json:"datasources"`
	}
	strict(t, "grafana/provisioning/datasources/prometheus.yml", &dsProv)
	if len(dsProv.Datasources) != 1 || dsProv.Datasources[0].Type != "prometheus" || !strings.Contains(dsProv.Datasources[0].URL, "prometheus:9090") {
		t.Errorf("grafana datasource provisioning: %+v", dsProv)
	}
}

// dashboard is the part of the Grafana dashboard model the checks read.
type dashboard struct {
	UID        string `json:"uid"`
	Title      string `json:"title"`
	Templating struct {
		List []struct {
			Name, Type string
			Query      any
		} `json:"list"`
	} `json:"templating"`
	Panels []panel `json:"panels"`
}

type panel struct {
	Type       string          `json:"type"`
	Title      string          `json:"title"`
	Datasource json.RawMessage `json:"datasource"`
	Targets    []struct {
		Expr       string          `json:"expr"`
		Instant    bool            `json:"instant"`
		Datasource json.RawMessage `json:"datasource"`
	} `json:"targets"`
	Panels []panel `json:"panels"`
}

func loadDashboard(t *testing.T) (dashboard, []panel) {
	t.Helper()
	var d dashboard
	if err := json.Unmarshal(read(t, "grafana/dashboards/telescope.json"), &d); err != nil {
		t.Fatal(err)
	}
	var all []panel
	var walk func([]panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			if p.Type != "row" {
				all = append(all, p)
			}
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	return d, all
}

func TestDashboard(t *testing.T) {
	raw := read(t, "grafana/dashboards/telescope.json")
	// No data source is named by UID except through the variable.
	for _, m := range regexp.MustCompile(`"uid":\s*"([^"]*)"`).FindAllStringSubmatch(string(raw), -1) {
		if m[1] != "${datasource}" && m[1] != "telescope-overview" && m[1] != "-- Grafana --" {
			t.Errorf("dashboard hard-codes the uid %q", m[1])
		}
	}
	d, panels := loadDashboard(t)
	vars := map[string]string{}
	for _, v := range d.Templating.List {
		vars[v.Name] = v.Type
	}
	if vars["datasource"] != "datasource" || vars["sensor"] != "query" {
		t.Errorf("dashboard variables %v: want datasource (datasource) and sensor (query)", vars)
	}
	if len(panels) < 20 {
		t.Errorf("%d panels", len(panels))
	}
	for _, p := range panels {
		if !strings.Contains(string(p.Datasource), "${datasource}") || len(p.Targets) == 0 {
			t.Errorf("panel %q: datasource %s, %d queries", p.Title, p.Datasource, len(p.Targets))
		}
		for _, q := range p.Targets {
			if !strings.Contains(q.Expr, `sensor=~"$sensor"`) {
				t.Errorf("panel %q query does not filter by $sensor: %s", p.Title, q.Expr)
			}
		}
	}
	for _, want := range []string{"telescope_packets_total", "telescope_prefix_packets_total", "telescope_tcp_flags_packets_total",
		`kind="tcp_syn"`, `kind="udp"`, "telescope_top_source_packets", "telescope_source_packets_per_window_bucket",
		"telescope_detections_active", "telescope_telnet_sources", "telescope_backscatter_packets_total",
		"telescope_fingerprint_packets_total", "telescope_capture_drops_total", "telescope_detection_shed_packets_total",
		"telescope_capture_up",
		"telescope_last_packet_timestamp_seconds", "telescope_config_last_reload_successful"} {
		if !bytes.Contains(raw, []byte(strings.ReplaceAll(want, `"`, `\"`))) {
			t.Errorf("no dashboard panel shows %s", want)
		}
	}
}
