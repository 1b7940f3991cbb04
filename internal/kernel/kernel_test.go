package kernel

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"

	"github.com/kcrash/kcrash/internal/dump"
)

// physELF wraps mem as a one-segment ELF vmcore (include/uapi/linux/elf.h layout).
func physELF(t *testing.T, mem []byte) *dump.Dump {
	t.Helper()
	le := binary.LittleEndian
	h := make([]byte, 64+56)
	copy(h, "\x7fELF\x02\x01\x01")
	le.PutUint16(h[16:], 4)
	le.PutUint16(h[18:], 62)
	le.PutUint64(h[32:], 64)
	le.PutUint16(h[54:], 56)
	le.PutUint16(h[56:], 1)
	p := h[64:]
	le.PutUint32(p, 1)
	le.PutUint64(p[8:], uint64(len(h)))
	le.PutUint64(p[32:], uint64(len(mem)))
	le.PutUint64(p[40:], uint64(len(mem)))
	b := append(h, mem...)
	d, err := dump.New(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func put(mem []byte, addr, v uint64) { binary.LittleEndian.PutUint64(mem[addr:], v) }

func TestWalk(t *testing.T) {
	mem := make([]byte, 64*pageSize)
	// 4-level: PGD at page 1, PUD 2, PMD 3, PT 4; data page 10; a 2 MiB page at 2 MiB… kept
	// within the small memory by pointing the huge PMD entry at physical 0.
	va := uint64(0xffff888000001000)
	idx := func(sh uint) uint64 { return (va >> sh) & 511 }
	put(mem, 1*pageSize+idx(39)*8, 2*pageSize|ptePresent)
	put(mem, 2*pageSize+idx(30)*8, 3*pageSize|ptePresent)
	put(mem, 3*pageSize+idx(21)*8, 4*pageSize|ptePresent)
	put(mem, 4*pageSize+idx(12)*8, 10*pageSize|ptePresent)
	copy(mem[10*pageSize+0x123:], "hello")
	huge := va + 1<<21 // next PMD slot: a 2 MiB page at physical 0
	put(mem, 3*pageSize+((huge>>21)&511)*8, 0|ptePresent|ptePSE)
	k := &Kernel{Arch: x86{}, Dump: physELF(t, mem), PGD: pageSize, pages: map[uint64][]byte{}, tlb: map[uint64]uint64{}}
	got := make([]byte, 5)
	if _, err := k.ReadAt(got, va+0x123); err != nil || string(got) != "hello" {
		t.Fatalf("4-level read: %q %v", got, err)
	}
	if pa, err := k.VirtToPhys(huge + 0x5678); err != nil || pa != (huge+0x5678)&(1<<21-1) {
		t.Errorf("2 MiB page: %#x %v", pa, err)
	}
	if _, err := k.VirtToPhys(va + 2*pageSize); !errors.Is(err, ErrNotMapped) {
		t.Errorf("unmapped: %v", err)
	}
	// 5-level: a P4D level in front (page 5 as the root).
	k5 := &Kernel{Arch: x86{}, Dump: k.Dump, PGD: 5 * pageSize, L5: true, pages: map[uint64][]byte{}, tlb: map[uint64]uint64{}}
	put(mem, 5*pageSize+((va>>48)&511)*8, 1*pageSize|ptePresent)
	k5.Dump = physELF(t, mem)
	if _, err := k5.ReadAt(got, va+0x123); err != nil || string(got) != "hello" {
		t.Fatalf("5-level read: %q %v", got, err)
	}
	// Kernel text translates by phys_base without the page tables.
	kt := &Kernel{Arch: x86{}, Dump: k.Dump, PhysBase: 10 * pageSize, pages: map[uint64][]byte{}, tlb: map[uint64]uint64{}}
	if _, err := kt.ReadAt(got, startKernelMap+0x123); err != nil || string(got) != "hello" {
		t.Errorf("kernel text read: %q %v", got, err)
	}
}

func TestParseLegacy(t *testing.T) {
	// struct printk_log: u64 ts_nsec; u16 len, text_len, dict_len; u8 facility; u8 flags:5, level:3.
	const hdr = 16
	rec := func(ts uint64, level uint8, text string) []byte {
		l := (hdr + len(text) + 7) &^ 7
		b := make([]byte, l)
		binary.LittleEndian.PutUint64(b, ts)
		binary.LittleEndian.PutUint16(b[8:], uint16(l))
		binary.LittleEndian.PutUint16(b[10:], uint16(len(text)))
		b[15] = level << 5
		copy(b[hdr:], text)
		return b
	}
	ring := make([]byte, 128)
	a := rec(1e9, 6, "second")
	b := rec(2e9, 3, "third record")
	first := rec(5e8, 4, "first")
	// Layout: [second][third][wrap marker … ][first]: the oldest record sits at the end.
	copy(ring, a)
	copy(ring[len(a):], b)
	firstIdx := 128 - len(first)
	copy(ring[firstIdx:], first)
	got := parseLegacy(ring, uint32(firstIdx), uint32(len(a)+len(b)), hdr, 0, 8, 10)
	var texts []string
	for _, r := range got {
		texts = append(texts, string(r.Text))
	}
	if len(got) != 3 || texts[0] != "first" || texts[2] != "third record" || got[2].Level != 3 || got[0].TsNsec != 5e8 {
		t.Fatalf("records %q %+v", texts, got)
	}
}

func TestStateName(t *testing.T) {
	for s, want := range map[uint32]string{0: "RU", 1: "IN", 2: "UN", 0x402: "ID", 0x20: "ZO", 0x10: "DE", 4: "ST", 8: "TR", 0x40: "PA"} {
		if got := stateName(s); got != want {
			t.Errorf("stateName(%#x) = %s, want %s", s, got, want)
		}
	}
}

func TestDecodeORC(t *testing.T) {
	// sp_offset 16, bp_offset -16, sp_reg SP (5), bp_reg PREV_SP (1), then the sixth byte.
	head := []byte{16, 0, 0xf0, 0xff, 5 | 1<<4}
	for _, c := range []struct {
		name   string
		layout orcLayout
		b5     byte
		typ    uint8
		end    bool
		signal bool
	}{
		// 4.14–6.3: type:2 (CALL 0, REGS 1, REGS_PARTIAL 2), end:1.
		{"old call", orcLayoutOld, 0, orcTypeCall, false, false},
		{"old regs end", orcLayoutOld, 1 | 1<<2, orcTypeRegs, true, false},
		{"old regs partial", orcLayoutOld, 2, orcTypeRegsIRET, false, false},
		// 6.4+: type:3 (UNDEFINED 0, END_OF_STACK 1, CALL 2, REGS 3, REGS_PARTIAL 4), signal:1.
		{"new undefined", orcLayoutNew, 0, orcTypeUndefined, false, false},
		{"new end of stack", orcLayoutNew, 1, orcTypeEnd, false, false},
		{"new call", orcLayoutNew, 2, orcTypeCall, false, false},
		{"new call signal", orcLayoutNew, 2 | 1<<3, orcTypeCall, false, true},
		{"new regs", orcLayoutNew, 3 | 1<<3, orcTypeRegs, false, true},
		{"new regs partial", orcLayoutNew, 4 | 1<<3, orcTypeRegsIRET, false, true},
		{"new reserved type", orcLayoutNew, 7, orcTypeUndefined, false, false},
	} {
		e := decodeORC(append(append([]byte{}, head...), c.b5), c.layout)
		if e.spOff != 16 || e.bpOff != -16 || e.spReg != orcRegSP || e.bpReg != orcRegPrevSP || e.typ != c.typ || e.end != c.end || e.signal != c.signal {
			t.Errorf("%s: %+v", c.name, e)
		}
	}
	for rel, want := range map[string]bool{"6.1.0-57-cloud-amd64": false, "6.3.13": false, "6.4.0": true, "6.12.117+deb12-cloud-amd64": true, "7.0": true, "5.19.1": false, "": false, "x": false} {
		if got := releaseAtLeast(rel, 6, 4); got != want {
			t.Errorf("releaseAtLeast(%q, 6, 4) = %v", rel, got)
		}
	}
	tb := &orcTable{ips: []uint64{0x100, 0x200}, entries: make([]byte, 12)}
	if _, ok := tb.find(0xff); ok {
		t.Error("found an entry before the first IP")
	}
	if _, ok := tb.find(0x250); !ok {
		t.Error("no entry after the last IP")
	}
}

func TestParseVMCOREINFO(t *testing.T) {
	m := ParseVMCOREINFO([]byte("OSRELEASE=6.1.0\nKERNELOFFSET=15000000\nSYMBOL(prb)=ffffffff82a0b0c0\n"))
	if m["KERNELOFFSET"] != "15000000" || m["SYMBOL(prb)"] != "ffffffff82a0b0c0" || len(m) != 3 {
		t.Errorf("%v", m)
	}
}
