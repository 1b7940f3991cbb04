package explain

import (
	"fmt"

	"golang.org/x/arch/x86/x86asm"

	"github.com/kcrash/kcrash/internal/disasm"
	"github.com/kcrash/kcrash/internal/oops"
	"github.com/kcrash/kcrash/internal/symbolize"
)

// Page fault error code bits (arch/x86/include/asm/trap_pf.h).
const (
	pfProt  = 1 << 0 // protection violation (else not-present page)
	pfWrite = 1 << 1
	pfUser  = 1 << 2
	pfInstr = 1 << 4
)

func explainFault(e *Explanation, r *oops.Report, code []disasm.Inst, trapIdx int, dbg *Debug) {
	var trap *disasm.Inst
	if trapIdx >= 0 {
		trap = &code[trapIdx]
	}
	switch r.Arch {
	case "arm64":
		explainFaultA64(e, r, trap)
		return
	case "arm":
		explainFaultA32(e, r, trap)
		return
	}
	var cr2 *uint64
	if v, ok := r.Registers["CR2"]; ok && r.Kind != oops.KindGPF {
		cr2 = &v
	}
	if r.FaultAddress != nil && r.Kind != oops.KindGPF {
		cr2 = r.FaultAddress
	}
	var ec uint64
	hasEC := r.ErrorCode != nil && r.Kind != oops.KindGPF
	if hasEC {
		ec = *r.ErrorCode
		kind := "not-present page"
		if ec&pfProt != 0 {
			kind = "protection violation"
		}
		mode := "kernel"
		if ec&pfUser != 0 {
			mode = "user"
		}
		acc := "read"
		if ec&pfWrite != 0 {
			acc = "write"
		}
		if ec&pfInstr != 0 {
			acc = "instruction fetch"
		}
		e.add(true, "page fault error code %#x: %s in %s mode, %s", ec, acc, mode, kind)
	}
	if hasEC && ec&pfInstr != 0 {
		e.Cause, e.Access = "exec-nx", "exec"
		if cr2 != nil {
			e.Address = cr2
		}
		if ec&pfProt != 0 {
			e.add(true, "the CPU jumped to %s, which is mapped but not executable (NX): code ran into data or a corrupted function pointer", ipName(r))
		} else {
			e.add(true, "the CPU jumped to %s, which is not mapped: a corrupted function pointer or return address", ipName(r))
		}
		return
	}
	if trap == nil || trap.X86() == nil {
		if cr2 != nil {
			e.Address = cr2
			classify(e, *cr2, hasEC && ec&pfUser == 0)
		}
		e.add(false, "no decodable trapping instruction in the report: the analysis stops at the fault address")
		return
	}
	e.add(true, "the trapping instruction is `%s` (Code bytes %s, the marked one at offset %#x)", trap.Text, hexBytes(trap.Bytes), trap.Offset)
	in := trap.X86()
	var mem *x86asm.Mem
	memArg := -1
	for i, a := range in.Args {
		if m, ok := a.(x86asm.Mem); ok {
			mm := m
			mem, memArg = &mm, i
			break
		}
	}
	if mem == nil {
		e.add(true, "the trapping instruction `%s` has no memory operand", trap.Text)
		if cr2 != nil {
			e.Address = cr2
			classify(e, *cr2, true)
		}
		return
	}
	e.Operand = operandText(trap.Text)
	e.Access = "read"
	if memArg == 0 && writes(in.Op) || hasEC && ec&pfWrite != 0 {
		e.Access = "write"
	}
	ea, known := effectiveAddress(e, r, trap, mem)
	if known {
		e.Address = &ea
		e.add(true, "the %s operand addresses %#x", e.Access, ea)
		if cr2 != nil {
			m := *cr2 == ea
			e.MatchesCR2 = &m
			if m {
				e.add(true, "that equals CR2, the address the CPU reported: this operand faulted")
			} else {
				e.add(false, "CR2 is %#x, not %#x: the fault came from another access of this instruction (or the registers changed)", *cr2, ea)
			}
		}
		classify(e, ea, !hasEC || ec&pfUser == 0)
	} else if cr2 != nil {
		e.Address = cr2
		classify(e, *cr2, !hasEC || ec&pfUser == 0)
	}
	if dbg != nil && mem.Base != 0 && mem.Base != x86asm.RIP {
		traceBase(e, r, dbg, mem)
	}
	if e.Chain == "" && mem.Base != 0 && mem.Base != x86asm.RIP {
		traceOrigin(e, r, code, trapIdx, mem)
	}
}

func ipName(r *oops.Report) string {
	if r.IP != nil {
		return r.IP.Raw
	}
	return "the faulting address"
}

func writes(op x86asm.Op) bool {
	switch op {
	case x86asm.CMP, x86asm.TEST, x86asm.PUSH, x86asm.BT, x86asm.PREFETCHT0, x86asm.PREFETCHT1, x86asm.PREFETCHT2, x86asm.PREFETCHNTA:
		return false
	}
	return true
}

// operandText picks the memory operand out of the AT&T text.
func operandText(text string) string {
	for _, f := range splitOperands(text) {
		if f != "" && (f[len(f)-1] == ')' || f[0] == '0' || f[0] == '-') {
			return f
		}
	}
	return ""
}

func splitOperands(text string) []string {
	i := 0
	for i < len(text) && text[i] != ' ' {
		i++
	}
	var out []string
	depth, start := 0, i+1
	for j := i + 1; j < len(text); j++ {
		switch text[j] {
		case '(':
			depth++
		case ')':
			depth--
		case ',':
			if depth == 0 {
				out = append(out, text[start:j])
				start = j + 1
			}
		}
	}
	if start < len(text) {
		out = append(out, text[start:])
	}
	return out
}

// effectiveAddress computes base + index*scale + disp from the report's registers.
func effectiveAddress(e *Explanation, r *oops.Report, trap *disasm.Inst, m *x86asm.Mem) (uint64, bool) {
	ea := uint64(m.Disp)
	if m.Disp >= 0x80000000 && m.Disp <= 0xffffffff {
		ea = uint64(m.Disp - 1<<32)
	}
	known := true
	use := func(reg x86asm.Reg, scale uint64) {
		if reg == x86asm.RIP {
			if trap.Addr == 0 {
				known = false
				return
			}
			ea += trap.Addr + uint64(len(trap.Bytes))
			return
		}
		name, ok := x86Family[reg]
		v, have := r.Registers[name]
		if !ok || !have {
			known = false
			e.Registers = append(e.Registers, RegUse{Name: reg.String()})
			return
		}
		if reg >= x86asm.EAX && reg <= x86asm.R15L {
			v &= 0xffffffff
		}
		e.Registers = append(e.Registers, RegUse{Name: name, Value: v, Known: true, Note: poison(v)})
		ea += v * scale
	}
	if m.Base != 0 {
		use(m.Base, 1)
	}
	if m.Index != 0 {
		use(m.Index, uint64(m.Scale))
	}
	if m.Segment == x86asm.GS || m.Segment == x86asm.FS {
		seg := "GS"
		if m.Segment == x86asm.FS {
			seg = "FS"
		}
		if v, ok := r.Registers[seg]; ok {
			ea += v
			e.add(true, "%%%s-relative (per-CPU or thread-local) access: %s base %#x", seg, seg, v)
		} else {
			known = false
		}
	}
	for _, u := range e.Registers {
		if u.Known {
			note := ""
			if u.Note != "" {
				note = ": " + u.Note
			}
			e.add(true, "%s = %#x%s", u.Name, u.Value, note)
		}
	}
	return ea, known
}

// classify names the kind of bad address.
func classify(e *Explanation, a uint64, kernelMode bool) {
	switch p := poison(a); {
	case a == 0:
		e.Cause = "null-pointer"
		e.add(true, "the address is 0: a NULL pointer was dereferenced")
	case a < 4096:
		e.Cause = "near-null"
		e.add(true, "the address %#x is in the first page: a NULL struct pointer was dereferenced at member offset %#x", a, a)
	case !canonical(a):
		e.Cause = "non-canonical"
		e.add(true, "%#x is not a canonical x86-64 address (bits 63..47 differ): the pointer is corrupted or poisoned", a)
		if p != "" {
			e.Cause = "poison"
			e.add(true, "it is %s", p)
		}
	case p != "":
		e.Cause = "poison"
		e.add(true, "%#x is %s", a, p)
	case a < 0x0000800000000000 && kernelMode:
		e.Cause = "user-address"
		e.add(true, "%#x is a user-space address accessed by kernel code: a user pointer used without copy_from_user()/copy_to_user() (SMAP forbids it)", a)
	default:
		e.Cause = "bad-address"
		e.add(false, "%#x is a kernel address that is not mapped (freed, vmalloc guard, or a stale pointer)", a)
	}
}

// traceBase uses debug info: which variable holds the base register at the trap, and
// where the register was loaded from on the straight-line path before it.
func traceBase(e *Explanation, r *oops.Report, dbg *Debug, mem *x86asm.Mem) {
	b := dbg.Binary
	base := x86Family[mem.Base]
	vars, err := b.VarsAt(dbg.PC)
	if err != nil {
		e.add(false, "no variable information at the trap: %v", err)
		return
	}
	if v := varInReg(vars, base); v != nil {
		e.Variable = v.Name
		e.add(true, "%%%s holds %s (%s) at the trapping instruction", lower(base), v.Name, symbolize.TypeName(v.Type))
		if pt, ok := symbolize.Pointee(v.Type); ok {
			if m, _, exact, ok := symbolize.MemberAt(pt, mem.Disp); ok {
				e.Member = fmt.Sprintf("accessing %s->%s", v.Name, m)
				e.add(exact, "offset %#x into %s is %s", mem.Disp, symbolize.TypeName(pt), m)
			}
		}
	}
	// Walk back to the instruction that last wrote the base register.
	sym, ok := b.SymbolAt(dbg.PC)
	if !ok {
		return
	}
	text, err := b.Text(sym.Addr, dbg.PC-sym.Addr)
	if err != nil {
		return
	}
	type dec struct {
		addr uint64
		in   x86asm.Inst
	}
	var insts []dec
	for off := 0; off < len(text); {
		in, err := x86asm.Decode(text[off:], 64)
		if err != nil || in.Len == 0 {
			break
		}
		insts = append(insts, dec{sym.Addr + uint64(off), in})
		off += in.Len
	}
	for i := len(insts) - 1; i >= 0; i-- {
		in := insts[i].in
		if in.Op == x86asm.CALL && base == "RAX" {
			e.add(false, "%%rax was last set by the call at %s+%#x (its return value), on the straight-line path",
				sym.Name, insts[i].addr-sym.Addr)
			return
		}
		dst, ok := in.Args[0].(x86asm.Reg)
		if !ok || x86Family[dst] != base || !writes(in.Op) {
			continue
		}
		at := fmt.Sprintf("%s+%#x", sym.Name, insts[i].addr-sym.Addr)
		raw := textBytes(text, insts[i].addr-sym.Addr, in.Len)
		text := disasm.ATT(&in, raw, insts[i].addr)
		src, isMem := in.Args[1].(x86asm.Mem)
		if in.Op != x86asm.MOV || !isMem || src.Base == 0 || src.Base == x86asm.RIP {
			e.add(false, "%%%s was last written by `%s` at %s", lower(base), text, at)
			return
		}
		e.add(true, "%%%s was loaded by `%s` at %s: from offset %#x of the pointer in %%%s",
			lower(base), text, at, src.Disp, lower(x86Family[src.Base]))
		vars, err := b.VarsAt(insts[i].addr)
		if err != nil {
			return
		}
		v := varInReg(vars, x86Family[src.Base])
		if v == nil {
			e.add(false, "no variable is recorded in %%%s at %s", lower(x86Family[src.Base]), at)
			return
		}
		pt, ok := symbolize.Pointee(v.Type)
		if !ok {
			return
		}
		m, mt, exact, ok := symbolize.MemberAt(pt, src.Disp)
		if !ok {
			return
		}
		e.Chain = v.Name + "->" + m
		regVal := r.Registers[base]
		state := fmt.Sprintf("%#x", regVal)
		if regVal == 0 {
			state = "NULL"
		}
		e.add(exact, "%%%s held %s (%s), so %%%s = %s->%s, which is %s", lower(x86Family[src.Base]), v.Name,
			symbolize.TypeName(v.Type), lower(base), v.Name, m, state)
		if ft, ok := symbolize.Pointee(mt); ok {
			if fm, _, fexact, ok := symbolize.MemberAt(ft, mem.Disp); ok {
				e.Member = fmt.Sprintf("%s is %s, so &%s->%s faults", e.Chain, state, e.Chain, fm)
				e.add(exact && fexact, "the faulting operand is %s->%s (offset %#x in %s)", e.Chain, fm, mem.Disp, symbolize.TypeName(ft))
				return
			}
		}
		e.Member = fmt.Sprintf("%s is %s", e.Chain, state)
		return
	}
}

func varInReg(vars []symbolize.Var, reg string) *symbolize.Var {
	for i := range vars {
		v := &vars[i]
		if v.Kind == symbolize.LocReg && v.Reg >= 0 && v.Reg < len(dwarfX86) && dwarfX86[v.Reg] == reg {
			return v
		}
	}
	return nil
}

func lower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'A' && c <= 'Z' {
			b[i] = c + 32
		}
	}
	if len(b) == 3 && b[0] == 'r' && b[1] == '0' {
		return "r" + string(b[2:]) // R08 → r8
	}
	return string(b)
}

func textBytes(b []byte, off uint64, n int) []byte {
	if off+uint64(n) > uint64(len(b)) {
		return nil
	}
	return b[off : off+uint64(n)]
}
