package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"

	"github.com/telescope-dev/telescope/configs"
	"github.com/telescope-dev/telescope/enrich"
)

// cmdCheckConfig validates a config file and prints the effective config (defaults filled
// in) on stdout; errors go to stderr, one per line, each naming its key.
func cmdCheckConfig(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("check-config", flag.ContinueOnError)
	fs.SetOutput(stderr)
	// --config FILE as run and replay take it: the same file, named the same way.
	config := fs.String("config", "", "the config file (the same as giving FILE)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: telescope check-config FILE (or --config FILE)\n\nValidates FILE and prints the effective configuration; exit status 0 when valid, 1 when not.")
	}
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	if *config != "" {
		pos = append(pos, *config)
	}
	if len(pos) != 1 {
		return fmt.Errorf("%w: expected exactly one config file, got %d", errUsage, len(pos))
	}
	cfg, err := configs.Load(pos[0])
	if err == nil {
		err = checkBuild(cfg, pos[0])
	}
	if err != nil {
		fmt.Fprintln(stderr, err)
		return errReported
	}
	// The enrichment files are read as at start: a bad one fails the check too.
	e, err := enrich.Open(enrich.Paths{KnownScanners: cfg.Enrich.KnownScanners, GeoIPCountry: cfg.Enrich.GeoIPCountry, GeoIPASN: cfg.Enrich.GeoIPASN})
	if err != nil {
		fmt.Fprintln(stderr, err)
		return errReported
	}
	e.Close()
	out, err := cfg.Marshal()
	if err != nil {
		return err
	}
	_, err = stdout.Write(out)
	return err
}

// checkBuild checks what the config file alone cannot tell: that this binary can capture
// with capture.method and that web.listen_address resolves. run makes the same checks, so
// an ExecStartPre=check-config passes exactly when run would start.
func checkBuild(cfg *configs.Config, name string) error {
	var errs []error
	if cfg.Capture.Method == "pcap" && openPcapSource == nil {
		errs = append(errs, fmt.Errorf("%s: capture.method: pcap needs a binary built with cgo and libpcap (go build -tags pcap ./cmd/telescope); this one is static, use afpacket", name))
	}
	if _, err := net.ResolveTCPAddr("tcp", cfg.Web.ListenAddress); err != nil {
		errs = append(errs, fmt.Errorf("%s: web.listen_address: %q cannot be listened on: %v", name, cfg.Web.ListenAddress, err))
	}
	return errors.Join(errs...)
}
