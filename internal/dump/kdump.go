package dump

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"math/bits"
	"time"
)

// KdumpHeader holds makedumpfile's struct disk_dump_header and struct
// kdump_sub_header (makedumpfile/diskdump_mod.h).
type KdumpHeader struct {
	Signature     string
	HeaderVersion int32
	// Utsname: sysname, nodename, release, version, machine, domainname.
	Utsname      [6]string
	Timestamp    time.Time
	Status       uint32
	BlockSize    uint32
	SubHdrSize   uint32
	BitmapBlocks uint32
	MaxMapnr     uint64
	CurrentCPU   uint32
	NrCPUs       int32
	PhysBase     uint64
	DumpLevel    int32
}

// Status flags of disk_dump_header.status and page_desc.flags (diskdump_mod.h).
const (
	dumpZlib       = 0x1
	dumpLZO        = 0x2
	dumpSnappy     = 0x4
	dumpIncomplete = 0x8
	dumpZstd       = 0x20
)

const (
	kdumpHdrFixed = 464 // offsetof(struct disk_dump_header, tasks) on 64-bit
	pageDescSize  = 24  // struct page_desc: off_t offset, u32 size, u32 flags, u64 page_flags
	maxBlockSize  = 1 << 20
	maxSubHdr     = 64 << 20
	// rankWords is how many bitmap words share one prefix count: 8 words = 512 pages.
	rankWords = 8
)

type kdumpMem struct {
	r         io.ReaderAt
	size      int64
	hdr       *KdumpHeader
	bitmap1   []uint64 // page present in RAM
	bitmap2   []uint64 // page dumped
	rank      []uint32 // set bits of bitmap2 before each rankWords group
	descStart int64
	nDescs    uint64
}

func openKdump(r io.ReaderAt, size int64) (*Dump, error) {
	var sig [8]byte
	if readFull(r, sig[:], 0) != nil || (string(sig[:]) != "KDUMP   " && string(sig[:]) != "DISKDUMP") {
		return nil, errNotThis
	}
	d, err := newKdump(r, size, false)
	if err != nil {
		return nil, err
	}
	d.format = FormatKdump
	return d, nil
}

// newKdump parses a kdump-compressed file already known to carry the signature;
// r is the seekable file or the flattened file's reassembled view; truncated
// says the flattened stream lost its end.
func newKdump(r io.ReaderAt, size int64, truncated bool) (*Dump, error) {
	le := binary.LittleEndian
	var hb [kdumpHdrFixed]byte
	if err := readFull(r, hb[:], 0); err != nil {
		return nil, fmt.Errorf("kdump header: %w", err)
	}
	h := &KdumpHeader{Signature: string(hb[:8]), HeaderVersion: int32(le.Uint32(hb[8:]))}
	for i := range h.Utsname {
		h.Utsname[i] = string(trimAtNUL(hb[12+65*i : 12+65*(i+1)]))
	}
	h.Timestamp = time.Unix(int64(le.Uint64(hb[408:])), int64(le.Uint64(hb[416:]))*1000).UTC()
	h.Status = le.Uint32(hb[424:])
	h.BlockSize = le.Uint32(hb[428:])
	h.SubHdrSize = le.Uint32(hb[432:])
	h.BitmapBlocks = le.Uint32(hb[436:])
	h.MaxMapnr = uint64(le.Uint32(hb[440:]))
	h.CurrentCPU = le.Uint32(hb[456:])
	h.NrCPUs = int32(le.Uint32(hb[460:]))
	bs := uint64(h.BlockSize)
	if bs < 512 || bs > maxBlockSize || bs&(bs-1) != 0 {
		return nil, fmt.Errorf("kdump header: block size %d is not a power of two in [512, %d]", bs, maxBlockSize)
	}
	sub := uint64(h.SubHdrSize) * bs
	if sub > maxSubHdr || bs+sub > uint64(size) {
		return nil, fmt.Errorf("kdump header: sub-header of %d blocks overruns the %d-byte file", h.SubHdrSize, size)
	}
	d := &Dump{Kdump: h, incomplete: truncated || h.Status&dumpIncomplete != 0}
	if m := h.Utsname[4]; m == MachineAArch64 || m == MachineX86_64 {
		d.machine = m // QEMU writes "Unknown" here on aarch64: the notes tell then
	}
	if h.HeaderVersion >= 1 && sub >= 16 {
		sb := make([]byte, min(sub, 128))
		if err := readFull(r, sb, int64(bs)); err != nil {
			return nil, fmt.Errorf("kdump sub-header: %w", err)
		}
		h.PhysBase = le.Uint64(sb)
		h.DumpLevel = int32(le.Uint32(sb[8:]))
		if h.HeaderVersion >= 3 && len(sb) >= 48 {
			if err := readBlob(r, size, le.Uint64(sb[32:]), le.Uint64(sb[40:]), func(b []byte) error {
				d.vmcoreinfo = trimNUL(b)
				return nil
			}); err != nil {
				return nil, fmt.Errorf("kdump VMCOREINFO: %w", err)
			}
		}
		if h.HeaderVersion >= 4 && len(sb) >= 64 {
			if err := readBlob(r, size, le.Uint64(sb[48:]), le.Uint64(sb[56:]), func(b []byte) error {
				return parseNotes(d, b)
			}); err != nil {
				return nil, fmt.Errorf("kdump notes: %w", err)
			}
		}
		if h.HeaderVersion >= 6 && len(sb) >= 104 {
			if m := le.Uint64(sb[96:]); m != 0 {
				h.MaxMapnr = m
			}
		}
	}
	bmOff := bs + sub
	bmLen := uint64(h.BitmapBlocks) * bs
	if bmLen == 0 || bmLen%2 != 0 || bmOff+bmLen > uint64(size) {
		return nil, fmt.Errorf("kdump header: %d bitmap blocks at %#x do not fit the %d-byte file", h.BitmapBlocks, bmOff, size)
	}
	// The bitmaps are read whole: they must be in the input, not in a flattened
	// file's holes (which would make a kilobyte file ask for terabytes).
	if b, ok := r.(interface{ backed() int64 }); ok && bmLen > uint64(b.backed()) {
		return nil, fmt.Errorf("kdump header: %d bitmap blocks (%d bytes) exceed the %d bytes the file holds", h.BitmapBlocks, bmLen, b.backed())
	}
	half := bmLen / 2
	if h.MaxMapnr > half*8 {
		return nil, fmt.Errorf("kdump header: max_mapnr %d exceeds the %d-bit bitmaps", h.MaxMapnr, half*8)
	}
	m := &kdumpMem{r: r, size: size, hdr: h, descStart: int64(bmOff + bmLen)}
	raw := make([]byte, bmLen)
	if err := readFull(r, raw, int64(bmOff)); err != nil {
		return nil, fmt.Errorf("kdump bitmaps: %w", err)
	}
	m.bitmap1 = words(raw[:half])
	m.bitmap2 = words(raw[half:])
	m.rank = make([]uint32, (len(m.bitmap2)+rankWords-1)/rankWords+1)
	var n uint64
	for i, w := range m.bitmap2 {
		if i%rankWords == 0 {
			m.rank[i/rankWords] = uint32(n)
		}
		n += uint64(bits.OnesCount64(w))
	}
	m.nDescs = n
	if !d.incomplete && uint64(m.descStart)+n*pageDescSize > uint64(size) {
		return nil, fmt.Errorf("kdump: %d page descriptors at %#x overrun the %d-byte file", n, m.descStart, size)
	}
	d.mem = m
	return d, nil
}

// readBlob reads size bytes at off when both are sane and hands them to f.
func readBlob(r io.ReaderAt, fileSize int64, off, size uint64, f func([]byte) error) error {
	if off == 0 || size == 0 {
		return nil
	}
	if size > maxNotes || off > uint64(fileSize) || size > uint64(fileSize)-off {
		return fmt.Errorf("%d bytes at %#x overrun the %d-byte file", size, off, fileSize)
	}
	b := make([]byte, size)
	if err := readFull(r, b, int64(off)); err != nil {
		return err
	}
	return f(b)
}

func words(b []byte) []uint64 {
	w := make([]uint64, (len(b)+7)/8)
	for i := range w {
		var x [8]byte
		copy(x[:], b[i*8:])
		w[i] = binary.LittleEndian.Uint64(x[:])
	}
	return w
}

func trimAtNUL(b []byte) []byte {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		return b[:i]
	}
	return b
}

func bit(bm []uint64, pfn uint64) bool {
	return pfn/64 < uint64(len(bm)) && bm[pfn/64]&(1<<(pfn%64)) != 0
}

// descIndex is the page descriptor index of a dumped pfn: the set bits of
// bitmap 2 before it. Cost: one prefix count plus at most rankWords popcounts.
func (m *kdumpMem) descIndex(pfn uint64) uint64 {
	w := pfn / 64
	n := uint64(m.rank[w/rankWords])
	for i := w / rankWords * rankWords; i < w; i++ {
		n += uint64(bits.OnesCount64(m.bitmap2[i]))
	}
	return n + uint64(bits.OnesCount64(m.bitmap2[w]&(1<<(pfn%64)-1)))
}

func (m *kdumpMem) readPhys(p []byte, addr uint64) error {
	bs := uint64(m.hdr.BlockSize)
	page := make([]byte, bs)
	for len(p) > 0 {
		pfn, off := addr/bs, addr%bs
		if err := m.readPage(page, pfn); err != nil {
			return fmt.Errorf("physical address %#x: %w", addr, err)
		}
		n := copy(p, page[off:])
		p, addr = p[n:], addr+uint64(n)
	}
	return nil
}

// readPage decompresses page pfn into page (len == block size).
func (m *kdumpMem) readPage(page []byte, pfn uint64) error {
	if pfn >= m.hdr.MaxMapnr || !bit(m.bitmap1, pfn) {
		return ErrNotInDump
	}
	if !bit(m.bitmap2, pfn) {
		return ErrExcluded
	}
	idx := m.descIndex(pfn)
	var db [pageDescSize]byte
	if err := readFull(m.r, db[:], m.descStart+int64(idx*pageDescSize)); err != nil {
		return fmt.Errorf("kdump page desc %d of pfn %#x: %w (%v)", idx, pfn, ErrIncomplete, err)
	}
	le := binary.LittleEndian
	off, size, flags := le.Uint64(db[:]), uint64(le.Uint32(db[8:])), le.Uint32(db[12:])
	if off == 0 && size == 0 {
		// makedumpfile leaves descriptors zero when it stops writing early.
		return fmt.Errorf("kdump pfn %#x: %w", pfn, ErrIncomplete)
	}
	if size > uint64(len(page))*2+64 || off > uint64(m.size) || size > uint64(m.size)-off {
		return fmt.Errorf("kdump page desc %d: %d bytes at %#x overrun the file", idx, size, off)
	}
	buf := make([]byte, size)
	if err := readFull(m.r, buf, int64(off)); err != nil {
		return fmt.Errorf("kdump page %#x data: %w", pfn, err)
	}
	if err := decompressPage(page, buf, flags); err != nil {
		return fmt.Errorf("kdump page desc %d (pfn %#x): %w", idx, pfn, err)
	}
	return nil
}

func (m *kdumpMem) ranges() [][2]uint64 {
	var out [][2]uint64
	bs := uint64(m.hdr.BlockSize)
	for pfn := uint64(0); pfn < m.hdr.MaxMapnr; pfn++ {
		if m.bitmap1[pfn/64] == 0 && pfn%64 == 0 {
			pfn += 63
			continue
		}
		if !bit(m.bitmap1, pfn) {
			continue
		}
		if n := len(out); n > 0 && out[n-1][1] == pfn*bs {
			out[n-1][1] += bs
		} else {
			out = append(out, [2]uint64{pfn * bs, (pfn + 1) * bs})
		}
	}
	return out
}
