package main

import (
	"fmt"
	"net/netip"
	"runtime"
	"slices"
	"strconv"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// sender sends UDP datagrams with sendmmsg(2), each from a chosen loopback source
// address (IP_PKTINFO's ipi_spec_dst), so one socket simulates many hosts.
type sender struct {
	fd    int
	dst   unix.RawSockaddrInet4
	hdrs  []unix.Mmsghdr
	iovs  []unix.Iovec
	cmsgs []byte
	bufs  [][]byte
}

func newSender(dst netip.AddrPort, batch int) (*sender, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM, 0)
	if err != nil {
		return nil, err
	}
	if err := unix.Bind(fd, &unix.SockaddrInet4{Port: 0}); err != nil {
		return nil, err
	}
	unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, 8<<20)
	s := &sender{fd: fd, hdrs: make([]unix.Mmsghdr, batch), iovs: make([]unix.Iovec, batch), bufs: make([][]byte, batch)}
	s.dst.Family = unix.AF_INET
	s.dst.Addr = dst.Addr().As4()
	p := (*[2]byte)(unsafe.Pointer(&s.dst.Port))
	p[0], p[1] = byte(dst.Port()>>8), byte(dst.Port())
	space := unix.CmsgSpace(unix.SizeofInet4Pktinfo)
	s.cmsgs = make([]byte, space*batch)
	for i := range s.hdrs {
		s.bufs[i] = make([]byte, 0, 1024)
		h := (*unix.Cmsghdr)(unsafe.Pointer(&s.cmsgs[i*space]))
		h.Level, h.Type = unix.IPPROTO_IP, unix.IP_PKTINFO
		h.SetLen(unix.CmsgLen(unix.SizeofInet4Pktinfo))
	}
	return s, nil
}

// send sends the n datagrams in bufs[:n], datagram i from srcs[i].
func (s *sender) send(n int, srcs [][4]byte) error {
	space := unix.CmsgSpace(unix.SizeofInet4Pktinfo)
	for i := 0; i < n; i++ {
		pi := (*unix.Inet4Pktinfo)(unsafe.Pointer(&s.cmsgs[i*space+unix.CmsgLen(0)]))
		pi.Spec_dst = srcs[i]
		s.iovs[i].Base = unsafe.SliceData(s.bufs[i][:1])
		s.iovs[i].SetLen(len(s.bufs[i]))
		h := &s.hdrs[i].Hdr
		h.Name = (*byte)(unsafe.Pointer(&s.dst))
		h.Namelen = unix.SizeofSockaddrInet4
		h.Iov = &s.iovs[i]
		h.SetIovlen(1)
		h.Control = &s.cmsgs[i*space]
		h.SetControllen(space)
	}
	for off := 0; off < n; {
		r, _, e := unix.Syscall6(unix.SYS_SENDMMSG, uintptr(s.fd), uintptr(unsafe.Pointer(&s.hdrs[off])), uintptr(n-off), 0, 0, 0)
		if e == unix.EAGAIN || e == unix.ENOBUFS {
			continue
		}
		if e != 0 {
			return fmt.Errorf("sendmmsg: %w", e)
		}
		off += int(r)
	}
	return nil
}

// fleet is the simulated hosts: host i sends from 127.(1+i/62500).(1+i/250%250).(1+i%250)
// extended records with its own sequence numbers; crash hosts send a real oops
// (the lab's ACCESS_NULL capture, renumbered) at their crashAt-th record, in one
// burst as a dying kernel does, between the other hosts' records.
type fleet struct {
	srcs    [][4]byte
	seq     []uint64
	crash   map[int]int // host → next line of the crash script, -1 when not started
	script  []string
	crashAt uint64
	next    int
	burst   []int         // hosts in the middle of their crash burst
	genCPU  time.Duration // CPU time of the last run's sending thread
}

func newFleet(hosts, crashes int, script []string, crashAt uint64) *fleet {
	f := &fleet{srcs: make([][4]byte, hosts), seq: make([]uint64, hosts), crash: map[int]int{}, script: script, crashAt: crashAt}
	for i := range f.srcs {
		// 250 values per octet keep clear of .0 and .255.
		f.srcs[i] = [4]byte{127, byte(1 + i/62500), byte(1 + i/250%250), byte(1 + i%250)}
	}
	for k := 0; k < crashes; k++ {
		f.crash[k*hosts/crashes] = -1
	}
	return f
}

// fill writes the next n datagrams into s's buffers, round-robin over hosts.
func (f *fleet) fill(s *sender, n int, srcs [][4]byte) {
	for i := 0; i < n; i++ {
		var h int
		if len(f.burst) > 0 && i%2 == 1 {
			h = f.burst[0] // every other datagram, the next line of a crash
		} else {
			h = f.next
			f.next = (f.next + 1) % len(f.srcs)
		}
		srcs[i] = f.srcs[h]
		seq := f.seq[h]
		f.seq[h]++
		b := s.bufs[i][:0]
		text := "netdev: eth0: rx ring refilled, 512 buffers, queue 3 of 8 ok"
		if line, ok := f.crash[h]; ok && (line >= 0 || seq == f.crashAt) && line < len(f.script) {
			text = f.script[max(line, 0)]
			f.crash[h] = max(line, 0) + 1
			switch {
			case line < 0:
				f.burst = append(f.burst, h)
			case line+1 >= len(f.script):
				f.burst = slices.DeleteFunc(f.burst, func(x int) bool { return x == h })
			}
		}
		b = strconv.AppendUint(b, 4, 10)
		b = append(b, ',')
		b = strconv.AppendUint(b, seq, 10)
		b = append(b, ',')
		b = strconv.AppendUint(b, 5_000_000+seq*1000, 10)
		b = append(b, ",-;"...)
		b = append(b, text...)
		s.bufs[i] = b
	}
}

// crashNow makes host h send the crash script next, in a burst.
func (f *fleet) crashNow(h int) {
	if line, ok := f.crash[h]; ok && line >= 0 && line < len(f.script) {
		return // crashing already
	}
	f.crash[h] = 0
	f.burst = append(f.burst, h)
}

// run sends at rate datagrams per second (0: as fast as possible) for d and
// returns how many it sent.
//
// The generator runs on its own OS thread, so its CPU time (genCPU) can be told
// apart from the receiver's.
func (f *fleet) run(s *sender, rate float64, d time.Duration) (uint64, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	t0 := threadCPU()
	defer func() { f.genCPU = threadCPU() - t0 }()
	const batch = 64
	srcs := make([][4]byte, batch)
	start := time.Now()
	var sent uint64
	for {
		el := time.Since(start)
		if el >= d {
			return sent, nil
		}
		if rate > 0 {
			due := uint64(el.Seconds() * rate)
			if sent >= due {
				time.Sleep(200 * time.Microsecond)
				continue
			}
		}
		f.fill(s, batch, srcs)
		if err := s.send(batch, srcs); err != nil {
			return sent, err
		}
		sent += batch
	}
}

func unixClose(fd int) { unix.Close(fd) }

// threadCPU is the calling OS thread's CPU time.
func threadCPU() time.Duration {
	var ts unix.Timespec
	unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts)
	return time.Duration(ts.Nano())
}

// processCPU is the process's user and system CPU time.
func processCPU() time.Duration {
	var ru unix.Rusage
	unix.Getrusage(unix.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
