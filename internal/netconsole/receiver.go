package netconsole

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Packet is one received datagram. Data aliases the receiver's batch buffer and is
// valid only until the handler returns.
type Packet struct {
	From netip.AddrPort
	Data []byte
	// Truncated is set when the datagram was longer than the buffer (MSG_TRUNC).
	Truncated bool
}

// Handler takes one batch of packets, all stamped with the wall-clock time now
// (taken once per batch, right after recvmmsg returned). It runs on the socket's
// reading goroutine; a slow handler makes the kernel drop datagrams.
type Handler func(socket int, now time.Time, pkts []Packet)

// ListenOptions configure Listen.
type ListenOptions struct {
	// Sockets is how many SO_REUSEPORT sockets share the address (default 1). The
	// kernel hashes each source address and port to one socket, so one host's
	// datagrams always reach the same socket, in order.
	Sockets int
	// Batch is how many datagrams one recvmmsg call takes (default 256).
	Batch int
	// BufSize is the size of each datagram buffer (default 9000; netconsole sends
	// at most about 1 kB).
	BufSize int
	// ReadBuffer is SO_RCVBUF(FORCE) in bytes (default 8 MiB), to absorb bursts.
	ReadBuffer int
	// Coalesce is how long a reader waits before its next recvmmsg after one that
	// took less than a quarter of a batch (default DefaultCoalesce; negative: no
	// wait). A reader faster than its senders otherwise goes back to the socket at
	// once and takes a datagram or two per call, paying a system call, and a park
	// and wake-up in the netpoller, for each; waiting lets the kernel buffer gather
	// a batch meanwhile. It delays a datagram by at most Coalesce.
	Coalesce time.Duration
}

// DefaultCoalesce is ListenOptions.Coalesce's default. In bench/serve (10,000
// hosts, 2 CPUs shared with the generator) the collector's readers took 163
// datagrams per recvmmsg with it and 21–34 without, and the collector kept up with
// 556–582k records/s against 521–570k (three runs each).
const DefaultCoalesce = 200 * time.Microsecond

// Receiver reads UDP datagrams on one address with one goroutine per socket.
type Receiver struct {
	conns []*net.UDPConn
	opts  ListenOptions
}

// Listen opens opts.Sockets UDP sockets bound to addr with SO_REUSEPORT.
func Listen(ctx context.Context, addr string, opts ListenOptions) (*Receiver, error) {
	if opts.Sockets <= 0 {
		opts.Sockets = 1
	}
	if opts.Batch <= 0 {
		opts.Batch = 256
	}
	if opts.BufSize <= 0 {
		opts.BufSize = 9000
	}
	if opts.ReadBuffer <= 0 {
		opts.ReadBuffer = 8 << 20
	}
	if opts.Coalesce == 0 {
		opts.Coalesce = DefaultCoalesce
	}
	lc := net.ListenConfig{Control: func(network, address string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
			if serr != nil {
				return
			}
			// SO_RCVBUFFORCE passes net.core.rmem_max when privileged; else ask politely.
			if unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, opts.ReadBuffer) != nil {
				_ = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, opts.ReadBuffer)
			}
		})
		if err != nil {
			return err
		}
		return serr
	}}
	r := &Receiver{opts: opts}
	for i := 0; i < opts.Sockets; i++ {
		if i > 0 {
			addr = r.conns[0].LocalAddr().String() // the same port when addr asked for any
		}
		pc, err := lc.ListenPacket(ctx, "udp", addr)
		if err != nil {
			r.Close()
			return nil, fmt.Errorf("netconsole listen %s: %w", addr, err)
		}
		r.conns = append(r.conns, pc.(*net.UDPConn))
	}
	return r, nil
}

// Addr is the address the receiver listens on.
func (r *Receiver) Addr() *net.UDPAddr { return r.conns[0].LocalAddr().(*net.UDPAddr) }

// Close closes the sockets; Run returns once its readers have stopped.
func (r *Receiver) Close() error {
	var first error
	for _, c := range r.conns {
		if err := c.Close(); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// Run reads every socket on its own goroutine and calls h with each batch. It
// returns when the receiver is closed (nil) or a socket fails.
func (r *Receiver) Run(h Handler) error {
	errs := make(chan error, len(r.conns))
	for i, c := range r.conns {
		go func() { errs <- readLoop(c, i, r.opts, h) }()
	}
	var first error
	for range r.conns {
		if err := <-errs; err != nil && first == nil {
			first = err
			r.Close()
		}
	}
	return first
}

// Batch is a reusable recvmmsg(2) batch: buffers, iovecs, source addresses and the
// mmsghdr array, allocated once.
type Batch struct {
	hdrs  []unix.Mmsghdr
	iovs  []unix.Iovec
	names []unix.RawSockaddrInet6
	bufs  [][]byte
	pkts  []Packet
	// used is how many headers the last call filled in: only those need setting
	// again (a reader faster than its senders takes a few datagrams a call, and
	// setting all of a 256-entry batch each time cost more than the few taken).
	used int
}

// NewBatch allocates a batch of n buffers of size bytes.
func NewBatch(n, size int) *Batch {
	b := &Batch{
		hdrs: make([]unix.Mmsghdr, n), iovs: make([]unix.Iovec, n),
		names: make([]unix.RawSockaddrInet6, n), bufs: make([][]byte, n), pkts: make([]Packet, n),
	}
	for i := range b.bufs {
		b.bufs[i] = make([]byte, size)
	}
	b.used = n
	b.reset()
	return b
}

// reset sets again the headers the last recvmmsg filled in.
func (b *Batch) reset() {
	for i := range b.hdrs[:b.used] {
		b.iovs[i].Base = &b.bufs[i][0]
		b.iovs[i].SetLen(len(b.bufs[i]))
		h := &b.hdrs[i].Hdr
		h.Name = (*byte)(unsafe.Pointer(&b.names[i]))
		h.Namelen = uint32(unsafe.Sizeof(b.names[i]))
		h.Iov = &b.iovs[i]
		h.SetIovlen(1)
		h.Control, h.Controllen, h.Flags = nil, 0, 0
		b.hdrs[i].Len = 0
	}
	b.used = 0
}

// Recv fills the batch from c with one recvmmsg call, waiting until at least one
// datagram is there, and returns the packets. It allocates nothing.
func (b *Batch) Recv(rc syscall.RawConn) ([]Packet, error) {
	var n int
	var serr error
	b.reset()
	err := rc.Read(func(fd uintptr) bool {
		r, _, e := unix.Syscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&b.hdrs[0])),
			uintptr(len(b.hdrs)), unix.MSG_DONTWAIT, 0, 0)
		if e == unix.EAGAIN || e == unix.EWOULDBLOCK {
			return false
		}
		if e == unix.EINTR {
			return false
		}
		if e != 0 {
			serr, b.used = e, len(b.hdrs)
			return true
		}
		n = int(r)
		b.used = min(n+1, len(b.hdrs)) // and the one it may have failed on
		return true
	})
	if err != nil {
		return nil, err
	}
	if serr != nil {
		return nil, fmt.Errorf("recvmmsg: %w", serr)
	}
	pkts := b.pkts[:n]
	for i := range pkts {
		l := int(b.hdrs[i].Len)
		pkts[i] = Packet{
			From:      sockaddr(&b.names[i]),
			Data:      b.bufs[i][:min(l, len(b.bufs[i]))],
			Truncated: b.hdrs[i].Hdr.Flags&unix.MSG_TRUNC != 0,
		}
	}
	return pkts, nil
}

func sockaddr(sa *unix.RawSockaddrInet6) netip.AddrPort {
	switch sa.Family {
	case unix.AF_INET:
		s4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(sa))
		p := (*[2]byte)(unsafe.Pointer(&s4.Port))
		return netip.AddrPortFrom(netip.AddrFrom4(s4.Addr), uint16(p[0])<<8|uint16(p[1]))
	case unix.AF_INET6:
		p := (*[2]byte)(unsafe.Pointer(&sa.Port))
		return netip.AddrPortFrom(netip.AddrFrom16(sa.Addr).Unmap(), uint16(p[0])<<8|uint16(p[1]))
	}
	return netip.AddrPort{}
}

func readLoop(c *net.UDPConn, socket int, o ListenOptions, h Handler) error {
	rc, err := c.SyscallConn()
	if err != nil {
		return err
	}
	b := NewBatch(o.Batch, o.BufSize)
	for {
		pkts, err := b.Recv(rc)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			return err
		}
		h(socket, time.Now(), pkts)
		if o.Coalesce > 0 && len(pkts) < o.Batch/4 {
			time.Sleep(o.Coalesce)
		}
	}
}

// Fill returns how full a socket's kernel receive buffer is, from 0 to 1 (SO_MEMINFO:
// the memory its queued datagrams take over the buffer size), or -1 when it cannot
// tell. A handler that queues datagrams can use it to tell a burst the kernel
// buffer absorbs from an overload that will make the kernel drop at random.
func (r *Receiver) Fill(socket int) float64 {
	if socket < 0 || socket >= len(r.conns) {
		return -1
	}
	rc, err := r.conns[socket].SyscallConn()
	if err != nil {
		return -1
	}
	// include/uapi/linux/sock_diag.h: SK_MEMINFO_RMEM_ALLOC, SK_MEMINFO_RCVBUF, …
	var info [9]uint32
	var e syscall.Errno
	if err := rc.Control(func(fd uintptr) {
		l := uint32(unsafe.Sizeof(info))
		_, _, e = unix.Syscall6(unix.SYS_GETSOCKOPT, fd, unix.SOL_SOCKET, unix.SO_MEMINFO,
			uintptr(unsafe.Pointer(&info[0])), uintptr(unsafe.Pointer(&l)), 0)
	}); err != nil || e != 0 || info[1] == 0 {
		return -1
	}
	return float64(info[0]) / float64(info[1])
}
