package kernel

import (
	"errors"
	"testing"
)

// listKernel returns a Kernel over 16 pages of memory seen through the
// kernel-image mapping (startKernelMap + x is physical x).
func listKernel(t *testing.T, mem []byte) *Kernel {
	return &Kernel{Arch: x86{}, Dump: physELF(t, mem), pages: map[uint64][]byte{}, tlb: map[uint64]uint64{}}
}

func TestListWalk(t *testing.T) {
	const base = startKernelMap
	node := func(i int) uint64 { return base + 0x1000 + uint64(i)*0x40 }
	for _, c := range []struct {
		name    string
		next    []int // next[i] is the index node i points to; -1 is NULL
		max     int
		want    int
		wantErr error
	}{
		{"circular back to the head", []int{1, 2, 3, 0}, 0, 4, nil},
		{"NULL-terminated chain", []int{1, 2, -1}, 0, 3, nil},
		{"empty list (head points to itself)", []int{0}, 0, 1, nil},
		{"cycle not through the head", []int{1, 2, 3, 1}, 0, 4, ErrListCycle},
		{"self-loop after the head", []int{1, 1}, 0, 2, ErrListCycle},
		{"cap", []int{1, 2, 3, 4, 5, 0}, 3, 3, ErrListTooLong},
	} {
		t.Run(c.name, func(t *testing.T) {
			mem := make([]byte, 16*pageSize)
			for i, n := range c.next {
				v := uint64(0)
				if n >= 0 {
					v = node(n)
				}
				put(mem, node(i)-base+8, v) // next pointer at offset 8
			}
			k := listKernel(t, mem)
			got, err := k.ListWalk(node(0), 8, c.max)
			if len(got) != c.want || !errors.Is(err, c.wantErr) {
				t.Errorf("ListWalk: %d nodes, %v; want %d, %v", len(got), err, c.want, c.wantErr)
			}
		})
	}
	// An unreadable next pointer ends the walk with the read error.
	k := listKernel(t, make([]byte, pageSize))
	if got, err := k.ListWalk(base+2*pageSize, 0, 0); err == nil || len(got) != 1 {
		// the head itself is returned with the error
		t.Errorf("unreadable: %d nodes, %v", len(got), err)
	}
}

func TestMapleEntries(t *testing.T) {
	const base = startKernelMap
	mem := make([]byte, 16*pageSize)
	// A root maple_range_64 node at 0x1000 (type 2) with two leaves
	// (maple_leaf_64, type 1) at 0x1100 and 0x1200; its pivots split the
	// range at 0x5fff; metadata end 1.
	enode := func(addr uint64, typ uint64) uint64 { return base + addr | typ<<3 | 2 }
	root := uint64(0x1000)
	put(mem, root+8, 0x5fff)                  // pivot 0
	put(mem, root+8+8*15, enode(0x1100, 1))   // slot 0
	put(mem, root+8+8*15+8, enode(0x1200, 1)) // slot 1
	mem[root+8+8*15+8*15] = 1                 // metadata end
	leaf := func(addr uint64, piv []uint64, slots []uint64, end byte) {
		for i, p := range piv {
			put(mem, addr+8+8*uint64(i), p)
		}
		for i, s := range slots {
			put(mem, addr+128+8*uint64(i), s)
		}
		mem[addr+128+8*15] = end
	}
	// Leaf 1: [0,0x3fff] NULL, [0x4000,0x5fff] VMA A; stale slot 2 past the end.
	leaf(0x1100, []uint64{0x3fff, 0x5fff}, []uint64{0, 0xaaaa0, 0xdead0}, 1)
	// Leaf 2: VMA B, VMA C.
	leaf(0x1200, []uint64{0x7fff, 0x9fff}, []uint64{0xbbbb0, 0xcccc0}, 1)
	k := listKernel(t, mem)
	got, err := k.mapleEntries(enode(root, 2))
	if err != nil || len(got) != 3 || got[0] != 0xaaaa0 || got[1] != 0xbbbb0 || got[2] != 0xcccc0 {
		t.Errorf("mapleEntries = %x, %v", got, err)
	}
	// A node pointing at itself is bounded by the depth limit, not a loop.
	put(mem, root+8+8*15, enode(root, 2))
	k = listKernel(t, mem)
	if _, err := k.mapleEntries(enode(root, 2)); err == nil {
		t.Error("self-referencing maple node: no error")
	}
}
