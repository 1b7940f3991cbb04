package dump

import (
	"bytes"
	"compress/zlib"
	"encoding/binary"

	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/zstd"
)

// Test writers: they lay out small dumps from the format descriptions
// (include/uapi/linux/elf.h, makedumpfile/diskdump_mod.h, makedumpfile.h) so
// the readers meet every compression, exclusion, truncation and corruption.

const testPage = 4096

// testMem is a machine of npages pages whose page i is filled with byte i+1
// followed by its pfn, so a wrong page is visible.
func testMem(npages int) []byte {
	m := make([]byte, npages*testPage)
	for i := 0; i < npages; i++ {
		p := m[i*testPage : (i+1)*testPage]
		for j := range p {
			p[j] = byte(i + 1 + j%7)
		}
		binary.LittleEndian.PutUint64(p, uint64(i))
	}
	return m
}

func testNotes() []byte {
	var b bytes.Buffer
	note := func(name string, typ uint32, desc []byte) {
		le := binary.LittleEndian
		n := append([]byte(name), 0)
		binary.Write(&b, le, uint32(len(n)))
		binary.Write(&b, le, uint32(len(desc)))
		binary.Write(&b, le, typ)
		b.Write(n)
		for b.Len()%4 != 0 {
			b.WriteByte(0)
		}
		b.Write(desc)
		for b.Len()%4 != 0 {
			b.WriteByte(0)
		}
	}
	pr := make([]byte, 336)
	binary.LittleEndian.PutUint32(pr[32:], 7)
	binary.LittleEndian.PutUint64(pr[112+8*RegRIP:], 0xffffffff81000010)
	note("CORE", ntPRStatus, pr)
	note("VMCOREINFO", 0, []byte("OSRELEASE=6.1.0-test\nPAGESIZE=4096\n"))
	q := make([]byte, 440)
	binary.LittleEndian.PutUint64(q[392+3*8:], 0x1000)
	note("QEMU", 0, q)
	return b.Bytes()
}

// writeELF lays out an ELF vmcore with a note segment and one PT_LOAD per
// [start, end) page range of mem; excluded makes the last page of the last
// segment memory-only (p_filesz < p_memsz).
func writeELF(mem []byte, segs [][2]int, excluded bool, flags uint32) []byte {
	le := binary.LittleEndian
	notes := testNotes()
	nph := 1 + len(segs)
	hdr := make([]byte, 64+56*nph)
	copy(hdr, "\x7fELF\x02\x01\x01")
	le.PutUint16(hdr[16:], 4)
	le.PutUint16(hdr[18:], emX86_64)
	le.PutUint64(hdr[32:], 64)
	le.PutUint32(hdr[48:], flags)
	le.PutUint16(hdr[54:], 56)
	le.PutUint16(hdr[56:], uint16(nph))
	off := uint64(len(hdr))
	ph := func(i int, typ uint32, o, paddr, filesz, memsz uint64) {
		p := hdr[64+56*i:]
		le.PutUint32(p, typ)
		le.PutUint64(p[8:], o)
		le.PutUint64(p[24:], paddr)
		le.PutUint64(p[32:], filesz)
		le.PutUint64(p[40:], memsz)
	}
	ph(0, ptNote, off, 0, uint64(len(notes)), uint64(len(notes)))
	body := append([]byte(nil), notes...)
	off += uint64(len(notes))
	for i, s := range segs {
		data := mem[s[0]*testPage : s[1]*testPage]
		filesz := uint64(len(data))
		if excluded && i == len(segs)-1 {
			filesz -= testPage
		}
		ph(1+i, ptLoad, off, uint64(s[0]*testPage), filesz, uint64(len(data)))
		body = append(body, data[:filesz]...)
		off += filesz
	}
	return append(hdr, body...)
}

// kdumpOpts chooses how writeKdump lays out a dump.
type kdumpOpts struct {
	compress uint32 // dumpZlib, dumpLZO, dumpSnappy, dumpZstd or 0
	excluded map[int]bool
	absent   map[int]bool // pages not in RAM (bitmap 1 clear)
	status   uint32
}

func compressTest(page []byte, how uint32) []byte {
	switch how {
	case dumpZlib:
		var b bytes.Buffer
		w := zlib.NewWriter(&b)
		w.Write(page)
		w.Close()
		return b.Bytes()
	case dumpLZO:
		return lzoLiterals(page)
	case dumpSnappy:
		return s2.EncodeSnappy(nil, page)
	case dumpZstd:
		e, _ := zstd.NewWriter(nil)
		return e.EncodeAll(page, nil)
	}
	return page
}

// lzoLiterals encodes b as an LZO1X stream of one literal run and the end
// marker (the instruction set of lzo1x_d.ch): a 0 byte starts a long literal
// run whose length is 18 + 255 per following zero byte + the final byte.
func lzoLiterals(b []byte) []byte {
	out := []byte{0}
	n := len(b) - 18
	for n > 255 {
		out = append(out, 0)
		n -= 255
	}
	out = append(out, byte(n))
	out = append(out, b...)
	return append(out, 0x11, 0, 0)
}

// writeKdump lays out a seekable kdump-compressed file (header version 6).
func writeKdump(mem []byte, o kdumpOpts) []byte {
	le := binary.LittleEndian
	npages := len(mem) / testPage
	bs := testPage
	notes := testNotes()
	vmci := []byte("OSRELEASE=6.1.0-test\nPAGESIZE=4096\n")
	hdr := make([]byte, bs)
	copy(hdr, "KDUMP   ")
	le.PutUint32(hdr[8:], 6)
	copy(hdr[12+65:], "testhost")
	copy(hdr[12+2*65:], "6.1.0-test")
	le.PutUint64(hdr[408:], 1700000000)
	le.PutUint32(hdr[424:], o.compress|o.status)
	le.PutUint32(hdr[428:], uint32(bs))
	le.PutUint32(hdr[432:], 1)
	bmBytes := (npages + 7) / 8
	bmBlocksHalf := (bmBytes + bs - 1) / bs
	le.PutUint32(hdr[436:], uint32(2*bmBlocksHalf))
	le.PutUint32(hdr[440:], uint32(npages))
	le.PutUint32(hdr[460:], 1)
	sub := make([]byte, bs)
	file := append(hdr, sub...)
	bm1 := make([]byte, bmBlocksHalf*bs)
	bm2 := make([]byte, bmBlocksHalf*bs)
	var dumped []int
	for i := 0; i < npages; i++ {
		if o.absent[i] {
			continue
		}
		bm1[i/8] |= 1 << (i % 8)
		if o.excluded[i] {
			continue
		}
		bm2[i/8] |= 1 << (i % 8)
		dumped = append(dumped, i)
	}
	file = append(file, bm1...)
	file = append(file, bm2...)
	descOff := len(file)
	file = append(file, make([]byte, pageDescSize*len(dumped))...)
	for k, pfn := range dumped {
		page := mem[pfn*testPage : (pfn+1)*testPage]
		data := compressTest(page, o.compress)
		flags := o.compress
		d := file[descOff+k*pageDescSize:]
		le.PutUint64(d, uint64(len(file)))
		le.PutUint32(d[8:], uint32(len(data)))
		le.PutUint32(d[12:], flags)
		file = append(file, data...)
	}
	// makedumpfile keeps VMCOREINFO and the notes inside the sub-header blocks.
	s := file[bs:]
	le.PutUint64(s[32:], uint64(bs+128))
	le.PutUint64(s[40:], uint64(len(vmci)))
	copy(s[128:], vmci)
	le.PutUint64(s[48:], uint64(bs+256))
	le.PutUint64(s[56:], uint64(len(notes)))
	copy(s[256:], notes)
	le.PutUint64(s[96:], uint64(npages))
	return file
}

// flatten writes a seekable file as the flattened format in records of at most
// chunk bytes, back to front, optionally
// repeating the header record with different bytes first (later wins).
func flatten(file []byte, chunk int, stale bool) []byte {
	return flattenOrder(file, chunk, stale, true)
}

// flattenOrder is flatten with a choice of record order.
func flattenOrder(file []byte, chunk int, stale, reverse bool) []byte {
	be := binary.BigEndian
	out := make([]byte, flatHeaderSize)
	copy(out, "makedumpfile")
	be.PutUint64(out[16:], 1)
	be.PutUint64(out[24:], 1)
	rec := func(off int, data []byte) {
		var h [16]byte
		be.PutUint64(h[:], uint64(off))
		be.PutUint64(h[8:], uint64(len(data)))
		out = append(out, h[:]...)
		out = append(out, data...)
	}
	if stale {
		rec(0, bytes.Repeat([]byte{0xee}, 600))
	}
	// Write the chunks back to front, as a writer that fills headers last would.
	var offs []int
	for off := 0; off < len(file); off += chunk {
		offs = append(offs, off)
	}
	for k := range offs {
		i := k
		if reverse {
			i = len(offs) - 1 - k
		}
		end := min(offs[i]+chunk, len(file))
		rec(offs[i], file[offs[i]:end])
	}
	var h [16]byte
	be.PutUint64(h[:], ^uint64(0))
	be.PutUint64(h[8:], ^uint64(0))
	return append(out, h[:]...)
}
