package kernel

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Page-table entry bits (arch/x86/include/asm/pgtable_types.h).
const (
	ptePresent = 1 << 0
	ptePSE     = 1 << 7             // a huge page at the PUD (1 GiB) or PMD (2 MiB) level
	pteAddr    = 0x000ffffffffff000 // PTE_PFN_MASK for 52-bit physical addresses
)

// ErrNotMapped is returned for virtual addresses the page tables do not map.
var ErrNotMapped = errors.New("not mapped")

// walk translates va through the page table at k.PGD: 4 levels (PGD, PUD,
// PMD, PTE; 9 bits each above a 12-bit offset) or 5 with a P4D when L5 is
// set; it stops at a non-present entry or a huge page.
func (k *Kernel) walk(va uint64) (uint64, error) {
	table := k.PGD
	shifts := []uint{39, 30, 21, 12}
	if k.L5 {
		shifts = []uint{48, 39, 30, 21, 12}
	}
	mask := uint64(pteAddr) &^ k.smeMask
	var b [8]byte
	for level, sh := range shifts {
		idx := (va >> sh) & 511
		if err := k.ReadPhys(b[:], table+idx*8); err != nil {
			return 0, fmt.Errorf("page table entry for %#x at %#x: %w", va, table+idx*8, err)
		}
		e := binary.LittleEndian.Uint64(b[:])
		if e&ptePresent == 0 {
			return 0, fmt.Errorf("virtual address %#x: %w", va, ErrNotMapped)
		}
		if sh != 12 && sh <= 30 && e&ptePSE != 0 {
			size := uint64(1) << sh
			return (e & mask &^ (size - 1)) | va&(size-1), nil
		}
		if level == len(shifts)-1 {
			return e&mask | va&0xfff, nil
		}
		table = e & mask
	}
	return 0, fmt.Errorf("virtual address %#x: %w", va, ErrNotMapped)
}
