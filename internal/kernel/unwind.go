package kernel

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sort"
)

// PtRegs is struct pt_regs (arch/x86/include/asm/ptrace.h), x86-64 order.
type PtRegs struct {
	R15, R14, R13, R12, BP, BX, R11, R10, R9, R8, AX, CX, DX, SI, DI, OrigAX, IP, CS, Flags, SP, SS uint64
}

// UserMode reports whether the registers were taken in user mode (CS RPL 3).
func (r *PtRegs) UserMode() bool { return r.CS&3 == 3 }

// Frame is one frame of a kernel stack.
type Frame struct {
	// SP is where the frame's IP was found: the stack slot holding the return
	// address, or the stack pointer of the registers the unwind started from.
	SP uint64
	IP uint64
	// Regs, when set, are the exception registers this frame's IP came from.
	Regs *PtRegs
	// A64, when set, are the arm64 exception registers this frame's IP came from
	// (arch_arm64.go); Regs stays nil on arm64.
	A64 *A64Regs
	// RegsAddr is the stack address of Regs (or A64).
	RegsAddr uint64
	// Exact says IP is an interrupted instruction, not a return address.
	Exact bool
}

// orcEntry is struct orc_entry (arch/x86/include/asm/orc_types.h), decoded
// into one form for both encodings (see orcLayout).
type orcEntry struct {
	spOff, bpOff int16
	spReg, bpReg uint8
	typ          uint8 // orcType*: normalised across encodings
	// end (before 6.4) marks the end of a kernel thread's stack.
	end bool
	// signal (6.4+) says the caller's IP is exact, not a return address.
	signal bool
}

// ORC register values (unchanged since 4.14) and the unwinder's own entry types.
const (
	orcRegUndefined  = 0
	orcRegPrevSP     = 1
	orcRegBP         = 4
	orcRegSP         = 5
	orcRegBPIndirect = 8
	orcRegSPIndirect = 9
	orcTypeCall      = 0
	orcTypeRegs      = 1
	orcTypeRegsIRET  = 2 // UNWIND_HINT_TYPE_REGS_PARTIAL: an IRET frame only
	orcTypeUndefined = 3 // 6.4+: no ORC data for this code
	orcTypeEnd       = 4 // 6.4+: ORC_TYPE_END_OF_STACK
	ptRegsSize       = 21 * 8
	ptRegsIPOff      = 16 * 8
	maxFrames        = 128
)

// orcLayout is the encoding of orc_entry's sixth byte. Linux 6.4 (commit
// "x86/unwind/orc: Add 'signal' field to ORC metadata" and the
// ORC_TYPE_UNDEFINED/END_OF_STACK split before it) changed {type:2, end:1}
// with CALL=0 REGS=1 REGS_PARTIAL=2 into {type:3, signal:1} with
// UNDEFINED=0 END_OF_STACK=1 CALL=2 REGS=3 REGS_PARTIAL=4.
type orcLayout int

const (
	orcLayoutOld orcLayout = iota // type:2, end:1 (4.14 – 6.3)
	orcLayoutNew                  // type:3, signal:1 (6.4+)
)

func decodeORC(b []byte, l orcLayout) orcEntry {
	e := orcEntry{
		spOff: int16(binary.LittleEndian.Uint16(b)),
		bpOff: int16(binary.LittleEndian.Uint16(b[2:])),
		spReg: b[4] & 0xf, bpReg: b[4] >> 4,
	}
	if l == orcLayoutOld {
		e.typ, e.end = b[5]&3, b[5]&4 != 0
		if e.typ == 3 {
			e.typ = orcTypeUndefined // not produced by objtool
		}
		return e
	}
	e.signal = b[5]&8 != 0
	switch b[5] & 7 {
	case 0:
		e.typ = orcTypeUndefined
	case 1:
		e.typ = orcTypeEnd
	case 2:
		e.typ = orcTypeCall
	case 3:
		e.typ = orcTypeRegs
	case 4:
		e.typ = orcTypeRegsIRET
	default:
		e.typ = orcTypeUndefined
	}
	return e
}

// orcLayout reads the encoding from the kernel's own type information: 6.4+
// has a member orc_entry.signal, earlier kernels orc_entry.end. Without type
// information for orc_entry it falls back to the release (6.4+ is new) and
// says so in OrcLayoutFrom.
func (k *Kernel) orcLayout() orcLayout {
	k.orcLayoutOnce.Do(func() {
		v := k.Vmlinux
		v.HintType("struct orc_entry", "unwind_next_frame")
		if _, _, err := v.MemberOffset("orc_entry", "signal"); err == nil {
			k.orcLay, k.OrcLayoutFrom = orcLayoutNew, "orc_entry.signal in the type information"
			return
		}
		if _, _, err := v.MemberOffset("orc_entry", "end"); err == nil {
			k.orcLay, k.OrcLayoutFrom = orcLayoutOld, "orc_entry.end in the type information"
			return
		}
		rel := k.Info["OSRELEASE"]
		if rel == "" {
			rel = v.Release()
		}
		if releaseAtLeast(rel, 6, 4) {
			k.orcLay = orcLayoutNew
		}
		k.OrcLayoutFrom = "release " + rel + " (no orc_entry type information)"
	})
	return k.orcLay
}

// releaseAtLeast compares a release string's major.minor ("6.12.117+deb12-…").
func releaseAtLeast(rel string, major, minor int) bool {
	var a, b int
	if n, _ := fmt.Sscanf(rel, "%d.%d", &a, &b); n != 2 {
		return false
	}
	return a > major || a == major && b >= minor
}

// orcTable is one sorted ORC table: ips[i] is the runtime address entries[i] starts at.
type orcTable struct {
	ips     []uint64
	entries []byte
	layout  orcLayout
}

func (t *orcTable) find(ip uint64) (orcEntry, bool) {
	i := sort.Search(len(t.ips), func(i int) bool { return t.ips[i] > ip }) - 1
	if i < 0 || (i+1)*6 > len(t.entries) {
		return orcEntry{}, false
	}
	return decodeORC(t.entries[i*6:], t.layout), true
}

// vmlinuxORC decodes .orc_unwind_ip (int32 offsets relative to each entry's
// own address) and .orc_unwind once.
func (k *Kernel) vmlinuxORC() *orcTable {
	k.orcOnce.Do(func() {
		ipAddr, ipb := k.Vmlinux.SectionAddr(".orc_unwind_ip")
		_, ent := k.Vmlinux.SectionAddr(".orc_unwind")
		if ipb == nil || ent == nil {
			return
		}
		n := min(len(ipb)/4, len(ent)/6)
		t := &orcTable{ips: make([]uint64, n), entries: ent, layout: k.orcLayout()}
		for i := 0; i < n; i++ {
			rel := int32(binary.LittleEndian.Uint32(ipb[4*i:]))
			t.ips[i] = uint64(int64(ipAddr+uint64(4*i)+k.Offset) + int64(rel))
		}
		k.orc = t
	})
	return k.orc
}

// moduleORC reads a module's ORC tables from memory (mod_arch_specific).
func (k *Kernel) moduleORC(m *Module) *orcTable {
	if m.orc != nil || m.numORC == 0 || m.numORC > 1<<20 {
		return m.orc
	}
	ipb := make([]byte, m.numORC*4)
	ent := make([]byte, m.numORC*6)
	if _, err := k.ReadAt(ipb, m.orcIP); err != nil {
		return nil
	}
	if _, err := k.ReadAt(ent, m.orcTable); err != nil {
		return nil
	}
	t := &orcTable{ips: make([]uint64, m.numORC), entries: ent, layout: k.orcLayout()}
	for i := range t.ips {
		t.ips[i] = uint64(int64(m.orcIP+uint64(4*i)) + int64(int32(binary.LittleEndian.Uint32(ipb[4*i:]))))
	}
	m.orc = t
	return t
}

func (k *Kernel) findORC(ip uint64) (orcEntry, bool) {
	if m := k.ModuleAt(ip); m != nil {
		if m.TextSize != 0 && ip-m.Base >= m.TextSize {
			return orcEntry{}, false // module data: no ORC covers it
		}
		if t := k.moduleORC(m); t != nil {
			return t.find(ip)
		}
		return orcEntry{}, false
	}
	if t := k.vmlinuxORC(); t != nil {
		return t.find(ip)
	}
	return orcEntry{}, false
}

func (k *Kernel) readRegs(addr uint64) (*PtRegs, error) {
	var b [ptRegsSize]byte
	if _, err := k.ReadAt(b[:], addr); err != nil {
		return nil, err
	}
	var r PtRegs
	f := []*uint64{&r.R15, &r.R14, &r.R13, &r.R12, &r.BP, &r.BX, &r.R11, &r.R10, &r.R9, &r.R8, &r.AX, &r.CX, &r.DX, &r.SI, &r.DI, &r.OrigAX, &r.IP, &r.CS, &r.Flags, &r.SP, &r.SS}
	for i, p := range f {
		*p = binary.LittleEndian.Uint64(b[8*i:])
	}
	return &r, nil
}

// Unwind walks a kernel stack from ip, sp and bp with the ORC tables
// (arch/x86/kernel/unwind_orc.c: unwind_next_frame), through IRQ stacks and
// exception frames, stopping at user-mode registers or the stack's end. exact
// says ip is the interrupted instruction rather than a return address.
// Frames whose ORC data is missing are unwound by frame pointers.
func (k *Kernel) Unwind(ip, sp, bp uint64, exact bool) ([]Frame, error) {
	first := sp
	if !exact {
		first = sp - 8 // the slot the return address was read from
	}
	frames := []Frame{{SP: first, IP: ip, Exact: exact}}
	var regs *PtRegs
	for len(frames) < maxFrames {
		look := ip
		if !exact {
			look = ip - 1
		}
		orc, ok := k.findORC(look)
		if !ok && exact {
			// An exception at an address without ORC data (code run from data, a
			// jump to garbage): assume it was reached by a call and nothing was
			// pushed since, so the return address is at the stack pointer.
			if nip, err := k.U64(sp); err == nil && (k.ModuleAt(nip) != nil || k.isText(nip)) {
				frames = append(frames, Frame{SP: sp, IP: nip})
				ip, sp, exact = nip, sp+8, false
				continue
			}
		}
		if !ok {
			// Frame pointers: [bp] = caller's bp, [bp+8] = return address.
			if bp == 0 || bp < sp {
				return frames, nil
			}
			nip, err1 := k.U64(bp + 8)
			nbp, err2 := k.U64(bp)
			if err1 != nil || err2 != nil || k.ModuleAt(nip) == nil && !k.isText(nip) {
				return frames, nil
			}
			frames = append(frames, Frame{SP: bp + 8, IP: nip})
			ip, sp, bp, exact = nip, bp+16, nbp, false
			continue
		}
		switch {
		case orc.typ == orcTypeEnd:
			return frames, nil
		case orc.typ == orcTypeUndefined:
			return frames, fmt.Errorf("no ORC data at %#x", look)
		case orc.spReg == orcRegUndefined:
			return frames, nil // end of the stack (or no ORC: an entry point)
		}
		var cfa uint64
		indirect := false
		switch orc.spReg {
		case orcRegSP:
			cfa = sp + uint64(int64(orc.spOff))
		case orcRegBP:
			cfa = bp + uint64(int64(orc.spOff))
		case orcRegSPIndirect:
			cfa, indirect = sp, true
		case orcRegBPIndirect:
			cfa, indirect = bp+uint64(int64(orc.spOff)), true
		default:
			// DX, DI, R10, R13: only valid with full registers.
			if regs == nil {
				return frames, fmt.Errorf("ORC sp register %d at %#x needs registers", orc.spReg, ip)
			}
			switch orc.spReg {
			case 2:
				cfa = regs.DX
			case 3:
				cfa = regs.DI
			case 6:
				cfa = regs.R10
			case 7:
				cfa = regs.R13
			}
			cfa += uint64(int64(orc.spOff))
		}
		if indirect {
			v, err := k.U64(cfa)
			if err != nil {
				return frames, nil
			}
			cfa = v
			if orc.spReg == orcRegSPIndirect {
				cfa += uint64(int64(orc.spOff))
			}
		}
		var next Frame
		switch orc.typ {
		case orcTypeCall:
			nip, err := k.U64(cfa - 8)
			if err != nil {
				return frames, nil
			}
			if k.ModuleAt(nip) == nil && !k.isText(nip) {
				return frames, nil // a corrupted return address ends the stack
			}
			next = Frame{SP: cfa - 8, IP: nip}
			regs = nil
			exact = orc.signal
		case orcTypeRegs, orcTypeRegsIRET:
			addr := cfa
			if orc.typ == orcTypeRegsIRET {
				addr = cfa - ptRegsIPOff
			}
			r, err := k.readRegs(addr)
			if err != nil {
				return frames, nil
			}
			frames[len(frames)-1].Regs, frames[len(frames)-1].RegsAddr = r, addr
			if r.UserMode() || r.IP == 0 {
				return frames, nil
			}
			next = Frame{SP: r.SP, IP: r.IP, Exact: true}
			cfa = r.SP
			regs = r
			if orc.typ == orcTypeRegs {
				bp = r.BP
			}
			exact = true
		default:
			return frames, fmt.Errorf("unknown ORC type %d at %#x", orc.typ, ip)
		}
		if orc.typ == orcTypeCall {
			switch orc.bpReg {
			case orcRegPrevSP:
				v, err := k.U64(cfa + uint64(int64(orc.bpOff)))
				if err == nil {
					bp = v
				}
			case orcRegBP:
				v, err := k.U64(bp + uint64(int64(orc.bpOff)))
				if err == nil {
					bp = v
				}
			}
		}
		// On one stack the CFA only grows; an indirect CFA is a switch back from the
		// IRQ stack (call_on_irqstack saved the task's stack pointer there), which
		// may well be at a lower address.
		if cfa <= sp && orc.typ == orcTypeCall && !indirect {
			return frames, errors.New("stack pointer did not advance")
		}
		ip, sp = next.IP, cfa
		frames = append(frames, next)
	}
	return frames, nil
}

func (k *Kernel) isText(ip uint64) bool {
	_, _, ok := k.SymbolAt(ip)
	return ok
}

// TaskFrames unwinds a task's kernel stack (Arch.TaskFrames).
func (k *Kernel) TaskFrames(t *Task) ([]Frame, error) { return k.Arch.TaskFrames(k, t) }
