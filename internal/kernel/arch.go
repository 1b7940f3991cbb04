package kernel

import (
	"debug/elf"
	"fmt"
)

// Arch is what differs between the architectures a dump can come from: where
// the kernel image sits and how its addresses translate, and how a task's
// kernel stack unwinds. The Kernel holds one, chosen by the vmlinux's ELF
// machine (see RegisterArch); everything else (symbols, types, printk, tasks,
// modules) is shared.
type Arch interface {
	// Name is the architecture as uname -m prints it ("x86_64", "aarch64").
	Name() string
	// Locate sets k.Offset, k.OffsetFrom, k.PhysBase and k.PGD (and any paging
	// mode the arch keeps) from k.Info (VMCOREINFO) or the dump's CPU notes.
	Locate(k *Kernel) error
	// Walk translates a kernel virtual address through the page tables at k.PGD.
	Walk(k *Kernel, va uint64) (uint64, error)
	// Linear translates va without a table walk when it lies in a linearly
	// mapped range (the kernel image), else reports false.
	Linear(k *Kernel, va uint64) (uint64, bool)
	// Image is the runtime virtual range [lo, hi) that the vmlinux's symbols
	// (relocated by k.Offset) may name.
	Image(k *Kernel) (lo, hi uint64)
	// Relocated reports whether a link-time symbol address moves with KASLR
	// (per-CPU symbols are offsets and do not).
	Relocated(linkAddr uint64) bool
	// TaskFrames unwinds a task's kernel stack: from its CPU's registers when
	// it was running at the time of the dump, else from its saved context.
	TaskFrames(k *Kernel, t *Task) ([]Frame, error)
	// CurrentTask returns the task running on cpu.
	CurrentTask(k *Kernel, cpu int) (uint64, error)
}

var arches = map[elf.Machine]func() Arch{}

// RegisterArch makes an architecture available for vmlinux files of machine m.
// Each arch file registers itself in an init function.
func RegisterArch(m elf.Machine, f func() Arch) { arches[m] = f }

func archFor(m elf.Machine) (Arch, error) {
	f, ok := arches[m]
	if !ok {
		return nil, fmt.Errorf("%v kernels are not supported", m)
	}
	return f(), nil
}
