package capture

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"

	"github.com/telescope-dev/telescope/internal/prefetch"
)

// Ring is one AF_PACKET socket with an mmapped TPACKET_V3 receive ring.
type Ring struct {
	index int
	iface string
	group uint16
	snap  int
	grace time.Duration // how long blocks may still retire after the interface left

	mu        sync.Mutex // Poll and Close: the ring memory must outlive every walk over it
	closed    bool       // guarded by mu and statsMu (written with both held)
	closing   atomic.Bool
	fd        int      // non-blocking; file owns it and closes it
	file      *os.File // registers fd with the runtime's poller, which Poll waits in
	raw       syscall.RawConn
	check     func(uintptr) bool // r.ready, bound once so Poll does not allocate
	ring      []byte
	blockSize int
	blocks    int
	cur       int
	frame     Frame
	pfd       [1]unix.PollFd
	zero      unix.Timespec // ppoll timeout of the readiness check: do not wait
	gone      *CaptureError
	goneUntil time.Time
	closedErr *CaptureError

	statsMu sync.Mutex
	stats   RingStats
}

// ringGeometry is the tpacket_req3 of each ring.
type ringGeometry struct {
	blockSize, blocks, frameSize int
	tovMillis                    uint32
}

// OpenRings opens cfg.Workers sockets bound to the interface and joined, in order, to one
// fanout group of type PACKET_FANOUT_CBPF running FanoutProgram, so ring i receives exactly
// the packets for which the program returns i. Outgoing packets are not captured.
//
// Without a filter the sockets are SOCK_RAW and Frame.Data is cut from the network header
// (tp_net) on. With a filter they are SOCK_DGRAM, so the filter sees packets from the network
// header on, as the filter compiler expects. The two differ only for a frame that still holds
// an in-band VLAN tag after the kernel popped the outer one: since Linux 6.10 (and the stable
// backports of "af_packet: Handle outgoing VLAN packets without hardware offloading") a
// SOCK_DGRAM socket reports the EtherType behind the tags while the data still begins with
// the inner tag, so such frames decode as malformed; SOCK_RAW reports skb->protocol (0x8100),
// which matches the data. The fanout program sees skb->protocol in both cases.
//
// Startup is leak-free: every socket drops everything (a "ret #0" filter) until all of them
// have joined the group with the program set; then the real filter replaces it on each ring
// in turn. Packets that arrive during that swap and hash to a ring not yet swapped are lost
// without being counted.
func OpenRings(cfg RingConfig) ([]*Ring, error) {
	cfg, geo, err := planRings(cfg)
	if err != nil {
		return nil, err
	}
	prog, err := FanoutProgram(cfg.Workers)
	if err != nil {
		return nil, newError(ErrConfig, cfg.Interface, err, "%v", err)
	}
	fanoutProg, err := bpf.Assemble(prog)
	if err != nil {
		return nil, newError(ErrSystem, cfg.Interface, err, "fanout program: %v", err)
	}
	filter := capFilter(cfg.Filter, cfg.SnapLen)
	if cfg.Interface == "any" {
		// "any" never captures loopback: the sensor's own local traffic is not dark traffic.
		lo, err := loopbackIndexes()
		if err == nil {
			filter, err = dropIfindexes(filter, lo)
		}
		if err != nil {
			return nil, newError(ErrSystem, cfg.Interface, err, "loopback filter: %v", err)
		}
	}
	sockType := unix.SOCK_DGRAM
	if len(cfg.Filter) == 0 {
		sockType = unix.SOCK_RAW
	}

	rings := make([]*Ring, 0, cfg.Workers)
	fail := func(err error) ([]*Ring, error) {
		for _, r := range rings {
			_ = r.Close()
		}
		return nil, err
	}
	ifindex := -1
	group := cfg.FanoutGroup
	for i := range cfg.Workers {
		r, err := openSocket(cfg, sockType, i)
		if err != nil {
			return fail(err)
		}
		rings = append(rings, r)
		if ifindex < 0 {
			if ifindex, err = r.lookupIndex(); err != nil {
				return fail(err)
			}
		}
		if err := r.setupRing(geo); err != nil {
			return fail(err)
		}
		if err := r.bind(ifindex); err != nil {
			return fail(err)
		}
		if group, err = r.joinFanout(group, i == 0 && cfg.FanoutGroup == 0); err != nil {
			return fail(err)
		}
		if i == 0 {
			// The program belongs to the group: set it once, before anyone else joins.
			if err := setFilter(r.fd, unix.SOL_PACKET, unix.PACKET_FANOUT_DATA, fanoutProg); err != nil {
				return fail(newError(ErrSystem, r.iface, err, "the kernel rejected the fanout program: %v", err))
			}
		}
	}
	for _, r := range rings {
		r.discardReady()
		if _, err := unix.GetsockoptTpacketStatsV3(r.fd, unix.SOL_PACKET, unix.PACKET_STATISTICS); err != nil {
			return fail(sysError(r.iface, "reset statistics", err))
		}
		if err := setFilter(r.fd, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER, filter); err != nil {
			return fail(newError(ErrConfig, r.iface, err, "the kernel rejected the capture filter: %v", err))
		}
	}
	return rings, nil
}

// planRings validates cfg, fills defaults and sizes the rings.
func planRings(cfg RingConfig) (RingConfig, ringGeometry, error) {
	var geo ringGeometry
	bad := func(format string, args ...any) (RingConfig, ringGeometry, error) {
		return cfg, geo, newError(ErrConfig, cfg.Interface, nil, format, args...)
	}
	if cfg.SnapLen == 0 {
		cfg.SnapLen = DefaultSnapLen
	}
	if cfg.RingBytes == 0 {
		cfg.RingBytes = DefaultRingBytes
	}
	if cfg.BlockTimeout == 0 {
		cfg.BlockTimeout = DefaultBlockTimeout
	}
	switch {
	case cfg.Interface == "":
		return bad("no interface given (use \"any\" for all of them)")
	case cfg.Workers < 1 || cfg.Workers > MaxWorkers:
		return bad("%d workers: want 1..%d", cfg.Workers, MaxWorkers)
	case cfg.SnapLen < MinSnapLen || cfg.SnapLen > maxSnapLen:
		return bad("snaplen %d: want %d..%d (the worker choice reads up to %d bytes)",
			cfg.SnapLen, MinSnapLen, maxSnapLen, MinSnapLen)
	case cfg.BlockTimeout < time.Millisecond:
		return bad("block timeout %v: want at least 1ms", cfg.BlockTimeout)
	case len(cfg.Filter) > maxFilterLen:
		return bad("capture filter has %d instructions: the kernel takes at most %d", len(cfg.Filter), maxFilterLen)
	}
	page := os.Getpagesize()
	perRing := cfg.RingBytes / cfg.Workers
	// Room for tpacket3_hdr, sockaddr_ll, alignment and a link header in front of the data.
	geo.frameSize = alignUp(128+maxLinkHeader+cfg.SnapLen, unix.TPACKET_ALIGNMENT)
	geo.blockSize = maxBlockSize
	for geo.blockSize > page && perRing/geo.blockSize < minBlocks {
		geo.blockSize /= 2
	}
	for geo.blockSize < geo.frameSize {
		geo.blockSize *= 2
	}
	geo.blocks = perRing / geo.blockSize
	if geo.blocks < 2 {
		return bad("ring of %d bytes is too small for %d workers with snaplen %d: give at least %d bytes",
			cfg.RingBytes, cfg.Workers, cfg.SnapLen, 2*geo.blockSize*cfg.Workers)
	}
	geo.tovMillis = uint32(cfg.BlockTimeout / time.Millisecond)
	return cfg, geo, nil
}

const maxFilterLen = 4096 // BPF_MAXINSNS

func alignUp(n, a int) int { return (n + a - 1) / a * a }

// capFilter returns the user filter with every accepting return capped at snap (TPACKET_V3
// ignores the frame size and keeps what the filter returns), or, without one, a filter that
// accepts everything with room for a link header (the SOCK_RAW case). A "ret a" is left
// alone: the kernel caps it at the packet size and Poll at snap.
func capFilter(user []bpf.RawInstruction, snap int) []bpf.RawInstruction {
	const retK = 0x06 // BPF_RET | BPF_K
	if len(user) == 0 {
		return []bpf.RawInstruction{{Op: retK, K: uint32(snap + maxLinkHeader)}}
	}
	out := make([]bpf.RawInstruction, len(user))
	copy(out, user)
	for i := range out {
		if out[i].Op == retK && out[i].K > uint32(snap) {
			out[i].K = uint32(snap)
		}
	}
	return out
}

// setFilter attaches a classic BPF program with setsockopt (SO_ATTACH_FILTER, PACKET_FANOUT_DATA).
func setFilter(fd, level, opt int, prog []bpf.RawInstruction) error {
	ins := make([]unix.SockFilter, len(prog))
	for i, in := range prog {
		ins[i] = unix.SockFilter{Code: in.Op, Jt: in.Jt, Jf: in.Jf, K: in.K}
	}
	return unix.SetsockoptSockFprog(fd, level, opt, &unix.SockFprog{Len: uint16(len(ins)), Filter: &ins[0]})
}

// dropAll is attached first so no packet reaches a ring before the fanout group is complete.
var dropAll = []bpf.RawInstruction{{Op: 0x06, K: 0}}

// openSocket creates the socket with protocol 0, which registers no packet hook until bind:
// nothing is queued before the ring exists. The socket is non-blocking and registered with
// the runtime's poller: a Poll that waits parks its goroutine instead of holding a thread
// (and its P) in a blocking syscall, which kept sysmon retaking Ps every 20 µs.
func openSocket(cfg RingConfig, sockType, index int) (*Ring, error) {
	fd, err := unix.Socket(unix.AF_PACKET, sockType|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
	if err != nil {
		return nil, sysError(cfg.Interface, "socket(AF_PACKET)", err)
	}
	r := &Ring{index: index, iface: cfg.Interface, fd: fd, snap: cfg.SnapLen,
		grace: 3*cfg.BlockTimeout + 20*time.Millisecond}
	r.closedErr = newError(ErrClosed, cfg.Interface, nil, "ring %d on %q is closed", index, cfg.Interface)
	r.pfd[0] = unix.PollFd{Fd: int32(fd), Events: unix.POLLIN | unix.POLLERR}
	r.check = r.ready
	// os.NewFile registers a non-blocking descriptor with the poller; SetReadDeadline fails
	// with os.ErrNoDeadline if that did not work.
	r.file = os.NewFile(uintptr(fd), "packet")
	if err := r.file.SetReadDeadline(time.Time{}); err != nil {
		_ = r.file.Close()
		return nil, sysError(cfg.Interface, "register the socket with the runtime poller", err)
	}
	if r.raw, err = r.file.SyscallConn(); err != nil {
		_ = r.file.Close()
		return nil, sysError(cfg.Interface, "register the socket with the runtime poller", err)
	}
	if err := setFilter(fd, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER, dropAll); err != nil {
		_ = r.file.Close()
		return nil, sysError(cfg.Interface, "attach the startup filter", err)
	}
	return r, nil
}

// lookupIndex resolves the interface name in the socket's network namespace.
func (r *Ring) lookupIndex() (int, error) {
	if r.iface == "any" {
		return 0, nil
	}
	ifr, err := unix.NewIfreq(r.iface)
	if err != nil { // name too long: it cannot exist
		return 0, newError(ErrInterfaceNotFound, r.iface, err, "interface %q not found (ip link shows the available ones)", r.iface)
	}
	if err := unix.IoctlIfreq(r.fd, unix.SIOCGIFINDEX, ifr); err != nil {
		return 0, sysError(r.iface, "look up the interface", err)
	}
	return int(ifr.Uint32()), nil
}

// setupRing switches to TPACKET_V3, allocates the ring and maps it.
func (r *Ring) setupRing(geo ringGeometry) error {
	if err := unix.SetsockoptInt(r.fd, unix.SOL_PACKET, unix.PACKET_VERSION, unix.TPACKET_V3); err != nil {
		return sysError(r.iface, "select TPACKET_V3", err)
	}
	req := unix.TpacketReq3{
		Block_size:     uint32(geo.blockSize),
		Block_nr:       uint32(geo.blocks),
		Frame_size:     uint32(geo.frameSize),
		Frame_nr:       uint32(geo.blockSize / geo.frameSize * geo.blocks),
		Retire_blk_tov: geo.tovMillis,
	}
	size := geo.blockSize * geo.blocks
	if err := unix.SetsockoptTpacketReq3(r.fd, unix.SOL_PACKET, unix.PACKET_RX_RING, &req); err != nil {
		if errors.Is(err, unix.ENOMEM) {
			return newError(ErrRingTooLarge, r.iface, err,
				"the kernel could not allocate a ring of %d MiB: lower capture.ring_mb", size>>20)
		}
		return sysError(r.iface, "allocate the ring", err)
	}
	ring, err := unix.Mmap(r.fd, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		if errors.Is(err, unix.ENOMEM) {
			return newError(ErrRingTooLarge, r.iface, err, "mapping a ring of %d MiB failed: lower capture.ring_mb", size>>20)
		}
		return sysError(r.iface, "map the ring", err)
	}
	r.ring, r.blockSize, r.blocks = ring, geo.blockSize, geo.blocks
	return nil
}

// bind attaches the socket to the interface (0 = all) for every protocol, inbound only.
func (r *Ring) bind(ifindex int) error {
	if err := unix.SetsockoptInt(r.fd, unix.SOL_PACKET, unix.PACKET_IGNORE_OUTGOING, 1); err != nil {
		return newError(ErrSystem, r.iface, err, "PACKET_IGNORE_OUTGOING failed (%v): Linux 4.20 or newer is needed", err)
	}
	sa := &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifindex}
	if err := unix.Bind(r.fd, sa); err != nil {
		return sysError(r.iface, "bind", err)
	}
	// A down interface accepts the bind but leaves the socket idle with ENETDOWN pending.
	if soErr, err := unix.GetsockoptInt(r.fd, unix.SOL_SOCKET, unix.SO_ERROR); err == nil && soErr != 0 {
		return sysError(r.iface, "bind", unix.Errno(soErr))
	}
	return nil
}

// joinFanout joins the fanout group (with unique, the kernel picks an unused id) and returns
// its id. PACKET_FANOUT_FLAG_IGNORE_OUTGOING is needed on top of PACKET_IGNORE_OUTGOING: the
// group has its own packet hook, which ignores the sockets' own setting. Kernels before 6.2
// ignore the flag silently and capture outgoing packets too.
//
// The kernel lets a socket join an existing group of the same type, flags and interface, so
// an explicit id that another capture of the same kind already uses is joined, not refused;
// leaving the id to the kernel (FanoutGroup 0, PACKET_FANOUT_FLAG_UNIQUEID) rules that out.
func (r *Ring) joinFanout(group uint16, unique bool) (uint16, error) {
	typeFlags := unix.PACKET_FANOUT_CBPF | unix.PACKET_FANOUT_FLAG_IGNORE_OUTGOING
	if unique {
		typeFlags |= unix.PACKET_FANOUT_FLAG_UNIQUEID
		group = 0
	}
	if err := unix.SetsockoptInt(r.fd, unix.SOL_PACKET, unix.PACKET_FANOUT, int(group)|typeFlags<<16); err != nil {
		switch {
		case unique:
			return 0, newError(ErrSystem, r.iface, err, "joining a new fanout group failed: %v", err)
		case errors.Is(err, unix.EINVAL), errors.Is(err, unix.EADDRINUSE), errors.Is(err, unix.ENOSPC), errors.Is(err, unix.EALREADY):
			return 0, newError(ErrFanoutBusy, r.iface, err,
				"another process uses fanout group %d in this network namespace: stop it or choose another group", group)
		}
		return 0, sysError(r.iface, "join the fanout group", err)
	}
	if unique {
		v, err := unix.GetsockoptInt(r.fd, unix.SOL_PACKET, unix.PACKET_FANOUT)
		if err != nil {
			return 0, sysError(r.iface, "read the fanout group", err)
		}
		group = uint16(v)
	}
	r.group = group
	return group, nil
}

func htons(v uint16) uint16 {
	var b [2]byte
	binary.BigEndian.PutUint16(b[:], v)
	return binary.NativeEndian.Uint16(b[:])
}

// Index returns the ring's fanout index (its worker number).
func (r *Ring) Index() int { return r.index }

// Group returns the fanout group id the ring joined.
func (r *Ring) Group() uint16 { return r.group }

// Block and frame layout of TPACKET_V3 (linux/if_packet.h).
const (
	blockStatusOff = 8  // tpacket_block_desc.hdr.bh1.block_status
	blockNumOff    = 12 // num_pkts
	blockFirstOff  = 16 // offset_to_first_pkt
	blockLenOff    = 20 // blk_len: the bytes used, from the block's start
	blockHdrLen    = 48
	sllOff         = unix.SizeofTpacket3Hdr // TPACKET_ALIGN(sizeof(tpacket3_hdr)): sockaddr_ll
	sllLen         = unix.SizeofSockaddrLinklayer
)

// Poll waits up to timeout (negative: forever) for a retired block, calls fn for every frame
// of every block that is ready, returns the blocks to the kernel and reports how many frames
// it delivered. fn must not keep f or f.Data; a nil fn discards the frames. When the interface disappears or goes down,
// Poll keeps delivering what the kernel still retires for three block timeouts, then returns a
// *CaptureError of kind ErrInterfaceGone on every call: close all rings of the group and
// reopen them (the kernel reorders a group's sockets when the interface comes back).
//
// Poll waits in the runtime's network poller, so a waiting Poll holds no thread; Close from
// another goroutine wakes it, and it returns the ErrClosed error.
func (r *Ring) Poll(timeout time.Duration, fn func(*Frame)) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed || r.closing.Load() {
		return 0, r.closedErr
	}
	if n := r.walkReady(fn); n > 0 {
		return n, nil
	}
	if r.gone != nil {
		left := time.Until(r.goneUntil)
		if left <= 0 {
			return 0, r.gone
		}
		if timeout < 0 || timeout > left {
			timeout = left
		}
	}
	if err := r.wait(timeout); err != nil {
		return 0, err
	}
	return r.walkReady(fn), nil
}

// wait returns once a block is ready, the socket reports an error (handled as socketError
// does), timeout (negative: none) has passed or Close was called (r.closedErr).
func (r *Ring) wait(timeout time.Duration) error {
	r.pfd[0].Revents = 0
	var err error
	if timeout == 0 {
		r.ready(0) // a past deadline would fail the poller's Read before it calls ready
	} else {
		var deadline time.Time // zero: none
		if timeout > 0 {
			deadline = time.Now().Add(timeout)
		}
		if err := r.file.SetReadDeadline(deadline); err != nil {
			return sysError(r.iface, "poll", err)
		}
		// Close sets closing, then a past deadline: either we see closing here, or its
		// deadline replaces ours and ends the Read.
		if r.closing.Load() {
			return r.closedErr
		}
		err = r.raw.Read(r.check)
		if r.closing.Load() {
			return r.closedErr
		}
	}
	if err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
		return sysError(r.iface, "poll", err)
	}
	if rev := r.pfd[0].Revents; rev&unix.POLLNVAL != 0 {
		return r.closedErr
	} else if rev&unix.POLLERR != 0 {
		return r.socketError()
	}
	return nil
}

// ready tells the poller's Read whether to stop waiting. Read calls it once the poller is
// armed and again after every wake-up. The poller is edge-triggered and forgets an edge
// that came before it was armed, so ready looks at the state itself: the next block's
// status in the ring (TPACKET_V3 wakes the socket when it retires a block), and, with a
// non-blocking ppoll, a pending socket error (POLLERR, which stays until socketError reads
// it, while its edge may have been spent on a wake-up that found a block to deliver).
func (r *Ring) ready(uintptr) bool {
	if r.blockReady() {
		return true
	}
	r.pfd[0].Revents = 0
	// A raw syscall: a ppoll that cannot block need not tell the scheduler, and entering a
	// syscall while every P is idle wakes sysmon into 20 µs ticks for a millisecond or more.
	_, _, errno := unix.RawSyscall6(unix.SYS_PPOLL, uintptr(unsafe.Pointer(&r.pfd[0])), 1,
		uintptr(unsafe.Pointer(&r.zero)), 0, 0, 0)
	if errno != 0 {
		r.pfd[0].Revents = 0
		return false
	}
	return r.pfd[0].Revents&(unix.POLLERR|unix.POLLNVAL) != 0
}

// blockReady reports whether the kernel has handed over the next block in ring order.
func (r *Ring) blockReady() bool { return r.readyAt(r.cur) }

// readyAt reports whether the kernel has handed over block i.
func (r *Ring) readyAt(i int) bool {
	blk := r.ring[i*r.blockSize:]
	return atomic.LoadUint32((*uint32)(unsafe.Pointer(&blk[blockStatusOff])))&unix.TP_STATUS_USER != 0
}

// socketError reads the pending socket error after POLLERR. A departed interface starts the
// grace period; anything else is returned.
func (r *Ring) socketError() error {
	soErr, err := unix.GetsockoptInt(r.fd, unix.SOL_SOCKET, unix.SO_ERROR)
	if err != nil {
		return sysError(r.iface, "read the socket error", err)
	}
	if soErr == 0 {
		return nil
	}
	errno := unix.Errno(soErr)
	if !isGone(errno) {
		return sysError(r.iface, "capture", errno)
	}
	if r.gone == nil {
		r.gone = goneError(r.iface, errno)
		r.goneUntil = time.Now().Add(r.grace)
	}
	return nil
}

// walkReady delivers the frames of every block the kernel has handed over, in ring order.
func (r *Ring) walkReady(fn func(*Frame)) int {
	n := 0
	behind, bytes := r.readyBlocks()
	for range r.blocks {
		if !r.blockReady() {
			break
		}
		blk := r.ring[r.cur*r.blockSize : (r.cur+1)*r.blockSize]
		used := r.usedAt(r.cur)
		if fn != nil {
			// Blocks retired since the count are not in it.
			r.frame.Behind = max(behind, 1)
			r.frame.BehindBytes = max(bytes, used)
			n += r.walkBlock(blk, fn)
		}
		behind--
		bytes -= used
		atomic.StoreUint32((*uint32)(unsafe.Pointer(&blk[blockStatusOff])), unix.TP_STATUS_KERNEL)
		r.cur++
		if r.cur == r.blocks {
			r.cur = 0
		}
	}
	return n
}

// readyBlocks counts the blocks handed over and not read yet, in ring order from the next,
// and the bytes they hold.
func (r *Ring) readyBlocks() (n, bytes int) {
	for i := r.cur; n < r.blocks && r.readyAt(i); n++ {
		bytes += r.usedAt(i)
		if i++; i == r.blocks {
			i = 0
		}
	}
	return n, bytes
}

// usedAt returns the bytes used in block i (ready: the kernel no longer writes to it), at
// most the block size.
func (r *Ring) usedAt(i int) int {
	return min(int(binary.NativeEndian.Uint32(r.ring[i*r.blockSize+blockLenOff:])), r.blockSize)
}

// Blocks returns the number of blocks of the ring (see Frame.Behind).
func (r *Ring) Blocks() int { return r.blocks }

// Bytes returns the size of the ring (see Frame.BehindBytes).
func (r *Ring) Bytes() int { return r.blocks * r.blockSize }

// BlockBytes returns the size of one block.
func (r *Ring) BlockBytes() int { return r.blockSize }

// discardReady returns every ready block to the kernel unread.
func (r *Ring) discardReady() { r.walkReady(nil) }

// walkBlock calls fn for each frame of one block. The offsets come from the kernel; they are
// still checked so that a surprise cannot read outside the block.
func (r *Ring) walkBlock(blk []byte, fn func(*Frame)) int {
	num := binary.NativeEndian.Uint32(blk[blockNumOff:])
	off := int(binary.NativeEndian.Uint32(blk[blockFirstOff:]))
	f := &r.frame
	n := 0
	for range num {
		if off < blockHdrLen || off+sllOff+sllLen > len(blk) {
			break
		}
		if a := off + pageAhead; a < len(blk) {
			prefetch.Line(unsafe.Pointer(&blk[a]))
		}
		h := (*unix.Tpacket3Hdr)(unsafe.Pointer(&blk[off]))
		// tp_mac == tp_net on SOCK_DGRAM; SOCK_RAW keeps the link header in between.
		mac, start := off+int(h.Mac), off+int(h.Net)
		end := mac + int(h.Snaplen)
		if mac < off+sllOff+sllLen || start < mac || end < start || end > len(blk) {
			break
		}
		end = min(end, start+r.snap)
		sll := blk[off+sllOff:]
		f.Data = blk[start:end:end]
		f.Protocol = binary.BigEndian.Uint16(sll[2:4])
		f.IfIndex = int(int32(binary.NativeEndian.Uint32(sll[4:8])))
		f.TS = int64(h.Sec)*1e9 + int64(h.Nsec)
		f.WireLen = h.Len - uint32(start-mac)
		f.VLANValid = h.Status&unix.TP_STATUS_VLAN_VALID != 0
		f.VLAN = 0
		if f.VLANValid {
			f.VLAN = uint16(h.Hv1.Vlan_tci) & 0x0FFF
		}
		fn(f)
		n++
		if h.Next_offset == 0 {
			break
		}
		off += int(h.Next_offset)
	}
	f.Data = nil
	return n
}

// Stats returns the counters accumulated since open (the kernel resets them on every read).
// After Close it returns the final values.
func (r *Ring) Stats() (RingStats, error) {
	r.statsMu.Lock()
	defer r.statsMu.Unlock()
	if r.closed {
		return r.stats, nil
	}
	if err := r.readStats(); err != nil {
		return r.stats, err
	}
	return r.stats, nil
}

// readStats adds the kernel counters to r.stats. statsMu must be held.
func (r *Ring) readStats() error {
	s, err := unix.GetsockoptTpacketStatsV3(r.fd, unix.SOL_PACKET, unix.PACKET_STATISTICS)
	if err != nil {
		return sysError(r.iface, "read statistics", err)
	}
	r.stats.Packets += uint64(s.Packets)
	r.stats.Drops += uint64(s.Drops)
	r.stats.QueueFreezes += uint64(s.Freeze_q_cnt)
	return nil
}

// Close unmaps the ring and closes the socket. It wakes a Poll that waits and waits for a
// Poll that delivers frames to finish. Closing twice is harmless.
func (r *Ring) Close() error {
	if !r.closing.Swap(true) {
		_ = r.file.SetReadDeadline(time.Unix(1, 0)) // in the past: wakes a waiting Poll
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.statsMu.Lock()
	defer r.statsMu.Unlock()
	if r.closed {
		return nil
	}
	r.closed = true
	var errs []error
	if r.ring != nil {
		_ = r.readStats() // keep the last counts for Stats after Close
		if err := unix.Munmap(r.ring); err != nil {
			errs = append(errs, fmt.Errorf("unmap ring: %w", err))
		}
		r.ring = nil
	}
	if err := r.file.Close(); err != nil {
		errs = append(errs, fmt.Errorf("close socket: %w", err))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("capture: close ring %d on %q: %w", r.index, r.iface, err)
	}
	return nil
}
