package kernel

import (
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/kcrash/kcrash/internal/dump"
)

func init() { RegisterArch(elf.EM_AARCH64, func() Arch { return &arm64{} }) }

// arm64 is AArch64 Linux: the kernel image at KIMAGE_VADDR plus the KASLR offset
// (kimage_voffset maps it to physical), the linear map at PAGE_OFFSET (PHYS_OFFSET,
// which KASLR may make negative), translation tables of 4, 16 or 64 KiB granules
// for VA_BITS (TCR_EL1.T1SZ), and frame-record unwinding through the pt_regs that
// the exception entry leaves on the stack. Everything comes from VMCOREINFO
// (arch/arm64/kernel/crash_core.c and kernel/crash_core.c).
type arm64 struct {
	vaBits           uint   // 64 - TCR_EL1.T1SZ, else VA_BITS
	pageShift        uint   // log2 PAGESIZE: 12, 14 or 16
	physBits         uint   // MAX_PHYSMEM_BITS: 48, or 52 with LPA
	kimageVoffset    uint64 // kernel image virtual minus physical
	physOffset       uint64 // PHYS_OFFSET (memstart_addr), two's complement
	pacMask          uint64 // KERNELPACMASK: the bits pointer authentication uses
	textLo, textHi   uint64 // the image's runtime [_text, _end)
	entryLo, entryHi uint64 // .entry.text at runtime: where exceptions are taken
	stackframeOff    int64  // offsetof(struct pt_regs, stackframe)
	ptRegsSize       int64
}

func (*arm64) Name() string { return "aarch64" }

// Relocated: every kernel-half link address moves with KASLR; per-CPU variables
// are addresses in .data..percpu, not offsets as on x86-64.
func (*arm64) Relocated(addr uint64) bool { return addr>>63 == 1 }

func (a *arm64) Image(k *Kernel) (uint64, uint64) { return a.textLo, a.textHi }

// pageOffset is PAGE_OFFSET: the start of the linear map, -(1 << VA_BITS).
func (a *arm64) pageOffset() uint64 { return ^uint64(0) << a.vaBits }

func (a *arm64) Linear(k *Kernel, va uint64) (uint64, bool) {
	if va >= a.textLo && va < a.textHi {
		return va - a.kimageVoffset, true
	}
	// The linear map is the lower half of the kernel's range (5.4+).
	po := a.pageOffset()
	if va >= po && va < po+(uint64(1)<<(a.vaBits-1)) {
		return va - po + a.physOffset, true
	}
	return 0, false
}

func hexOrDec(s string) (uint64, error) {
	s = strings.TrimSpace(s)
	if h, ok := strings.CutPrefix(s, "0x"); ok {
		return strconv.ParseUint(h, 16, 64)
	}
	if strings.HasPrefix(s, "-") {
		v, err := strconv.ParseInt(s, 10, 64)
		return uint64(v), err
	}
	return strconv.ParseUint(s, 10, 64)
}

// Locate reads the layout from VMCOREINFO: KERNELOFFSET, NUMBER(kimage_voffset),
// NUMBER(PHYS_OFFSET), NUMBER(VA_BITS) or NUMBER(TCR_EL1_T1SZ), PAGESIZE,
// NUMBER(MAX_PHYSMEM_BITS) and NUMBER(KERNELPACMASK); the page table is
// swapper_pg_dir. An arm64 dump without VMCOREINFO is refused: the CPU notes
// carry no translation table base.
func (a *arm64) Locate(k *Kernel) error {
	info := k.Info
	need := func(key string) (uint64, error) {
		s, ok := info[key]
		if !ok {
			return 0, fmt.Errorf("arm64 dump: VMCOREINFO has no %s (QEMU dumps carry it when the guest's qemu_fw_cfg was loaded)", key)
		}
		v, err := hexOrDec(s)
		if err != nil {
			return 0, fmt.Errorf("arm64 dump: VMCOREINFO %s=%q: %w", key, s, err)
		}
		return v, nil
	}
	off, ok := info["KERNELOFFSET"]
	if !ok {
		return errors.New("arm64 dump: VMCOREINFO has no KERNELOFFSET")
	}
	o, err := strconv.ParseUint(off, 16, 64)
	if err != nil {
		return fmt.Errorf("VMCOREINFO KERNELOFFSET=%q: %w", off, err)
	}
	k.Offset, k.OffsetFrom = o, "VMCOREINFO"
	if a.kimageVoffset, err = need("NUMBER(kimage_voffset)"); err != nil {
		return err
	}
	if a.physOffset, err = need("NUMBER(PHYS_OFFSET)"); err != nil {
		return err
	}
	k.PhysBase = a.physOffset
	a.vaBits = 48
	if t1sz, err := need("NUMBER(TCR_EL1_T1SZ)"); err == nil && t1sz >= 12 && t1sz <= 39 {
		a.vaBits = uint(64 - t1sz)
	} else if vb, err := need("NUMBER(VA_BITS)"); err == nil {
		a.vaBits = uint(vb)
	}
	a.pageShift = 12
	if ps, err := need("PAGESIZE"); err == nil {
		switch ps {
		case 4096:
			a.pageShift = 12
		case 16384:
			a.pageShift = 14
		case 65536:
			a.pageShift = 16
		default:
			return fmt.Errorf("arm64 dump: PAGESIZE %d is not 4, 16 or 64 KiB", ps)
		}
	}
	if a.vaBits < 25 || a.vaBits > 52 {
		return fmt.Errorf("arm64 dump: %d-bit virtual addresses are not possible", a.vaBits)
	}
	a.physBits = 48
	if pb, err := need("NUMBER(MAX_PHYSMEM_BITS)"); err == nil && pb == 52 {
		a.physBits = 52
	}
	a.pacMask, _ = need("NUMBER(KERNELPACMASK)")

	text, err := k.Vmlinux.Symbol("_text")
	if err != nil {
		return err
	}
	end, err := k.Vmlinux.Symbol("_end")
	if err != nil {
		return err
	}
	a.textLo, a.textHi = text.Addr+k.Offset, end.Addr+k.Offset
	if lo, err := k.Vmlinux.Symbol("__entry_text_start"); err == nil {
		if hi, err := k.Vmlinux.Symbol("__entry_text_end"); err == nil {
			a.entryLo, a.entryHi = lo.Addr+k.Offset, hi.Addr+k.Offset
		}
	}
	pgd, err := k.symbol("swapper_pg_dir")
	if err != nil {
		return err
	}
	if pgd < a.textLo || pgd >= a.textHi {
		return fmt.Errorf("arm64 dump: swapper_pg_dir %#x is outside the kernel image [%#x, %#x)", pgd, a.textLo, a.textHi)
	}
	k.PGD = pgd - a.kimageVoffset
	return nil
}

// Descriptor bits (Arm ARM D8.3, arch/arm64/include/asm/pgtable-hwdef.h).
const (
	a64Valid = 1 << 0
	a64Table = 1 << 1 // a table (levels 0-2) or a page (the last level); clear: a block
)

// Walk translates va through the tables at k.PGD: ceil((VA_BITS - PAGE_SHIFT) /
// (PAGE_SHIFT - 3)) levels of PAGE_SHIFT-3 index bits each (the first takes what
// is left), blocks at the levels that allow them. Table addresses must be in
// the dump; a hostile table can only make the walk fail, never loop (each level
// is visited once).
func (a *arm64) Walk(k *Kernel, va uint64) (uint64, error) {
	return a.walk(k, k.PGD, va)
}

func (a *arm64) walk(k *Kernel, table, va uint64) (uint64, error) {
	ps := a.pageShift
	if ps == 0 || a.vaBits <= ps {
		return 0, fmt.Errorf("virtual address %#x: no translation regime", va)
	}
	// A kernel address has its top 64-VA_BITS bits set (TTBR1).
	if va>>a.vaBits != (^uint64(0))>>a.vaBits {
		return 0, fmt.Errorf("virtual address %#x is outside the %d-bit kernel range: %w", va, a.vaBits, ErrNotMapped)
	}
	per := ps - 3
	levels := (a.vaBits - ps + per - 1) / per
	addrMask := ((uint64(1) << a.physBits) - 1) &^ ((uint64(1) << ps) - 1)
	var b [8]byte
	for l := uint(0); l < levels; l++ {
		shift := ps + per*(levels-1-l)
		width := per
		if l == 0 {
			width = a.vaBits - shift
		}
		idx := (va >> shift) & ((uint64(1) << width) - 1)
		if err := k.ReadPhys(b[:], table+idx*8); err != nil {
			return 0, fmt.Errorf("page table entry for %#x at %#x: %w", va, table+idx*8, err)
		}
		e := binary.LittleEndian.Uint64(b[:])
		if e&a64Valid == 0 {
			return 0, fmt.Errorf("virtual address %#x: %w", va, ErrNotMapped)
		}
		out := e & addrMask
		if a.physBits == 52 && ps == 16 {
			// 64 KiB granule with LPA: PA[51:48] are descriptor bits [15:12].
			out = e&0x0000ffffffff0000 | (e>>12&0xf)<<48
		}
		last := l == levels-1
		if last {
			if e&a64Table == 0 {
				return 0, fmt.Errorf("virtual address %#x: reserved last-level descriptor %#x: %w", va, e, ErrNotMapped)
			}
			return out | va&((uint64(1)<<ps)-1), nil
		}
		if e&a64Table == 0 {
			// A block: 1 GiB or 2 MiB with 4 KiB pages, 32 MiB with 16 KiB, 512 MiB with 64 KiB.
			if dist := levels - 1 - l; dist != 1 && !(dist == 2 && ps == 12) {
				return 0, fmt.Errorf("virtual address %#x: block descriptor at level %d: %w", va, l, ErrNotMapped)
			}
			size := uint64(1) << shift
			return out&^(size-1) | va&(size-1), nil
		}
		table = out
	}
	return 0, fmt.Errorf("virtual address %#x: %w", va, ErrNotMapped)
}

// CurrentTask reads the per-CPU __entry_task (arch/arm64/kernel/process.c): the
// task the CPU switched to last (current itself lives in sp_el0, which the
// dump's notes do not carry).
func (*arm64) CurrentTask(k *Kernel, cpu int) (uint64, error) {
	a, err := k.PerCPU("__entry_task", cpu)
	if err != nil {
		return 0, err
	}
	return k.U64(a)
}

// A64Regs are the registers of an arm64 exception frame (struct user_pt_regs at
// the start of struct pt_regs).
type A64Regs struct {
	X      [31]uint64 // x0-x30 (x29 is the frame pointer, x30 the link register)
	SP     uint64
	PC     uint64
	PState uint64
}

// UserMode reports whether the exception came from EL0 (PSTATE.M[3:2] = 0).
func (r *A64Regs) UserMode() bool { return r.PState&0xc == 0 }

// strip removes pointer-authentication bits from a kernel return address.
func (a *arm64) strip(lr uint64) uint64 {
	if a.pacMask != 0 && lr>>55&1 == 1 {
		return lr | a.pacMask
	}
	return lr
}

func (a *arm64) inEntry(ip uint64) bool { return ip >= a.entryLo && ip < a.entryHi }

// ptRegsLayout reads offsetof(struct pt_regs, stackframe) from the DWARF once.
func (a *arm64) ptRegsLayout(k *Kernel) {
	if a.ptRegsSize != 0 {
		return
	}
	a.ptRegsSize = -1
	if off, _, err := k.Vmlinux.MemberOffset("pt_regs", "stackframe"); err == nil && off >= 34*8 {
		a.stackframeOff, a.ptRegsSize = off, off+16
	}
}

// readA64Regs reads the user_pt_regs part of a pt_regs at addr.
func (k *Kernel) readA64Regs(addr uint64) (*A64Regs, error) {
	var b [34 * 8]byte
	if _, err := k.ReadAt(b[:], addr); err != nil {
		return nil, err
	}
	r := &A64Regs{}
	for i := range r.X {
		r.X[i] = binary.LittleEndian.Uint64(b[8*i:])
	}
	r.SP = binary.LittleEndian.Uint64(b[31*8:])
	r.PC = binary.LittleEndian.Uint64(b[32*8:])
	r.PState = binary.LittleEndian.Uint64(b[33*8:])
	return r, nil
}

// a64ThreadSize is arm64's THREAD_SIZE with 4 KiB pages (16 KiB), the size
// of the task, IRQ and overflow stacks.
const a64ThreadSize = 16 << 10

// unwindFP walks AArch64 frame records (AAPCS64: x29 points at {caller's x29,
// return address}) from pc and fp, as arch/arm64/kernel/stacktrace.c does. A
// return address into the exception entry text means the next record is the
// one kernel_entry stores inside pt_regs (S_STACKFRAME): the entry frame then
// carries the interrupted registers (Frame.A64) and the next IP is the exact ELR.
// Records must move up the stack but for two stack switches (so hostile ones
// cannot loop), and the walk ends at a zero record (the
// final frame of a task or of an entry from EL0) or after maxFrames.
func (a *arm64) unwindFP(k *Kernel, pc, sp, fp uint64) ([]Frame, error) {
	a.ptRegsLayout(k)
	frames := []Frame{{SP: sp, IP: pc, Exact: true}}
	prevIP, switches := pc, 0
	for len(frames) < maxFrames && fp != 0 {
		if fp&0x7 != 0 {
			return frames, fmt.Errorf("frame pointer %#x is misaligned", fp)
		}
		var rec [16]byte
		if _, err := k.ReadAt(rec[:], fp); err != nil {
			return frames, fmt.Errorf("frame record at %#x: %w", fp, err)
		}
		nfp := binary.LittleEndian.Uint64(rec[:])
		lr := a.strip(binary.LittleEndian.Uint64(rec[8:]))
		if lr == 0 {
			break // the final record
		}
		f := Frame{SP: fp + 8, IP: lr}
		if a.inEntry(prevIP) && a.ptRegsSize > 0 {
			regsAddr := fp - uint64(a.stackframeOff)
			if r, err := k.readA64Regs(regsAddr); err == nil && r.PC == lr {
				// On the entry frame, as crash prints it after that frame.
				last := &frames[len(frames)-1]
				last.A64, last.RegsAddr, f.Exact = r, regsAddr, true
			}
		}
		frames = append(frames, f)
		if nfp != 0 && nfp <= fp {
			// Records move up a stack; a step down is a switch from the IRQ or
			// overflow stack to the task's (another THREAD_SIZE region), at most
			// twice. Anything else is a loop or garbage.
			if nfp/a64ThreadSize == fp/a64ThreadSize || switches >= 2 {
				break
			}
			switches++
		}
		prevIP, fp = lr, nfp
	}
	return frames, nil
}

// TaskFrames unwinds a task: from its CPU's NT_PRSTATUS registers when it was
// running, else from the context cpu_switch_to saved in thread.cpu_context
// (x19-x28, fp, sp, pc).
func (a *arm64) TaskFrames(k *Kernel, t *Task) ([]Frame, error) {
	if t.Active {
		if ps := k.Dump.PRStatus(); t.CPU < len(ps) && ps[t.CPU].AArch64[dump.RegA64PC] != 0 {
			r := ps[t.CPU].AArch64
			return a.unwindFP(k, r[dump.RegA64PC], r[dump.RegA64SP], r[dump.RegA64FP])
		}
	}
	ctx, _, err := k.Vmlinux.MemberOffset("task_struct", "thread.cpu_context")
	if err != nil {
		return nil, err
	}
	var b [13 * 8]byte
	if _, err := k.ReadAt(b[:], t.Addr+uint64(ctx)); err != nil {
		return nil, fmt.Errorf("cpu_context of task %#x: %w", t.Addr, err)
	}
	fp := binary.LittleEndian.Uint64(b[10*8:])
	sp := binary.LittleEndian.Uint64(b[11*8:])
	pc := binary.LittleEndian.Uint64(b[12*8:])
	frames, err := a.unwindFP(k, a.strip(pc), sp, fp)
	if len(frames) > 0 {
		frames[0].Exact = false // a return address (cpu_switch_to's caller)
	}
	return frames, err
}
