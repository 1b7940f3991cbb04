package kernel

import (
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"

	"github.com/kcrash/kcrash/internal/dump"
)

// x86-64 constants (arch/x86/include/asm/page_64_types.h).
const (
	startKernelMap = 0xffffffff80000000 // __START_KERNEL_map
	kernelImageEnd = 0xffffffffc0000000 // __START_KERNEL_map + KERNEL_IMAGE_SIZE (1 GiB with KASLR)
	linkText       = 0xffffffff81000000 // _text's link address without KASLR
)

func init() { RegisterArch(elf.EM_X86_64, func() Arch { return x86{} }) }

// x86 is x86-64: 4- or 5-level paging, ORC unwinding, struct pt_regs.
type x86 struct{}

func (x86) Name() string { return "x86_64" }

func (x86) Relocated(addr uint64) bool { return addr >= startKernelMap }

func (x86) Image(k *Kernel) (uint64, uint64) { return startKernelMap + k.Offset, kernelImageEnd }

func (x86) Linear(k *Kernel, va uint64) (uint64, bool) {
	if va >= startKernelMap && va < kernelImageEnd {
		return va - startKernelMap + k.PhysBase, true
	}
	return 0, false
}

func (x86) Walk(k *Kernel, va uint64) (uint64, error) { return k.walk(va) }

// Locate takes the KASLR offset from VMCOREINFO's KERNELOFFSET, else from
// QEMU's CR3 by a page-table walk; the page table is init_top_pgt.
func (x86) Locate(k *Kernel) error {
	if s, ok := k.Info["NUMBER(sme_mask)"]; ok {
		k.smeMask, _ = strconv.ParseUint(s, 10, 64)
	}
	k.L5 = k.Info["NUMBER(pgtable_l5_enabled)"] == "1"
	if off, ok := k.Info["KERNELOFFSET"]; ok {
		o, err := strconv.ParseUint(off, 16, 64)
		if err != nil {
			return fmt.Errorf("VMCOREINFO KERNELOFFSET=%q: %w", off, err)
		}
		k.Offset, k.OffsetFrom = o, "VMCOREINFO"
		pb, err := strconv.ParseInt(k.Info["NUMBER(phys_base)"], 10, 64)
		if err != nil && k.Dump.Kdump != nil {
			pb = int64(k.Dump.Kdump.PhysBase)
		}
		k.PhysBase = uint64(pb)
	} else if err := k.offsetFromCR3(); err != nil {
		return fmt.Errorf("no VMCOREINFO KERNELOFFSET, and the CR3 walk failed: %w", err)
	}
	pgd, err := k.symbol("init_top_pgt")
	if err != nil {
		return err
	}
	k.PGD = pgd - startKernelMap + k.PhysBase
	return nil
}

// offsetFromCR3 recovers KASLR from QEMU's CPU notes: the first 2 MiB page
// mapped in the kernel-image range of the page table CR3 points at is _text's,
// rounded down (arch/x86/kernel/head64.c maps the image from its start).
func (k *Kernel) offsetFromCR3() error {
	cpus := k.Dump.QEMUCPUs()
	if len(cpus) == 0 {
		return errors.New("no QEMU CPU notes")
	}
	// Clear the PCID bits and PTI's user-half bit 12.
	k.PGD = cpus[0].CR[3] & 0x000ffffffffff000 &^ (1 << 12)
	k.L5 = cpus[0].CR[4]&(1<<12) != 0 // CR4.LA57
	for va := uint64(startKernelMap); va < kernelImageEnd; va += 2 << 20 {
		pa, err := k.walk(va)
		if err != nil {
			continue
		}
		k.Offset = va - linkText
		k.PhysBase = pa - (va - startKernelMap)
		k.OffsetFrom = "CR3 page-table walk"
		k.clearCaches()
		return nil
	}
	return errors.New("no kernel text mapped under CR3")
}

// TaskFrames unwinds a task: from its CPU's registers when it was running
// (NT_PRSTATUS of its CPU, else QEMU's CPU note), else from the switch frame
// at thread.sp (arch/x86/include/asm/switch_to.h: struct inactive_task_frame:
// r15, r14, r13, r12, bx, bp, ret_addr).
func (x86) TaskFrames(k *Kernel, t *Task) ([]Frame, error) {
	if t.Active {
		if ps := k.Dump.PRStatus(); t.CPU < len(ps) {
			r := ps[t.CPU].Regs
			return k.Unwind(r[dump.RegRIP], r[dump.RegRSP], r[dump.RegRBP], true)
		}
		if q := k.Dump.QEMUCPUs(); t.CPU < len(q) {
			return k.Unwind(q[t.CPU].RIP, q[t.CPU].RSP, q[t.CPU].RBP, true)
		}
	}
	var b [56]byte
	if _, err := k.ReadAt(b[:], t.SP); err != nil {
		return nil, fmt.Errorf("switch frame of task %#x: %w", t.Addr, err)
	}
	bp := binary.LittleEndian.Uint64(b[40:])
	ret := binary.LittleEndian.Uint64(b[48:])
	return k.Unwind(ret, t.SP+56, bp, false)
}

// CurrentTask reads per-CPU current_task (6.1) or pcpu_hot.current_task (6.2+).
func (x86) CurrentTask(k *Kernel, cpu int) (uint64, error) {
	if a, err := k.PerCPU("current_task", cpu); err == nil {
		return k.U64(a)
	}
	a, err := k.PerCPU("pcpu_hot", cpu)
	if err != nil {
		return 0, err
	}
	off, _, err := k.Vmlinux.MemberOffset("pcpu_hot", "current_task")
	if err != nil {
		return 0, err
	}
	return k.U64(a + uint64(off))
}

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
