package capture

import (
	"fmt"

	"github.com/telescope-dev/telescope/packet"
	"golang.org/x/net/bpf"
)

// MaxWorkers is the largest fanout group the kernel accepts through the plain-int form of
// PACKET_FANOUT (PACKET_FANOUT_MAX).
const MaxWorkers = 256

// MinSnapLen is the smallest snap length for which the fanout program and the decoder see the
// same bytes: the program looks at most 168 bytes into a packet (an LLC/SNAP header, nine
// VLAN tags or LLC/SNAP headers of up to 8 bytes, then an IPv6 header, an ICMPv6 header and
// the quoted IPv6 header: 88 bytes). Shorter snaps could let the kernel pick a worker from
// bytes the decoder never sees.
const MinSnapLen = (1+linkSteps)*8 + 40 + 8 + 40

// Scratch memory slots of the program.
const (
	memEt    = iota // EtherType while walking link headers
	memBase         // offset of the current header
	memEnd          // where the packet ends: its length, or less after an 802.3 length field
	memVLANs        // tags consumed
	memAvail        // bytes from the IP header to memEnd
	memHL           // IPv4 header length
	memTotal        // IPv4 total length
	memKey          // affinity key
	memTmp          // scratch
	memW1           // IPv6 address words
	memW2
	memW3
)

// linkSteps is how many link headers (VLAN tags, LLC/SNAP) the decoder's EtherType loop can
// consume: it runs packet.MaxVLANTags+2 passes and only the last may find the IP header without
// consuming anything.
const linkSteps = packet.MaxVLANTags + 1

// FanoutProgram returns the classic BPF fanout program for n workers: it returns
// WorkerIndex(h.AffinityKey(), n) for the Header h that DecodeNetwork would produce from the
// packet, so every worker owns a disjoint set of sources (and of DoS victims for ICMP errors).
//
// The kernel runs it in packet_rcv_fanout, where skb->data is the network header of an
// incoming packet (__netif_receive_skb_core resets the network header to data and, for a
// tagged frame, pops the outer tag first), so plain positive offsets address the same bytes
// as Frame.Data. Positive offsets are used instead of SKF_NET_OFF because negative-offset
// loads only reach the linear part of the skb (bpf_internal_load_pointer_neg_helper), while
// positive ones go through skb_header_pointer and also read paged data: NICs often leave the
// quoted header of an ICMP error in a page fragment. Instruction 0 loads the EtherType
// (SKF_AD_PROTOCOL: skb->protocol, which a SOCK_RAW sockaddr_ll reports too) and "ld #len"
// is skb->len, the bytes from the network header on; nothing else is ancillary.
//
// Every check of the decoder that decides the key is repeated: the walk over VLAN tags and
// LLC/SNAP headers (with the limit on tags and passes, and the 802.3 length that cuts the
// packet short), IPv4/IPv6 version and lengths, the IPv4 total length, fragment offset, ICMP
// type, the version and IHL of the quoted header and whether its bytes lie inside both the
// capture and the IP length. A load past the end of the packet ends the program with 0,
// which is WorkerIndex(0, n), the decoder's key for a frame it cannot decode.
// TestFanoutProgramMatchesDecoder holds the two together.
func FanoutProgram(n int) ([]bpf.Instruction, error) {
	if n < 1 || n > MaxWorkers {
		return nil, fmt.Errorf("fanout program: %d workers, want 1..%d", n, MaxWorkers)
	}
	var p progBuilder
	v4, v6, hash := p.newLabel(), p.newLabel(), p.newLabel()

	p.emit(bpf.LoadExtension{Num: bpf.ExtProto})
	p.emit(bpf.StoreScratch{Src: bpf.RegA, N: memEt})
	p.emit(bpf.LoadConstant{Dst: bpf.RegX, Val: 0})
	p.emit(bpf.StoreScratch{Src: bpf.RegX, N: memVLANs})
	p.emit(bpf.LoadExtension{Num: bpf.ExtLen})
	p.emit(bpf.StoreScratch{Src: bpf.RegA, N: memEnd})
	p.emit(bpf.LoadScratch{Dst: bpf.RegA, N: memEt})
	// A Linux protocol code below 0x0600 is not IP, except 802.2: an LLC header follows,
	// whose SNAP EtherType starts the loop (decodeLLC).
	loop, llc, r0 := p.newLabel(), p.newLabel(), p.newLabel()
	p.jumpIf(bpf.JumpGreaterOrEqual, packet.EtherMinType, loop, next)
	p.jumpIf(bpf.JumpEqual, packet.SLLProto8022, llc, r0)
	p.mark(llc)
	p.snapHeader(r0)
	p.jump(loop)
	p.mark(r0)
	p.emit(bpf.RetConstant{Val: 0})
	p.mark(loop)
	for i := range linkSteps {
		p.linkStep(i)
	}
	// The decoder's last pass: only an IP EtherType still decodes.
	p.jumpIf(bpf.JumpEqual, packet.EtherIPv4, v4, next)
	p.jumpIf(bpf.JumpEqual, packet.EtherIPv6, v6, next)
	p.emit(bpf.RetConstant{Val: 0})

	p.mark(v4)
	p.ipv4(hash)
	p.mark(v6)
	r0v6 := p.ipv6()
	// The hash must not follow a return: the kernel's scratch-memory check treats the
	// instruction after a return as reachable from it.
	p.mark(hash)
	p.emit(bpf.LoadScratch{Dst: bpf.RegA, N: memKey})
	p.emit(bpf.ALUOpConstant{Op: bpf.ALUOpMul, Val: 0x9E3779B1})
	p.emit(bpf.ALUOpConstant{Op: bpf.ALUOpShiftRight, Val: 16})
	p.emit(bpf.ALUOpConstant{Op: bpf.ALUOpMod, Val: uint32(n)})
	p.emit(bpf.RetA{})
	p.mark(r0v6)
	p.emit(bpf.RetConstant{Val: 0})
	return p.resolve()
}

// linkStep is one pass of the decoder's EtherType loop (decodeEther) with A = EtherType and
// X = offset of the header it announces: an IP EtherType passes through untouched, a VLAN tag
// or an LLC/SNAP header is consumed, anything else is not IP.
func (p *progBuilder) linkStep(i int) {
	done, vlan, r0 := p.newLabel(), p.newLabel(), p.newLabel()
	p.jumpIf(bpf.JumpEqual, packet.EtherIPv4, done, next)
	p.jumpIf(bpf.JumpEqual, packet.EtherIPv6, done, next)
	p.jumpIf(bpf.JumpEqual, packet.EtherDot1Q, vlan, next)
	p.jumpIf(bpf.JumpEqual, packet.EtherDot1AD, vlan, next)
	p.jumpIf(bpf.JumpEqual, packet.EtherQinQOld, vlan, next)
	p.jumpIf(bpf.JumpGreaterOrEqual, packet.EtherMinType, r0, next)
	// An 802.3 length: the LLC data ends there (the rest is padding), then LLC/SNAP.
	shorter := p.newLabel()
	p.emit(bpf.StoreScratch{Src: bpf.RegX, N: memBase})
	p.emit(bpf.ALUOpX{Op: bpf.ALUOpAdd})
	p.emit(bpf.StoreScratch{Src: bpf.RegA, N: memTmp})
	p.emit(bpf.LoadScratch{Dst: bpf.RegX, N: memTmp})
	p.emit(bpf.LoadScratch{Dst: bpf.RegA, N: memEnd})
	p.jumpIfX(bpf.JumpGreaterThan, next, shorter)
	p.emit(bpf.StoreScratch{Src: bpf.RegX, N: memEnd})
	p.mark(shorter)
	p.emit(bpf.LoadScratch{Dst: bpf.RegX, N: memBase})
	p.snapHeader(r0)
	p.jump(done)

	p.mark(vlan)
	if i == packet.MaxVLANTags {
		// Only a pass after eight tags in a row can meet a ninth; the decoder gives up there.
		p.emit(bpf.LoadScratch{Dst: bpf.RegA, N: memVLANs})
		p.jumpIf(bpf.JumpEqual, packet.MaxVLANTags, r0, next)
	}
	p.needBytes(4, r0)
	p.emit(bpf.LoadScratch{Dst: bpf.RegA, N: memVLANs})
	p.emit(bpf.ALUOpConstant{Op: bpf.ALUOpAdd, Val: 1})
	p.emit(bpf.StoreScratch{Src: bpf.RegA, N: memVLANs})
	p.advance(2, 4)
	p.jump(done)
	p.mark(r0)
	p.emit(bpf.RetConstant{Val: 0})
	p.mark(done)
}

// snapHeader consumes an LLC/SNAP header (AA AA 03, OUI, EtherType) at X (snapType).
func (p *progBuilder) snapHeader(r0 label) {
	p.needBytes(8, r0)
	p.emit(bpf.LoadIndirect{Off: 0, Size: 2})
	p.jumpIf(bpf.JumpNotEqual, 0xAAAA, r0, next)
	p.emit(bpf.LoadIndirect{Off: 2, Size: 1})
	p.jumpIf(bpf.JumpNotEqual, 0x03, r0, next)
	p.advance(6, 8)
}

// needBytes goes to r0 unless n bytes remain between X and memEnd.
func (p *progBuilder) needBytes(n uint32, r0 label) {
	p.emit(bpf.LoadScratch{Dst: bpf.RegA, N: memEnd})
	p.emit(bpf.ALUOpX{Op: bpf.ALUOpSub})
	p.jumpIf(bpf.JumpLessThan, n, r0, next)
}

// advance loads the next EtherType at X+etOff into A and moves X past a header of size bytes.
func (p *progBuilder) advance(etOff, size uint32) {
	p.emit(bpf.LoadIndirect{Off: etOff, Size: 2})
	p.emit(bpf.StoreScratch{Src: bpf.RegA, N: memEt})
	p.emit(bpf.TXA{})
	p.emit(bpf.ALUOpConstant{Op: bpf.ALUOpAdd, Val: size})
	p.emit(bpf.TAX{})
	p.emit(bpf.LoadScratch{Dst: bpf.RegA, N: memEt})
}

// ipv4 computes the key of an IPv4 packet at X (see decodeIPv4, decodeICMP, quotedIPv4).
func (p *progBuilder) ipv4(hash label) {
	r0, totalOK, lenOK, quoted, done := p.newLabel(), p.newLabel(), p.newLabel(), p.newLabel(), p.newLabel()
	p.availFromX(20, r0)
	p.emit(bpf.LoadIndirect{Off: 0, Size: 1})
	p.emit(bpf.StoreScratch{Src: bpf.RegA, N: memTmp})
	p.emit(bpf.ALUOpConstant{Op: bpf.ALUOpAnd, Val: 0xF0})
	p.jumpIf(bpf.JumpNotEqual, 0x40, r0, next)
	p.emit(bpf.LoadScratch{Dst: bpf.RegA, N: memTmp})
	p.emit(bpf.ALUOpConstant{Op: bpf.ALUOpAnd, Val: 0x0F})
	p.emit(bpf.ALUOpConstant{Op: bpf.ALUOpShiftLeft, Val: 2})
	p.emit(bpf.StoreScratch{Src: bpf.RegA, N: memHL})
	p.jumpIf(bpf.JumpLessThan, 20, r0, next)
	p.emit(bpf.TAX{})
	p.emit(bpf.LoadScratch{Dst: bpf.RegA, N: memAvail})
	p.jumpIfX(bpf.JumpLessThan, r0, next)
	// Total length: 0 (segmentation offload) means "what was captured", else at least hl.
	p.emit(bpf.LoadScratch{Dst: bpf.RegX, N: memBase})
	p.emit(bpf.LoadIndirect{Off: 2, Size: 2})
	p.emit(bpf.StoreScratch{Src: bpf.RegA, N: memTotal})
	p.jumpIf(bpf.JumpEqual, 0, totalOK, next)
	p.emit(bpf.LoadScratch{Dst: bpf.RegX, N: memHL})
	p.jumpIfX(bpf.JumpLessThan, r0, next)
	p.emit(bpf.LoadScratch{Dst: bpf.RegX, N: memBase})
	p.mark(totalOK)
	// A decodable IPv4 header: the key is the source unless this is an ICMP error that
	// quotes a complete IPv4 header.
	p.emit(bpf.LoadIndirect{Off: 12, Size: 4})
	p.emit(bpf.StoreScratch{Src: bpf.RegA, N: memKey})
	p.emit(bpf.LoadIndirect{Off: 9, Size: 1})
	p.jumpIf(bpf.JumpNotEqual, uint32(packet.ProtoICMP), done, next)
	p.emit(bpf.LoadIndirect{Off: 6, Size: 2})
	p.jumpIf(bpf.JumpBitsSet, 0x1FFF, done, next)
	// The ICMP header (8) and quoted header (20) must end inside the capture and the IP length.
	p.emit(bpf.LoadScratch{Dst: bpf.RegA, N: memHL})
	p.emit(bpf.ALUOpConstant{Op: bpf.ALUOpAdd, Val: 28})
	p.emit(bpf.TAX{})
	p.emit(bpf.LoadScratch{Dst: bpf.RegA, N: memAvail})
	p.jumpIfX(bpf.JumpLessThan, done, next)
	p.emit(bpf.LoadScratch{Dst: bpf.RegA, N: memTotal})
	p.jumpIf(bpf.JumpEqual, 0, lenOK, next)
	p.jumpIfX(bpf.JumpLessThan, done, next)
	p.mark(lenOK)
	p.emit(bpf.LoadScratch{Dst: bpf.RegX, N: memBase})
	p.emit(bpf.LoadScratch{Dst: bpf.RegA, N: memHL})
	p.emit(bpf.ALUOpX{Op: bpf.ALUOpAdd})
	p.emit(bpf.TAX{}) // X = ICMP header
	p.emit(bpf.LoadIndirect{Off: 0, Size: 1})
	for _, t := range []uint32{3, 4, 5, 11} {
		p.jumpIf(bpf.JumpEqual, t, quoted, next)
	}
	p.jumpIf(bpf.JumpNotEqual, 12, done, next)
	p.mark(quoted)
	p.emit(bpf.LoadIndirect{Off: 8, Size: 1})
	p.emit(bpf.StoreScratch{Src: bpf.RegA, N: memTmp})
	p.emit(bpf.ALUOpConstant{Op: bpf.ALUOpAnd, Val: 0xF0})
	p.jumpIf(bpf.JumpNotEqual, 0x40, done, next)
	p.emit(bpf.LoadScratch{Dst: bpf.RegA, N: memTmp})
	p.emit(bpf.ALUOpConstant{Op: bpf.ALUOpAnd, Val: 0x0F})
	p.jumpIf(bpf.JumpLessThan, 5, done, next)
	p.emit(bpf.LoadIndirect{Off: 8 + 16, Size: 4}) // quoted destination
	p.emit(bpf.StoreScratch{Src: bpf.RegA, N: memKey})
	p.mark(done)
	p.jump(hash)
	p.mark(r0)
	p.emit(bpf.RetConstant{Val: 0})
}

// ipv6 computes the key of an IPv6 packet at X (see decodeIPv6, decodeICMP, quotedIPv6) and
// falls through to the hash; the caller places the returned label on a "ret #0".
// An ICMPv6 error counts only right after the fixed header (AffinityKey wants IPHdrLen 40).
func (p *progBuilder) ipv6() (r0 label) {
	r0, plenOK, done := p.newLabel(), p.newLabel(), p.newLabel()
	p.availFromX(40, r0)
	p.emit(bpf.LoadIndirect{Off: 0, Size: 1})
	p.emit(bpf.ALUOpConstant{Op: bpf.ALUOpAnd, Val: 0xF0})
	p.jumpIf(bpf.JumpNotEqual, 0x60, r0, next)
	p.foldIPv6(8) // source
	p.emit(bpf.LoadIndirect{Off: 6, Size: 1})
	p.jumpIf(bpf.JumpNotEqual, uint32(packet.ProtoICMPv6), done, next)
	// 40 + 8 + 40 bytes inside the capture and, unless the payload length is 0, inside it.
	p.emit(bpf.LoadScratch{Dst: bpf.RegA, N: memAvail})
	p.jumpIf(bpf.JumpLessThan, 88, done, next)
	p.emit(bpf.LoadIndirect{Off: 4, Size: 2})
	p.jumpIf(bpf.JumpEqual, 0, plenOK, next)
	p.jumpIf(bpf.JumpLessThan, 48, done, next)
	p.mark(plenOK)
	p.emit(bpf.LoadIndirect{Off: 40, Size: 1})
	p.jumpIf(bpf.JumpEqual, 0, done, next)
	p.jumpIf(bpf.JumpGreaterThan, 4, done, next)
	p.emit(bpf.LoadIndirect{Off: 48, Size: 1})
	p.emit(bpf.ALUOpConstant{Op: bpf.ALUOpAnd, Val: 0xF0})
	p.jumpIf(bpf.JumpNotEqual, 0x60, done, next)
	p.foldIPv6(48 + 24) // quoted destination
	p.mark(done)
	return r0
}

// availFromX saves X as the IP header offset, computes the bytes from there to the end of
// the packet and goes to r0 when they are fewer than least (a truncated header).
func (p *progBuilder) availFromX(least uint32, r0 label) {
	p.emit(bpf.StoreScratch{Src: bpf.RegX, N: memBase})
	p.emit(bpf.LoadScratch{Dst: bpf.RegA, N: memEnd})
	p.emit(bpf.ALUOpX{Op: bpf.ALUOpSub})
	p.emit(bpf.StoreScratch{Src: bpf.RegA, N: memAvail})
	p.jumpIf(bpf.JumpLessThan, least, r0, next)
}

// foldIPv6 stores the XOR of the four words at X+off as the key (FoldAddr) and leaves X at
// the IP header.
func (p *progBuilder) foldIPv6(off uint32) {
	words := []int{memW1, memW2, memW3}
	for i, m := range words {
		p.emit(bpf.LoadIndirect{Off: off + 4*uint32(i), Size: 4})
		p.emit(bpf.StoreScratch{Src: bpf.RegA, N: m})
	}
	p.emit(bpf.LoadIndirect{Off: off + 12, Size: 4})
	for _, m := range words {
		p.emit(bpf.LoadScratch{Dst: bpf.RegX, N: m})
		p.emit(bpf.ALUOpX{Op: bpf.ALUOpXor})
	}
	p.emit(bpf.StoreScratch{Src: bpf.RegA, N: memKey})
	p.emit(bpf.LoadScratch{Dst: bpf.RegX, N: memBase})
}

// label names a program position; next means "the following instruction".
type label int

const next label = -1

// progBuilder assembles a classic BPF program with symbolic jump targets. Conditional jumps
// reach at most 255 instructions ahead; resolve reports a program that breaks the limit.
type progBuilder struct {
	ins   []bpf.Instruction
	at    []int // position of each label, -1 until marked
	jumps []pendingJump
}

type pendingJump struct {
	pc     int
	cond   bpf.JumpTest
	val    uint32
	useX   bool
	uncond bool
	t, f   label
}

func (p *progBuilder) newLabel() label {
	p.at = append(p.at, -1)
	return label(len(p.at) - 1)
}

func (p *progBuilder) mark(l label) { p.at[l] = len(p.ins) }

func (p *progBuilder) emit(in bpf.Instruction) { p.ins = append(p.ins, in) }

func (p *progBuilder) jumpIf(c bpf.JumpTest, val uint32, t, f label) {
	p.jumps = append(p.jumps, pendingJump{pc: len(p.ins), cond: c, val: val, t: t, f: f})
	p.ins = append(p.ins, nil)
}

func (p *progBuilder) jumpIfX(c bpf.JumpTest, t, f label) {
	p.jumps = append(p.jumps, pendingJump{pc: len(p.ins), cond: c, useX: true, t: t, f: f})
	p.ins = append(p.ins, nil)
}

func (p *progBuilder) jump(t label) {
	p.jumps = append(p.jumps, pendingJump{pc: len(p.ins), uncond: true, t: t})
	p.ins = append(p.ins, nil)
}

// skip returns how far a jump at pc must skip to reach l.
func (p *progBuilder) skip(pc int, l label) (int, error) {
	if l == next {
		return 0, nil
	}
	to := p.at[l]
	if to < 0 {
		return 0, fmt.Errorf("fanout program: label %d never placed", l)
	}
	if to <= pc {
		return 0, fmt.Errorf("fanout program: backward jump at %d", pc)
	}
	return to - pc - 1, nil
}

func (p *progBuilder) resolve() ([]bpf.Instruction, error) {
	for _, j := range p.jumps {
		t, err := p.skip(j.pc, j.t)
		if err != nil {
			return nil, err
		}
		if j.uncond {
			p.ins[j.pc] = bpf.Jump{Skip: uint32(t)}
			continue
		}
		f, err := p.skip(j.pc, j.f)
		if err != nil {
			return nil, err
		}
		if t > 255 || f > 255 {
			return nil, fmt.Errorf("fanout program: conditional jump at %d too far (%d, %d)", j.pc, t, f)
		}
		if j.useX {
			p.ins[j.pc] = bpf.JumpIfX{Cond: j.cond, SkipTrue: uint8(t), SkipFalse: uint8(f)}
		} else {
			p.ins[j.pc] = bpf.JumpIf{Cond: j.cond, Val: j.val, SkipTrue: uint8(t), SkipFalse: uint8(f)}
		}
	}
	if _, err := bpf.Assemble(p.ins); err != nil {
		return nil, fmt.Errorf("fanout program: %w", err)
	}
	return p.ins, nil
}
