package filter

import (
	"encoding/binary"
	"fmt"

	"golang.org/x/net/bpf"
)

// Program runs a classic BPF program in user space, as libpcap's bpf_filter runs one on
// a saved packet: loads read the bytes captured (a load past them rejects the packet) and
// len is the packet's length on the wire. Replay uses it to apply capture.filter, which
// the kernel applies live, to each recorded frame from its network header on. It takes any
// program the kernel takes (this compiler's or libpcap's), not the kernel's extensions
// (SKF_AD_*), which no pcap-filter expression compiles to on DLT_RAW.
type Program struct {
	// Expr is the expression the program was compiled from, for reports ("": not known).
	Expr string
	ins  []step
}

// step is an instruction decoded for Match: a dense operation number (a switch over dense
// cases compiles to a jump table; over the opcodes' bit fields it was a chain of tests).
type step struct {
	op     uint8
	jt, jf uint8
	k      uint32
}

// Operations of a step.
const (
	stLdW uint8 = iota // A = P[k:4]
	stLdH
	stLdB
	stLdIndW // A = P[X+k:4]
	stLdIndH
	stLdIndB
	stLdImm // A = k
	stLdxImm
	stLdLen // A = wire length
	stLdxLen
	stLdMem
	stLdxMem
	stLdxMsh // X = 4*(P[k]&0xf)
	stSt
	stStx
	stAdd // A op= k, and the X forms after
	stSub
	stMul
	stDiv
	stMod
	stOr
	stAnd
	stXor
	stLsh
	stRsh
	stAddX
	stSubX
	stMulX
	stDivX
	stModX
	stOrX
	stAndX
	stXorX
	stLshX
	stRshX
	stNeg
	stJa
	stJeq // pc += A op k ? jt : jf, and the X forms after
	stJgt
	stJge
	stJset
	stJeqX
	stJgtX
	stJgeX
	stJsetX
	stRetK
	stRetA
	stTax
	stTxa
)

// stepOps maps a classic opcode to its operation (+1; 0: unknown).
var stepOps = func() (m [256]uint8) {
	set := func(code uint16, op uint8) { m[code] = op + 1 }
	set(clsLD|szW|modeABS, stLdW)
	set(clsLD|szH|modeABS, stLdH)
	set(clsLD|szB|modeABS, stLdB)
	set(clsLD|szW|modeIND, stLdIndW)
	set(clsLD|szH|modeIND, stLdIndH)
	set(clsLD|szB|modeIND, stLdIndB)
	set(clsLD|modeIMM, stLdImm)
	set(clsLDX|modeIMM, stLdxImm)
	set(clsLD|modeLEN, stLdLen)
	set(clsLDX|modeLEN, stLdxLen)
	set(clsLD|modeMEM, stLdMem)
	set(clsLDX|modeMEM, stLdxMem)
	set(clsLDX|szB|modeMSH, stLdxMsh)
	set(clsST, stSt)
	set(clsSTX, stStx)
	for i, a := range []uint16{aluADD, aluSUB, aluMUL, aluDIV, aluMOD, aluOR, aluAND, aluXOR, aluLSH, aluRSH} {
		set(clsALU|a|srcK, stAdd+uint8(i))
		set(clsALU|a|srcX, stAddX+uint8(i))
	}
	set(clsALU|aluNEG, stNeg)
	set(clsJMP|jmpJA, stJa)
	for i, j := range []uint16{jmpJEQ, jmpJGT, jmpJGE, jmpJSET} {
		set(clsJMP|j|srcK, stJeq+uint8(i))
		set(clsJMP|j|srcX, stJeqX+uint8(i))
	}
	set(clsRET|retK, stRetK)
	set(clsRET|retA, stRetA)
	set(clsMISC|miscTAX, stTax)
	set(clsMISC|miscTXA, stTxa)
	return m
}()

// Classic BPF opcode fields (linux/filter.h, pcap/bpf.h).
const (
	clsLD, clsLDX, clsST, clsSTX, clsALU, clsJMP, clsRET, clsMISC = 0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07

	szW, szH, szB = 0x00, 0x08, 0x10

	modeIMM, modeABS, modeIND, modeMEM, modeLEN, modeMSH = 0x00, 0x20, 0x40, 0x60, 0x80, 0xa0

	aluADD, aluSUB, aluMUL, aluDIV, aluOR, aluAND, aluLSH, aluRSH, aluNEG, aluMOD, aluXOR = 0x00, 0x10, 0x20, 0x30, 0x40, 0x50, 0x60, 0x70, 0x80, 0x90, 0xa0

	jmpJA, jmpJEQ, jmpJGT, jmpJGE, jmpJSET = 0x00, 0x10, 0x20, 0x30, 0x40

	srcK, srcX = 0x00, 0x08

	retK, retA = 0x00, 0x10

	miscTAX, miscTXA = 0x00, 0x80
)

// NewProgram checks ins as the kernel's checker does (sk_chk_filter: every opcode known,
// jumps forward and inside, scratch slots below 16, no division by a zero constant, a
// return at the end) and returns it ready to run.
func NewProgram(ins []bpf.RawInstruction) (*Program, error) {
	if len(ins) == 0 || len(ins) > MaxInstructions {
		return nil, fmt.Errorf("a program of %d instructions (1 to %d)", len(ins), MaxInstructions)
	}
	steps := make([]step, len(ins))
	last := len(ins) - 1
	for pc, in := range ins {
		bad := func(why string) error { return fmt.Errorf("instruction %d (op %#x): %s", pc, in.Op, why) }
		if in.Op > 0xff || stepOps[in.Op] == 0 {
			return nil, bad("unknown operation")
		}
		op := stepOps[in.Op] - 1
		switch op {
		case stLdMem, stLdxMem, stSt, stStx:
			if in.K >= scratchSlots {
				return nil, bad("scratch slot out of range")
			}
		case stDiv, stMod:
			if in.K == 0 {
				return nil, bad("division by zero")
			}
		case stJa:
			if uint64(pc)+1+uint64(in.K) > uint64(last) {
				return nil, bad("jump out of the program")
			}
		case stJeq, stJgt, stJge, stJset, stJeqX, stJgtX, stJgeX, stJsetX:
			if pc+1+int(in.Jt) > last || pc+1+int(in.Jf) > last {
				return nil, bad("jump out of the program")
			}
		}
		steps[pc] = step{op: op, jt: in.Jt, jf: in.Jf, k: in.K}
	}
	if op := steps[last].op; op != stRetK && op != stRetA {
		return nil, fmt.Errorf("the program does not end with a return")
	}
	return &Program{ins: steps}, nil
}

// Match runs the program on pkt (the bytes captured from the network header on) of a packet
// wire bytes long from there, and reports whether it accepts it (returns non-zero).
func (p *Program) Match(pkt []byte, wire uint32) bool {
	var a, x uint32
	var mem [scratchSlots]uint32
	n := uint64(len(pkt))
	ins := p.ins
	for pc := 0; pc < len(ins); pc++ {
		in := ins[pc]
		k := in.k
		switch in.op {
		case stLdW, stLdIndW:
			off := uint64(k)
			if in.op == stLdIndW {
				off += uint64(x)
			}
			if off+4 > n {
				return false
			}
			a = binary.BigEndian.Uint32(pkt[off:])
		case stLdH, stLdIndH:
			off := uint64(k)
			if in.op == stLdIndH {
				off += uint64(x)
			}
			if off+2 > n {
				return false
			}
			a = uint32(binary.BigEndian.Uint16(pkt[off:]))
		case stLdB, stLdIndB:
			off := uint64(k)
			if in.op == stLdIndB {
				off += uint64(x)
			}
			if off >= n {
				return false
			}
			a = uint32(pkt[off])
		case stLdImm:
			a = k
		case stLdxImm:
			x = k
		case stLdLen:
			a = wire
		case stLdxLen:
			x = wire
		case stLdMem:
			a = mem[k&(scratchSlots-1)]
		case stLdxMem:
			x = mem[k&(scratchSlots-1)]
		case stLdxMsh:
			if uint64(k) >= n {
				return false
			}
			x = uint32(pkt[k]&0x0f) * 4
		case stSt:
			mem[k&(scratchSlots-1)] = a
		case stStx:
			mem[k&(scratchSlots-1)] = x
		case stAdd:
			a += k
		case stSub:
			a -= k
		case stMul:
			a *= k
		case stDiv:
			a /= k // never 0 (NewProgram)
		case stMod:
			a %= k
		case stOr:
			a |= k
		case stAnd:
			a &= k
		case stXor:
			a ^= k
		case stLsh:
			a <<= k // 0 from a shift by 32 or more, as libpcap's bpf_filter
		case stRsh:
			a >>= k
		case stAddX:
			a += x
		case stSubX:
			a -= x
		case stMulX:
			a *= x
		case stDivX:
			if x == 0 {
				return false
			}
			a /= x
		case stModX:
			if x == 0 {
				return false
			}
			a %= x
		case stOrX:
			a |= x
		case stAndX:
			a &= x
		case stXorX:
			a ^= x
		case stLshX:
			a <<= x
		case stRshX:
			a >>= x
		case stNeg:
			a = -a
		case stJa:
			pc += int(k)
		case stJeq:
			pc += jump(a == k, in)
		case stJgt:
			pc += jump(a > k, in)
		case stJge:
			pc += jump(a >= k, in)
		case stJset:
			pc += jump(a&k != 0, in)
		case stJeqX:
			pc += jump(a == x, in)
		case stJgtX:
			pc += jump(a > x, in)
		case stJgeX:
			pc += jump(a >= x, in)
		case stJsetX:
			pc += jump(a&x != 0, in)
		case stRetK:
			return k != 0
		case stRetA:
			return a != 0
		case stTax:
			x = a
		case stTxa:
			a = x
		}
	}
	return false // not reached: NewProgram checked the last instruction returns
}

// jump is a conditional jump's offset.
func jump(taken bool, in step) int {
	if taken {
		return int(in.jt)
	}
	return int(in.jf)
}
