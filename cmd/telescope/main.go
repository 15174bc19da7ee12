// Command telescope watches a network telescope: it captures the unsolicited traffic that
// reaches dark prefixes (live, or from pcap files), counts it exactly, detects who is
// scanning and how, and exposes it all as Prometheus metrics and JSON logs.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"strings"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = ""

func buildVersion() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		if bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			return bi.Main.Version
		}
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && len(s.Value) >= 12 {
				return "dev-" + s.Value[:12]
			}
		}
	}
	return "dev"
}

const usage = `usage: telescope <command> [flags] [args]

commands:
  run          [--config FILE]    live daemon (default: the embedded configs/telescope.yaml)
  replay       [--config FILE] [--report FILE] [--metrics-out FILE] [--serve] PCAP...
  check-config FILE               validate a config file and print the effective config
  report       [--html FILE] [--report FILE] REPORT.json...   render or merge saved reports
  version                         print the version

Run 'telescope <command> --help' for the flags of a command.
`

// errUsage marks command-line mistakes (exit status 2).
var errUsage = errors.New("usage")

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run executes one command and returns the process exit status.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	var err error
	switch args[0] {
	case "run":
		err = cmdRun(args[1:], stderr)
	case "replay":
		err = cmdReplay(args[1:], stdout, stderr)
	case "check-config":
		err = cmdCheckConfig(args[1:], stdout, stderr)
	case "report":
		err = cmdReport(args[1:], stdout, stderr)
	case "version", "--version", "-version":
		fmt.Fprintf(stdout, "telescope %s\n", buildVersion())
		return 0
	case "help", "--help", "-h", "-help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "telescope: unknown command %q\n%s", args[0], usage)
		return 2
	}
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errUsage):
		fmt.Fprintf(stderr, "telescope %s: %s\n", args[0], strings.TrimPrefix(err.Error(), "usage: "))
		return 2
	case errors.Is(err, errReported):
		return 1
	default:
		fmt.Fprintf(stderr, "telescope %s: %v\n", args[0], err)
		return 1
	}
}

// errReported means the failure was already reported (logged); just exit 1.
var errReported = errors.New("reported")

// parseInterleaved parses flags that may come before or after positional arguments
// (telescope replay a.pcap --report r.json b.pcap). A bad flag is a usage error
// (errUsage); -h gives flag.ErrHelp as it is.
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if err == flag.ErrHelp {
				return nil, err
			}
			return nil, fmt.Errorf("%w: %v", errUsage, err)
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		if rest[0] == "--" {
			return append(pos, rest[1:]...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}
