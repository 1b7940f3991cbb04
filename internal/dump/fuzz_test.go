package dump

import (
	"bytes"
	"testing"
)

// fuzzDump opens b and reads a few pages: neither may panic, and no read may
// allocate from an unchecked field (the fuzzer's memory limit catches that).
func fuzzDump(t *testing.T, b []byte) {
	d, err := New(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		return
	}
	buf := make([]byte, testPage+16)
	for _, r := range d.Ranges() {
		d.ReadAt(buf, r[0])
		d.ReadAt(buf[:16], r[1]-8)
		break
	}
	d.ReadAt(buf, 0)
}

func FuzzELF(f *testing.F) {
	mem := testMem(3)
	f.Add(writeELF(mem, [][2]int{{0, 1}, {2, 3}}, true, 0))
	f.Fuzz(fuzzDump)
}

func FuzzKdump(f *testing.F) {
	mem := testMem(3)
	for _, c := range []uint32{0, dumpZlib, dumpLZO, dumpSnappy, dumpZstd} {
		f.Add(writeKdump(mem, kdumpOpts{compress: c, excluded: map[int]bool{1: true}}))
	}
	f.Fuzz(fuzzDump)
}

func FuzzFlat(f *testing.F) {
	mem := testMem(2)
	f.Add(flatten(writeKdump(mem, kdumpOpts{compress: dumpZlib}), 700, true))
	f.Fuzz(fuzzDump)
}

func FuzzNotes(f *testing.F) {
	f.Add(testNotes())
	f.Fuzz(func(t *testing.T, b []byte) {
		parseNotes(&Dump{}, b)
	})
}
