package capture

import (
	"net"

	"golang.org/x/net/bpf"
)

// loopbackIndexes returns the interface indexes of the loopback interfaces.
func loopbackIndexes() ([]int, error) {
	ifs, err := net.Interfaces()
	if err != nil {
		return nil, err
	}
	var idx []int
	for _, ifc := range ifs {
		if ifc.Flags&net.FlagLoopback != 0 {
			idx = append(idx, ifc.Index)
		}
	}
	return idx, nil
}

// dropIfindexes prefixes a socket filter with a test that drops every packet received on
// (or sent through) one of the given interfaces, using the SKF_AD_IFINDEX ancillary load:
// with interface "any", loopback traffic (the daemon's own scrapes among it) is never
// captured. The user program follows unchanged (its jumps are relative) and starts with
// A = 0, as a program does.
func dropIfindexes(prog []bpf.RawInstruction, idx []int) ([]bpf.RawInstruction, error) {
	if len(idx) == 0 {
		return prog, nil
	}
	var pre []bpf.Instruction
	pre = append(pre, bpf.LoadExtension{Num: bpf.ExtInterfaceIndex})
	for _, i := range idx {
		// Equal: fall into the "ret #0" below; else skip it and test the next index.
		pre = append(pre, bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: uint32(i), SkipTrue: 1}, bpf.RetConstant{Val: 0})
	}
	pre = append(pre, bpf.LoadConstant{Dst: bpf.RegA, Val: 0})
	raw, err := bpf.Assemble(pre)
	if err != nil {
		return nil, err
	}
	return append(raw, prog...), nil
}
