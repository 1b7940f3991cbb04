package dump

import (
	"bufio"
	"bytes"
	"compress/zlib"
	"debug/elf"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"strconv"
	"time"

	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/zstd"
)

// WriteKdumpFromELF converts an ELF vmcore (kdump's /proc/vmcore copy or QEMU's
// dump-guest-memory) into makedumpfile's seekable kdump-compressed format
// (makedumpfile/diskdump_mod.h: header version 6, dump level 0: every page present in
// the ELF is dumped), each page compressed with comp: "zlib", "snappy" or "zstd". The
// ELF notes (NT_PRSTATUS per CPU, VMCOREINFO, QEMU's) are copied into the sub-header.
//
// It exists for the crash lab: Debian's makedumpfile is built without snappy and zstd,
// so the lab writes those dumps itself and checks them with crash, which reads both.
// Cost: one pass over the memory; pages that do not compress are stored as they are.
func WriteKdumpFromELF(in, out, comp string) (err error) {
	var flag uint32
	var compress func([]byte) []byte
	switch comp {
	case "zlib":
		flag = 0x1
		compress = func(p []byte) []byte {
			var b bytes.Buffer
			w := zlib.NewWriter(&b)
			w.Write(p)
			w.Close()
			return b.Bytes()
		}
	case "snappy":
		flag = 0x4
		compress = func(p []byte) []byte { return s2.EncodeSnappy(nil, p) }
	case "zstd":
		flag = 0x20
		enc, err := zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1))
		if err != nil {
			return err
		}
		defer enc.Close()
		compress = func(p []byte) []byte { return enc.EncodeAll(p, nil) }
	default:
		return fmt.Errorf("kdump writer: compression %q (want zlib, snappy or zstd)", comp)
	}
	f, err := elf.Open(in)
	if err != nil {
		return fmt.Errorf("%s: %w", in, err)
	}
	defer f.Close()
	const bs = 4096
	var loads []*elf.Prog
	var notes []byte
	var maxAddr uint64
	for _, p := range f.Progs {
		switch p.Type {
		case elf.PT_LOAD:
			loads = append(loads, p)
			maxAddr = max(maxAddr, p.Paddr+p.Memsz)
		case elf.PT_NOTE:
			b, err := io.ReadAll(p.Open())
			if err != nil {
				return fmt.Errorf("%s: notes: %w", in, err)
			}
			notes = append(notes, b...)
		}
	}
	if len(loads) == 0 {
		return fmt.Errorf("%s: no PT_LOAD segments", in)
	}
	vmcoreinfo, ncpus := scanELFNotes(notes)
	maxMapnr := (maxAddr + bs - 1) / bs
	// page returns physical page pfn from the ELF (false when no segment has it).
	page := func(pfn uint64, buf []byte) bool {
		clear(buf)
		found := false
		a := pfn * bs
		for _, p := range loads {
			if a+bs <= p.Paddr || a >= p.Paddr+p.Filesz {
				continue
			}
			lo, hi := max(a, p.Paddr), min(a+bs, p.Paddr+p.Filesz)
			if _, err := p.ReadAt(buf[lo-a:hi-a], int64(lo-p.Paddr)); err == nil {
				found = true
			}
		}
		return found
	}
	bmBytes := (maxMapnr + 7) / 8
	bmBlocks := (bmBytes + bs - 1) / bs
	bitmap := make([]byte, bmBlocks*bs)
	buf := make([]byte, bs)
	var dumped []uint64
	for pfn := uint64(0); pfn < maxMapnr; pfn++ {
		a := pfn * bs
		for _, p := range loads {
			if a < p.Paddr+p.Filesz && a+bs > p.Paddr {
				bitmap[pfn/8] |= 1 << (pfn % 8)
				dumped = append(dumped, pfn)
				break
			}
		}
	}
	subLen := 512 + len(vmcoreinfo) + 8 + len(notes)
	subBlocks := (subLen + bs - 1) / bs
	vmciOff := uint64(bs + 512)
	noteOff := (vmciOff + uint64(len(vmcoreinfo)) + 7) &^ 7
	bmOff := uint64(bs + subBlocks*bs)
	descOff := bmOff + 2*bmBlocks*bs
	dataOff := descOff + uint64(len(dumped))*pageDescSize

	le := binary.LittleEndian
	hdr := make([]byte, bs)
	copy(hdr, "KDUMP   ")
	le.PutUint32(hdr[8:], 6)
	// struct new_utsname: sysname, nodename, release, version, machine, domainname.
	copy(hdr[12:], "Linux")
	copy(hdr[12+2*65:], vmcoreinfoValue(vmcoreinfo, "OSRELEASE"))
	copy(hdr[12+4*65:], "x86_64")
	crash := time.Now().Unix()
	if v, err := strconv.ParseInt(vmcoreinfoValue(vmcoreinfo, "CRASHTIME"), 10, 64); err == nil {
		crash = v
	}
	le.PutUint64(hdr[408:], uint64(crash))
	le.PutUint32(hdr[424:], flag)
	le.PutUint32(hdr[428:], bs)
	le.PutUint32(hdr[432:], uint32(subBlocks))
	le.PutUint32(hdr[436:], uint32(2*bmBlocks))
	le.PutUint32(hdr[440:], uint32(min(maxMapnr, 0xffffffff)))
	le.PutUint32(hdr[460:], uint32(ncpus))
	if kdumpHdrFixed+8*ncpus > bs {
		return fmt.Errorf("%s: %d CPUs do not fit the header block", in, ncpus)
	}
	sub := make([]byte, subBlocks*bs)
	physBase, _ := strconv.ParseInt(vmcoreinfoValue(vmcoreinfo, "NUMBER(phys_base)"), 10, 64)
	le.PutUint64(sub[0:], uint64(physBase))
	le.PutUint64(sub[32:], vmciOff)
	le.PutUint64(sub[40:], uint64(len(vmcoreinfo)))
	le.PutUint64(sub[48:], noteOff)
	le.PutUint64(sub[56:], uint64(len(notes)))
	le.PutUint64(sub[88:], maxMapnr) // end_pfn_64
	le.PutUint64(sub[96:], maxMapnr) // max_mapnr_64
	copy(sub[vmciOff-bs:], vmcoreinfo)
	copy(sub[noteOff-bs:], notes)

	o, err := os.Create(out)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := o.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			os.Remove(out)
		}
	}()
	w := bufio.NewWriterSize(o, 1<<20)
	for _, b := range [][]byte{hdr, sub, bitmap, bitmap} { // bitmap 1 (in RAM) = bitmap 2 (dumped)
		if _, err := w.Write(b); err != nil {
			return err
		}
	}
	descs := make([]byte, len(dumped)*pageDescSize)
	if _, err := w.Write(descs); err != nil { // filled in below
		return err
	}
	pos := dataOff
	for i, pfn := range dumped {
		page(pfn, buf)
		data, fl := compress(buf), flag
		if len(data) >= bs {
			data, fl = buf, 0
		}
		d := descs[i*pageDescSize:]
		le.PutUint64(d, pos)
		le.PutUint32(d[8:], uint32(len(data)))
		le.PutUint32(d[12:], fl)
		if _, err := w.Write(data); err != nil {
			return err
		}
		pos += uint64(len(data))
	}
	if err := w.Flush(); err != nil {
		return err
	}
	_, err = o.WriteAt(descs, int64(descOff))
	return err
}

// scanELFNotes returns the VMCOREINFO note's text and the number of NT_PRSTATUS notes.
func scanELFNotes(b []byte) (vmcoreinfo []byte, prstatus int) {
	le := binary.LittleEndian
	for len(b) >= 12 {
		nsz, dsz, typ := le.Uint32(b), le.Uint32(b[4:]), le.Uint32(b[8:])
		n, d := (uint64(nsz)+3)&^3, (uint64(dsz)+3)&^3
		if 12+n+d > uint64(len(b)) {
			break
		}
		name := string(bytes.TrimRight(b[12:12+uint64(nsz)], "\x00"))
		desc := b[12+n : 12+n+uint64(dsz)]
		switch {
		case name == "VMCOREINFO":
			vmcoreinfo = append([]byte(nil), desc...)
		case name == "CORE" && typ == 1:
			prstatus++
		}
		b = b[12+n+d:]
	}
	return vmcoreinfo, prstatus
}

// vmcoreinfoValue returns the value of KEY=value in a VMCOREINFO text.
func vmcoreinfoValue(vmci []byte, key string) string {
	for _, l := range bytes.Split(vmci, []byte("\n")) {
		if k, v, ok := bytes.Cut(l, []byte("=")); ok && string(k) == key {
			return string(v)
		}
	}
	return ""
}
