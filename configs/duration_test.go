package configs

import (
	"math"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

func TestDurationString(t *testing.T) {
	tests := []struct {
		d    time.Duration
		want string
	}{
		{0, "0s"},
		{5 * time.Minute, "5m"},
		{90 * time.Second, "1m30s"},
		{60 * time.Second, "1m"},
		{time.Hour + 30*time.Minute, "1h30m"},
		{time.Hour + 30*time.Second, "1h30s"},
		{1500 * time.Millisecond, "1s500ms"},
		{time.Microsecond, "1us"},
		{time.Nanosecond, "1ns"},
		{-5 * time.Minute, "-5m"},
		{100 * time.Hour, "100h"},
		{math.MaxInt64, "2562047h47m16s854ms775us807ns"},
		{math.MinInt64, "-2562047h47m16s854ms775us808ns"},
	}
	for _, tc := range tests {
		got := Duration(tc.d).String()
		if got != tc.want {
			t.Errorf("Duration(%v).String() = %q, want %q", tc.d, got, tc.want)
		}
		back, err := time.ParseDuration(got)
		if err != nil || back != tc.d {
			t.Errorf("time.ParseDuration(%q) = %v, %v; want %v", got, back, err, tc.d)
		}
		if Duration(tc.d).D() != tc.d {
			t.Errorf("Duration(%v).D() = %v", tc.d, Duration(tc.d).D())
		}
	}
}

func TestDurationYAML(t *testing.T) {
	tests := []struct {
		yaml    string
		want    time.Duration
		wantErr string
	}{
		{"d: 5m", 5 * time.Minute, ""},
		{`d: "90s"`, 90 * time.Second, ""},
		{"d: 1h30m", 90 * time.Minute, ""},
		{"d: 0", 0, ""},
		{"d: -1s", -time.Second, ""},
		{"d: 5 minutes", 0, `line 1: expected a duration such as "5m" or "90s", got "5 minutes"`},
		{"d: 2.5", 0, `line 1: expected a duration such as "5m" or "90s", got "2.5" (a duration needs a unit, e.g. 2.5s)`},
		{"d: [1m]", 0, `line 1: expected a duration such as "5m" or "90s", got a list`},
	}
	for _, tc := range tests {
		var v struct {
			D Duration `yaml:"d"`
		}
		err := yaml.Unmarshal([]byte(tc.yaml), &v)
		got := ""
		if err != nil {
			got = err.Error()
		}
		if got != tc.wantErr || (err == nil && v.D.D() != tc.want) {
			t.Errorf("Unmarshal(%q) = %v, %q; want %v, %q", tc.yaml, v.D.D(), got, tc.want, tc.wantErr)
		}
	}
	out, err := yaml.Marshal(struct {
		D Duration `yaml:"d"`
	}{Duration(90 * time.Second)})
	if err != nil || string(out) != "d: 1m30s\n" {
		t.Errorf("Marshal = %q, %v; want %q", out, err, "d: 1m30s\n")
	}
}
