// Package deploy holds the NOC stack shipped with telescope (Prometheus rules and scrape
// config, Alertmanager route, Grafana dashboard, compose file, Kubernetes manifests, the
// systemd unit) and, in its tests, the checks that keep them true: strict decoding,
// promtool and amtool, the rule copies, an image build, and a Prometheus + Alertmanager
// integration test against replaying sensors.
package deploy
