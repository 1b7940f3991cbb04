package kernel

import (
	"encoding/binary"
	"errors"
	"testing"
)

// a64Test is an arm64 kernel over mem: the linear map at PAGE_OFFSET maps
// physical 0 (PHYS_OFFSET 0), translation tables at physical pgd.
func a64Test(t testing.TB, mem []byte, pageShift uint, pgd uint64) (*Kernel, *arm64) {
	a := &arm64{vaBits: 48, pageShift: pageShift, physBits: 48,
		textLo: 0xffff800008000000, textHi: 0xffff800009000000,
		entryLo: 0xffff800008010000, entryHi: 0xffff800008011000,
		stackframeOff: 0x130, ptRegsSize: 0x140}
	k := &Kernel{Arch: a, PGD: pgd, pages: map[uint64][]byte{}, tlb: map[uint64]uint64{}}
	if tt, ok := t.(*testing.T); ok {
		k.Dump = physELF(tt, mem)
	}
	return k, a
}

func TestArm64Walk(t *testing.T) {
	const pg = 4096
	mem := make([]byte, 32*pg)
	va := uint64(0xffff000000201000) // a vmalloc-like address in the kernel half
	idx := func(sh uint) uint64 { return va >> sh & 511 }
	put(mem, 1*pg+idx(39)*8, 2*pg|3)
	put(mem, 2*pg+idx(30)*8, 3*pg|3)
	put(mem, 3*pg+idx(21)*8, 4*pg|3)
	put(mem, 4*pg+idx(12)*8, 10*pg|3)            // a page
	put(mem, 4*pg+(idx(12)+1)*8, 11*pg|1)        // a last-level entry with bit 1 clear: reserved
	put(mem, 3*pg+(idx(21)+1)*8, 0x200000|1)     // a 2 MiB block
	put(mem, 2*pg+(idx(30)+1)*8, 0x40000000|1)   // a 1 GiB block
	put(mem, 1*pg+(idx(39)+1)*8, 0x8000000000|1) // a block at level 0: not with 4 KiB pages
	k, a := a64Test(t, mem, 12, 1*pg)
	for _, c := range []struct {
		va   uint64
		pa   uint64
		fail bool
	}{
		{va + 0x123, 10*pg + 0x123, false},
		{va + pg, 0, true},
		{va + 2*pg, 0, true}, // no entry
		{va&^(1<<21-1) + 1<<21 + 0x1234, 0x200000 + 0x1234, false},
		{va&^(1<<30-1) + 1<<30 + 0x123456, 0x40000000 + 0x123456, false},
		{va&^(1<<39-1) + 1<<39, 0, true},
		{0x0000000000001000, 0, true}, // a user address: not TTBR1's
		{0x7fff000000001000, 0, true},
	} {
		pa, err := a.Walk(k, c.va)
		if c.fail {
			if !errors.Is(err, ErrNotMapped) {
				t.Errorf("%#x: %#x, %v; want not mapped", c.va, pa, err)
			}
			continue
		}
		if err != nil || pa != c.pa {
			t.Errorf("%#x: %#x, %v; want %#x", c.va, pa, err, c.pa)
		}
	}
	// The linear map and the image translate without the tables.
	a.kimageVoffset = 0xffff800008000000 - 0x4000
	if pa, ok := a.Linear(k, 0xffff800008000010); !ok || pa != 0x4010 {
		t.Errorf("image: %#x %v", pa, ok)
	}
	if pa, ok := a.Linear(k, 0xffff000000003000); !ok || pa != 0x3000 {
		t.Errorf("linear map: %#x %v", pa, ok)
	}
}

func TestArm64Walk64K(t *testing.T) {
	// 64 KiB granule, 48-bit VA: 3 levels of 13, 13 and 6 bits (the first).
	const pg = 1 << 16
	mem := make([]byte, 8*pg)
	va := uint64(0xffff000012340000)
	put(mem, 1*pg+(va>>42&63)*8, 2*pg|3)
	put(mem, 2*pg+(va>>29&8191)*8, 3*pg|3)
	put(mem, 3*pg+(va>>16&8191)*8, 5*pg|3)
	k, a := a64Test(t, mem, 16, pg)
	if pa, err := a.Walk(k, va+0x1234); err != nil || pa != 5*pg+0x1234 {
		t.Errorf("64 KiB page: %#x %v", pa, err)
	}
}

// stack builds frame records in mem (the linear map at physical 0).
func TestArm64Unwind(t *testing.T) {
	const pg = 4096
	mem := make([]byte, 8*pg)
	po := uint64(0xffff000000000000)
	le := binary.LittleEndian
	rec := func(fp, next, lr uint64) {
		le.PutUint64(mem[fp-po:], next)
		le.PutUint64(mem[fp-po+8:], lr)
	}
	text := uint64(0xffff800008001000)
	entry := uint64(0xffff800008010040) // in the entry text
	// pc in a handler; records: handler -> entry (the exception vector) -> pt_regs
	// stackframe -> interrupted function's caller -> final record.
	regs := po + 0x2000
	fpEntry := po + 0x1f00
	rec(fpEntry, regs+0x130, entry)
	le.PutUint64(mem[regs-po+32*8:], text+0x40) // pt_regs.pc
	le.PutUint64(mem[regs-po+29*8:], po+0x2400) // x29
	rec(regs+0x130, po+0x2400, text+0x40)       // kernel_entry's record: x29, ELR
	rec(po+0x2400, po+0x2500, text+0x200)       // the caller
	rec(po+0x2500, 0, 0)                        // the final record
	k, a := a64Test(t, mem, 12, 0)
	frames, err := a.unwindFP(k, text+0x800, po+0x1e00, fpEntry)
	if err != nil {
		t.Fatal(err)
	}
	var ips []uint64
	for _, f := range frames {
		ips = append(ips, f.IP)
	}
	want := []uint64{text + 0x800, entry, text + 0x40, text + 0x200}
	if len(ips) != len(want) {
		t.Fatalf("frames %#x, want %#x", ips, want)
	}
	for i := range want {
		if ips[i] != want[i] {
			t.Fatalf("frames %#x, want %#x", ips, want)
		}
	}
	if frames[1].A64 == nil || frames[1].A64.PC != text+0x40 || !frames[2].Exact {
		t.Errorf("the entry frame carries no exception registers: %+v", frames[1])
	}
	// A record pointing at itself, or down the stack, ends the walk.
	rec(po+0x2400, po+0x2400, text+0x200)
	frames, _ = a.unwindFP(k, text, po+0x1e00, po+0x2400)
	if len(frames) != 2 {
		t.Errorf("a looping record gave %d frames", len(frames))
	}
}

// FuzzArm64Walk translates addresses through hostile translation tables of every
// granule: never a panic, never more than one visit per level.
func FuzzArm64Walk(f *testing.F) {
	f.Add(make([]byte, 3*4096), uint64(0xffff000000201000), uint8(12), uint8(48))
	f.Add([]byte{3, 0x10, 0, 0, 0, 0, 0, 0}, uint64(0xffffffffffffffff), uint8(16), uint8(52))
	f.Fuzz(func(t *testing.T, mem []byte, va uint64, ps, vaBits uint8) {
		if len(mem) > 1<<16 {
			return
		}
		shift := []uint{12, 14, 16}[int(ps)%3]
		k, a := a64Test(t, append(mem, make([]byte, 8)...), shift, 0)
		a.vaBits = 25 + uint(vaBits)%28
		if vaBits&0x80 != 0 {
			a.physBits = 52
		}
		a.Walk(k, va)
		var b [16]byte
		k.ReadAt(b[:], va)
	})
}

// FuzzArm64Unwind unwinds hostile stacks (frame records, pt_regs and tables all
// from the input): never a panic, at most maxFrames frames.
func FuzzArm64Unwind(f *testing.F) {
	f.Add(make([]byte, 2*4096), uint64(0xffff800008001000), uint64(0xffff000000000100))
	f.Fuzz(func(t *testing.T, mem []byte, pc, fp uint64) {
		if len(mem) > 1<<16 {
			return
		}
		k, a := a64Test(t, append(mem, make([]byte, 8)...), 12, 0)
		frames, _ := a.unwindFP(k, pc, fp, fp)
		if len(frames) > maxFrames {
			t.Fatalf("%d frames", len(frames))
		}
	})
}
