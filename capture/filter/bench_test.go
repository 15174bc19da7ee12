package filter

import (
	"testing"

	"golang.org/x/net/bpf"
)

var benchExprs = []struct{ name, expr string }{
	{"port", "port 80"},
	{"telnet", "tcp and (port 23 or 2323) and tcp[tcpflags] & (tcp-syn|tcp-ack) == tcp-syn"},
	{"nets", "not src net 10.0.0.0/8 and not src net 192.168.0.0/16 and not net 2001:db8::/32"},
}

// BenchmarkCompile reports compile time and the program length (insns).
func BenchmarkCompile(b *testing.B) {
	for _, c := range benchExprs {
		b.Run(c.name, func(b *testing.B) {
			var n int
			for i := 0; i < b.N; i++ {
				prog, err := CompileInstructions(c.expr, 256)
				if err != nil {
					b.Fatal(err)
				}
				n = len(prog)
			}
			b.ReportMetric(float64(n), "insns")
		})
	}
}

// BenchmarkRun runs the programs in x/net/bpf's interpreter (slower than the kernel's
// JIT; useful to compare programs, not as an absolute cost).
func BenchmarkRun(b *testing.B) {
	pkt := benchPacket
	for _, c := range benchExprs {
		b.Run(c.name, func(b *testing.B) {
			prog, err := CompileInstructions(c.expr, 256)
			if err != nil {
				b.Fatal(err)
			}
			vm, err := bpf.NewVM(prog)
			if err != nil {
				b.Fatal(err)
			}
			for i := 0; i < b.N; i++ {
				if _, err := vm.Run(pkt); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// benchPacket is an IPv4 TCP SYN to port 23 from a public address.
var benchPacket = []byte{
	0x45, 0, 0, 40, 0, 1, 0, 0, 64, 6, 0, 0, 1, 2, 3, 4, 10, 0, 0, 1, // IPv4
	0x04, 0xd2, 0, 23, 0, 0, 0, 0, 0, 0, 0, 0, 0x50, 0x02, 0xff, 0xff, 0, 0, 0, 0, // TCP SYN
}
