// Command floodgen writes the hostile pcaps scripts/abuse.sh replays.
//
//	go run ./internal/cmd/floodgen -n 1000000 -o mirai.pcap
package main

import (
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/telescope-dev/telescope/internal/floodgen"
)

func main() {
	n := flag.Int("n", 1000000, "packets")
	out := flag.String("o", "mirai.pcap", "output pcap")
	span := flag.Duration("span", time.Hour, "packet time the packets are spread over")
	flag.Parse()
	f, err := os.Create(*out)
	if err == nil {
		err = floodgen.WriteMirai(f, floodgen.Start, *n, *span, 13)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "floodgen:", err)
		os.Exit(1)
	}
}
