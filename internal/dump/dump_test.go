package dump

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"testing"
)

func openBytes(t *testing.T, b []byte) *Dump {
	t.Helper()
	d, err := New(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return d
}

func checkPages(t *testing.T, d *Dump, mem []byte, skip map[int]bool) {
	t.Helper()
	for pfn := 0; pfn < len(mem)/testPage; pfn++ {
		if skip[pfn] {
			continue
		}
		got := make([]byte, testPage)
		if _, err := d.ReadAt(got, uint64(pfn*testPage)); err != nil {
			t.Fatalf("page %d: %v", pfn, err)
		}
		if !bytes.Equal(got, mem[pfn*testPage:(pfn+1)*testPage]) {
			t.Fatalf("page %d: wrong bytes %x…", pfn, got[:8])
		}
	}
	// A read spanning two pages.
	got := make([]byte, 100)
	if _, err := d.ReadAt(got, testPage-50); err == nil && !bytes.Equal(got, mem[testPage-50:testPage+50]) {
		t.Fatalf("spanning read: wrong bytes")
	}
}

func checkNotes(t *testing.T, d *Dump) {
	t.Helper()
	if !bytes.Contains(d.VMCOREINFO(), []byte("OSRELEASE=6.1.0-test")) {
		t.Errorf("VMCOREINFO = %q", d.VMCOREINFO())
	}
	if ps := d.PRStatus(); len(ps) != 1 || ps[0].PID != 7 || ps[0].Regs[RegRIP] != 0xffffffff81000010 {
		t.Errorf("PRStatus = %+v", ps)
	}
	if q := d.QEMUCPUs(); len(q) != 1 || q[0].CR[3] != 0x1000 {
		t.Errorf("QEMU CPUs = %+v", q)
	}
}

func TestELF(t *testing.T) {
	mem := testMem(8)
	d := openBytes(t, writeELF(mem, [][2]int{{0, 3}, {4, 8}}, false, 0))
	if d.Format() != FormatELF || d.Incomplete() {
		t.Errorf("format %q incomplete %v", d.Format(), d.Incomplete())
	}
	checkNotes(t, d)
	checkPages(t, d, mem, map[int]bool{3: true})
	if _, err := d.ReadAt(make([]byte, 8), 3*testPage); !errors.Is(err, ErrNotInDump) {
		t.Errorf("hole: err = %v, want ErrNotInDump", err)
	}
	if _, err := d.ReadAt(make([]byte, 8), 100*testPage); !errors.Is(err, ErrNotInDump) {
		t.Errorf("beyond: err = %v", err)
	}
	if got := fmt.Sprint(d.Ranges()); got != fmt.Sprint([][2]uint64{{0, 3 * testPage}, {4 * testPage, 8 * testPage}}) {
		t.Errorf("ranges %s", got)
	}
}

func TestELFExcludedAndIncomplete(t *testing.T) {
	mem := testMem(4)
	d := openBytes(t, writeELF(mem, [][2]int{{0, 4}}, true, 0))
	checkPages(t, d, mem, map[int]bool{3: true})
	if _, err := d.ReadAt(make([]byte, 8), 3*testPage+8); !errors.Is(err, ErrExcluded) {
		t.Errorf("excluded page: err = %v", err)
	}
	// makedumpfile's incomplete flag, with the file cut inside the segment.
	b := writeELF(mem, [][2]int{{0, 4}}, false, elfIncomplete)
	d = openBytes(t, b[:len(b)-2*testPage])
	if !d.Incomplete() {
		t.Error("incomplete flag lost")
	}
	if _, err := d.ReadAt(make([]byte, 8), 3*testPage); err == nil {
		t.Error("read past the cut succeeded")
	}
	checkPages(t, d, mem[:testPage], nil)
}

func TestELFOverlapFirstWins(t *testing.T) {
	mem := testMem(4)
	b := writeELF(mem, [][2]int{{0, 4}, {1, 2}}, false, 0)
	// Point the second segment's data at page 3's bytes: the first segment must win.
	ph := b[64+2*56:]
	binary.LittleEndian.PutUint64(ph[8:], binary.LittleEndian.Uint64(b[64+56+8:])+3*testPage)
	d := openBytes(t, b)
	checkPages(t, d, mem, nil)
}

func TestKdumpCompressions(t *testing.T) {
	mem := testMem(70) // more than 64 pages: two bitmap words
	for _, c := range []struct {
		name string
		how  uint32
	}{{"none", 0}, {"zlib", dumpZlib}, {"lzo", dumpLZO}, {"snappy", dumpSnappy}, {"zstd", dumpZstd}} {
		t.Run(c.name, func(t *testing.T) {
			excl := map[int]bool{5: true, 66: true}
			absent := map[int]bool{9: true}
			file := writeKdump(mem, kdumpOpts{compress: c.how, excluded: excl, absent: absent})
			d := openBytes(t, file)
			if d.Format() != FormatKdump || d.Kdump.Utsname[1] != "testhost" || d.Kdump.Timestamp.Unix() != 1700000000 {
				t.Errorf("header %+v", d.Kdump)
			}
			checkNotes(t, d)
			skip := map[int]bool{5: true, 66: true, 9: true}
			checkPages(t, d, mem, skip)
			if _, err := d.ReadAt(make([]byte, 8), 66*testPage); !errors.Is(err, ErrExcluded) {
				t.Errorf("excluded: err = %v", err)
			}
			if _, err := d.ReadAt(make([]byte, 8), 9*testPage); !errors.Is(err, ErrNotInDump) {
				t.Errorf("absent: err = %v", err)
			}
			if _, err := d.ReadAt(make([]byte, 8), 70*testPage); !errors.Is(err, ErrNotInDump) {
				t.Errorf("beyond max_mapnr: err = %v", err)
			}
			fd := openBytes(t, flatten(file, 1000, true))
			if fd.Format() != FormatKdumpFlat {
				t.Errorf("flattened format %q", fd.Format())
			}
			checkNotes(t, fd)
			checkPages(t, fd, mem, skip)
		})
	}
}

func TestKdumpIncomplete(t *testing.T) {
	mem := testMem(8)
	file := writeKdump(mem, kdumpOpts{compress: dumpZlib, status: dumpIncomplete})
	d := openBytes(t, file)
	if !d.Incomplete() {
		t.Fatal("incomplete flag lost")
	}
	// Zero the last page's descriptor, as makedumpfile leaves it when it stops early.
	bs := testPage
	descOff := bs * (2 + 2)
	clear(file[descOff+7*pageDescSize : descOff+8*pageDescSize])
	d = openBytes(t, file)
	if _, err := d.ReadAt(make([]byte, 8), 7*testPage); !errors.Is(err, ErrIncomplete) {
		t.Errorf("missing page: err = %v", err)
	}
	checkPages(t, d, mem, map[int]bool{7: true})
	// A flattened stream without its end marker is incomplete too.
	flat := flattenOrder(writeKdump(mem, kdumpOpts{compress: dumpZlib}), 512, false, false)
	fd := openBytes(t, flat[:len(flat)-16-512-16])
	if !fd.Incomplete() {
		t.Error("truncated flattened stream not flagged incomplete")
	}
}

func TestCorruptHeaders(t *testing.T) {
	mem := testMem(8)
	le := binary.LittleEndian
	kd := writeKdump(mem, kdumpOpts{compress: dumpZlib})
	el := writeELF(mem, [][2]int{{0, 8}}, false, 0)
	cases := map[string]func() []byte{
		"empty":           func() []byte { return nil },
		"garbage":         func() []byte { return bytes.Repeat([]byte{0x5a}, 8192) },
		"block size":      func() []byte { b := clone(kd); le.PutUint32(b[428:], 3000); return b },
		"bitmap blocks":   func() []byte { b := clone(kd); le.PutUint32(b[436:], 1<<30); return b },
		"max mapnr":       func() []byte { b := clone(kd); le.PutUint64(b[testPage+96:], 1<<40); return b },
		"sub header":      func() []byte { b := clone(kd); le.PutUint32(b[432:], 1<<30); return b },
		"note size":       func() []byte { b := clone(kd); le.PutUint64(b[testPage+56:], 1<<62); return b },
		"elf phnum":       func() []byte { b := clone(el); le.PutUint16(b[56:], 0xfff0); return b },
		"elf phentsize":   func() []byte { b := clone(el); le.PutUint16(b[54:], 32); return b },
		"elf segment":     func() []byte { b := clone(el); le.PutUint64(b[64+56+32:], 1<<50); return b },
		"elf note":        func() []byte { b := clone(el); le.PutUint32(b[64+56*2+4:], 1<<30); return b },
		"elf 32-bit":      func() []byte { b := clone(el); b[4] = 1; return b },
		"flat type":       func() []byte { b := flatten(kd, 4096, false); b[23] = 2; return b },
		"flat record":     func() []byte { b := flatten(kd, 4096, false); binary.BigEndian.PutUint64(b[4096:], 1<<63); return b },
		"flat not kdump":  func() []byte { b := flatten(el, 4096, false); return b },
		"kdump truncated": func() []byte { return kd[:testPage+100] },
	}
	for name, mk := range cases {
		b := mk()
		d, err := New(bytes.NewReader(b), int64(len(b)))
		if err == nil {
			// A few corruptions only show when reading: then the read must fail cleanly.
			_, err = d.ReadAt(make([]byte, testPage), 0)
		}
		if err == nil && name != "elf note" {
			t.Errorf("%s: no error", name)
		}
	}
	if _, err := New(bytes.NewReader([]byte("hello world, not a dump")), 23); !errors.Is(err, ErrUnknownFormat) {
		t.Errorf("unknown: %v", err)
	}
}

func TestCorruptPageData(t *testing.T) {
	mem := testMem(4)
	for _, how := range []uint32{dumpZlib, dumpLZO, dumpSnappy, dumpZstd} {
		b := writeKdump(mem, kdumpOpts{compress: how})
		// Point every descriptor at the header bytes, which decompress to nonsense.
		descOff := testPage * 4
		for i := 0; i < 4; i++ {
			binary.LittleEndian.PutUint64(b[descOff+i*pageDescSize:], 16)
		}
		d := openBytes(t, b)
		if _, err := d.ReadAt(make([]byte, 8), 0); err == nil {
			t.Errorf("compression %#x: corrupt page read without error", how)
		}
	}
}

func clone(b []byte) []byte { return append([]byte(nil), b...) }
