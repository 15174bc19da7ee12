package configs

import "time"

// detectLog checks the episode-log settings of every detector section (detect.*.log_min_packets).
func (v *validator) detectLog(d *Detect) {
	for _, s := range []struct {
		key string
		n   int
	}{
		{"scanner", d.Scanner.LogMinPackets},
		{"telnet", d.Telnet.LogMinPackets},
		{"udp_then_syn", d.UDPThenSYN.LogMinPackets},
		{"backscatter", d.Backscatter.LogMinPackets},
		{"fingerprint", d.Fingerprint.LogMinPackets},
		{"hotspot", d.Hotspot.LogMinPackets},
	} {
		v.atLeast1("detect."+s.key+".log_min_packets", s.n)
	}
}

// MinSummaryInterval is the shortest log.summary_interval other than 0 (off): one line per
// detector per interval must stay a summary, not a stream.
const MinSummaryInterval = Duration(time.Second)

// summaryInterval checks log.summary_interval: 0 (off) or at least MinSummaryInterval.
func (v *validator) summaryInterval(key string, d Duration) {
	switch {
	case d < 0:
		v.add(key, "must not be negative, got "+d.String())
	case d > 0 && d < MinSummaryInterval:
		v.add(key, "must be 0 (no summary lines) or at least "+MinSummaryInterval.String()+", got "+d.String())
	default:
		v.atMostAYear(key, d)
	}
}
