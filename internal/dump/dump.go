// Package dump reads the physical memory and the notes of Linux kernel crash dumps:
// ELF vmcores (kdump's /proc/vmcore copies, QEMU's dump-guest-memory with and
// without paging) and makedumpfile's kdump-compressed format, seekable or
// flattened, with zlib, lzo, snappy or zstd pages.
//
// Formats are found by an ordered opener list ending in ErrUnknownFormat. Every
// size read from a header is checked against the file before anything is
// allocated from it; hostile input yields errors, never panics.
package dump

import (
	"errors"
	"fmt"
	"io"
	"os"
)

// Errors callers can test with errors.Is.
var (
	// ErrUnknownFormat: no opener recognised the file.
	ErrUnknownFormat = errors.New("unknown dump format")
	// ErrExcluded: the page exists in the machine but was left out of the dump
	// (makedumpfile's page filtering, or an ELF segment shorter in the file than in memory).
	ErrExcluded = errors.New("page excluded from the dump")
	// ErrNotInDump: the address is not physical memory the dump describes.
	ErrNotInDump = errors.New("physical address not in the dump")
	// ErrIncomplete: the dump was cut short when written (the page data is missing).
	ErrIncomplete = errors.New("page missing from an incomplete dump")
)

// Format names, as reported by (*Dump).Format.
const (
	FormatELF       = "elf"
	FormatKdump     = "kdump"
	FormatKdumpFlat = "kdump-flat"
)

// PRStatus is one CPU's NT_PRSTATUS note (include/uapi/linux/elfcore.h: struct
// elf_prstatus; x86-64 registers in arch/x86/include/asm/user_64.h: struct
// user_regs_struct order).
type PRStatus struct {
	PID  int32
	Regs [27]uint64
	// AArch64 are the registers of an aarch64 note instead of Regs
	// (arch/arm64/include/uapi/asm/ptrace.h: struct user_pt_regs: x0-x30, sp, pc,
	// pstate; index with RegA64SP, RegA64PC, RegA64PState).
	AArch64 [34]uint64
}

// Machine names, as reported by (*Dump).Machine (uname -m).
const (
	MachineX86_64  = "x86_64"
	MachineAArch64 = "aarch64"
)

// Indexes into PRStatus.AArch64 after x0-x30.
const (
	RegA64FP     = 29
	RegA64LR     = 30
	RegA64SP     = 31
	RegA64PC     = 32
	RegA64PState = 33
)

// Register indexes into PRStatus.Regs (struct user_regs_struct).
const (
	RegR15 = iota
	RegR14
	RegR13
	RegR12
	RegRBP
	RegRBX
	RegR11
	RegR10
	RegR9
	RegR8
	RegRAX
	RegRCX
	RegRDX
	RegRSI
	RegRDI
	RegOrigRAX
	RegRIP
	RegCS
	RegEFLAGS
	RegRSP
	RegSS
	RegFSBase
	RegGSBase
	RegDS
	RegES
	RegFS
	RegGS
)

// QEMUCPU is the part of QEMU's "QEMU" CPU state note (target/i386/arch_dump.c:
// struct QEMUCPUState) that the kernel layer needs.
type QEMUCPU struct {
	RIP, RSP, RBP uint64
	GPR           [16]uint64 // rax rbx rcx rdx rsi rdi rsp rbp r8..r15, the note's order
	CR            [5]uint64
	GSBase        uint64 // the gs segment's base (per-CPU area while in the kernel)
	KernelGSBase  uint64
}

// Memory is the one interface for reading memory: physical addresses here,
// virtual ones in package kernel. ReadAt fills p entirely or returns an error
// naming the first address it could not read.
type Memory interface {
	ReadAt(p []byte, addr uint64) (int, error)
}

// Dump is an opened crash dump. It is safe for concurrent reads.
type Dump struct {
	format     string
	machine    string
	vmcoreinfo []byte
	prstatus   []PRStatus
	qemu       []QEMUCPU
	incomplete bool
	// Kdump is set for kdump-compressed dumps: their header fields.
	Kdump *KdumpHeader
	mem   physReader
	// Segments describes the ELF PT_LOAD segments (nil for kdump files).
	Segments []Segment
	closer   io.Closer
}

type physReader interface {
	readPhys(p []byte, addr uint64) error
	// ranges lists the physical memory the dump holds, as [start, end) pairs.
	ranges() [][2]uint64
}

// Format names the container: FormatELF, FormatKdump or FormatKdumpFlat.
func (d *Dump) Format() string { return d.format }

// Machine is the dumped machine's architecture as uname -m names it: from the ELF
// header's e_machine, or the kdump header's utsname, else the size of its
// NT_PRSTATUS notes (x86_64, aarch64); "" when nothing tells.
func (d *Dump) Machine() string { return d.machine }

// VMCOREINFO returns the raw VMCOREINFO note (KEY=value lines), or nil.
func (d *Dump) VMCOREINFO() []byte { return d.vmcoreinfo }

// PRStatus returns the NT_PRSTATUS notes, one per CPU, in note order.
func (d *Dump) PRStatus() []PRStatus { return d.prstatus }

// QEMUCPUs returns QEMU's CPU state notes, one per vCPU (nil for other dumps).
func (d *Dump) QEMUCPUs() []QEMUCPU { return d.qemu }

// Incomplete reports whether the writer flagged the dump as cut short.
func (d *Dump) Incomplete() bool { return d.incomplete }

// Ranges lists the physical address ranges [start, end) the dump covers.
func (d *Dump) Ranges() [][2]uint64 { return d.mem.ranges() }

// ReadAt reads physical memory at addr into p. It fails with ErrNotInDump,
// ErrExcluded or ErrIncomplete (wrapped with the address) when any byte is
// unavailable. kdump pages are decompressed on each read: wrap the Dump in a
// cache (package kernel does) for repeated access.
func (d *Dump) ReadAt(p []byte, addr uint64) (int, error) {
	if err := d.mem.readPhys(p, addr); err != nil {
		return 0, err
	}
	return len(p), nil
}

// Close releases the file opened by Open; it is a no-op for New.
func (d *Dump) Close() error {
	if d.closer != nil {
		return d.closer.Close()
	}
	return nil
}

// opener tries one format; it returns errNotThis when the magic does not match.
type opener func(r io.ReaderAt, size int64) (*Dump, error)

var errNotThis = errors.New("not this format")

// openers is tried in order; the first that recognises the magic decides.
var openers = []opener{openELF, openKdump, openFlat}

// Open opens the dump at path. Cost: reads headers, notes and (kdump) the bitmaps
// and builds their rank index: O(bitmap size); no page data is read.
func Open(path string) (*Dump, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	d, err := New(f, st.Size())
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	d.closer = f
	return d, nil
}

// New reads a dump of the given size from r. See Open for the cost.
func New(r io.ReaderAt, size int64) (d *Dump, err error) {
	defer func() {
		if p := recover(); p != nil {
			d, err = nil, fmt.Errorf("dump: malformed input: %v", p)
		}
	}()
	for _, o := range openers {
		d, err := o(r, size)
		if errors.Is(err, errNotThis) {
			continue
		}
		return d, err
	}
	return nil, ErrUnknownFormat
}

// readFull reads exactly len(p) bytes at off.
func readFull(r io.ReaderAt, p []byte, off int64) error {
	n, err := r.ReadAt(p, off)
	if n == len(p) {
		return nil
	}
	if err == nil || err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return err
}
