package explain

import (
	"fmt"
	"regexp"
	"strconv"

	"github.com/kcrash/kcrash/internal/disasm"
	"github.com/kcrash/kcrash/internal/oops"
)

// Exception classes of ESR_ELx (arch/arm64/include/asm/esr.h) the arm64 fault
// reports carry in "Internal error: Oops: ESR".
const (
	esrIABTLow = 0x20 // instruction abort from EL0
	esrIABTCur = 0x21 // instruction abort from the kernel
	esrDABTLow = 0x24
	esrDABTCur = 0x25
)

// a64FaultStatus names a DFSC/IFSC (ESR ISS bits 5:0).
func a64FaultStatus(fsc uint64) string {
	lvl := fsc & 3
	switch fsc >> 2 {
	case 0:
		return fmt.Sprintf("address size fault at level %d", lvl)
	case 1:
		return fmt.Sprintf("translation fault at level %d (the address is not mapped)", lvl)
	case 2:
		return fmt.Sprintf("access flag fault at level %d", lvl)
	case 3:
		return fmt.Sprintf("permission fault at level %d (mapped, but not for this access)", lvl)
	}
	switch fsc {
	case 0x10:
		return "synchronous external abort"
	case 0x11:
		return "synchronous tag check fault (MTE)"
	case 0x21:
		return "alignment fault"
	case 0x30:
		return "TLB conflict abort"
	}
	return fmt.Sprintf("fault status %#x", fsc)
}

// a64Mem matches the memory operand of an arm64 load or store as objdump
// prints it: [base], [base, #imm], [base, #imm]!, [base], #imm (post-index),
// [base, xN] and [base, xN, lsl #s].
var a64Mem = regexp.MustCompile(`\[(x\d+|sp)(?:, #(-?\d+)|, ([xw]\d+)(?:, (?:lsl|sxtw|uxtw) #(\d+))?)?\]`)

// explainFaultA64 is explainFault for arm64: the ESR decoded, the trapping
// load or store's address computed from the report's registers and compared
// with the fault address, and the address classified.
func explainFaultA64(e *Explanation, r *oops.Report, trap *disasm.Inst) {
	far := r.FaultAddress
	kernel := true
	write := false
	if r.ErrorCode != nil {
		esr := *r.ErrorCode
		ec, fsc := esr>>26&0x3f, esr&0x3f
		switch ec {
		case esrDABTLow, esrDABTCur:
			acc := "read"
			if esr>>6&1 == 1 && esr>>8&1 == 0 {
				acc, write = "write", true
			}
			kernel = ec == esrDABTCur
			e.add(true, "ESR %#x: data abort (EC %#x) on a %s from %s: %s", esr, ec, acc, map[bool]string{true: "the kernel", false: "user space"}[kernel], a64FaultStatus(fsc))
		case esrIABTLow, esrIABTCur:
			e.Cause, e.Access = "exec-nx", "exec"
			e.Address = far
			e.add(true, "ESR %#x: instruction abort (EC %#x): %s", esr, ec, a64FaultStatus(fsc))
			if fsc>>2 == 3 {
				e.add(true, "the CPU jumped to %s, which is mapped but not executable: code ran into data or a corrupted function pointer", ipName(r))
			} else {
				e.add(true, "the CPU jumped to %s, which is not mapped: a corrupted function pointer or return address", ipName(r))
			}
			return
		default:
			e.add(true, "ESR %#x: exception class %#x", esr, ec)
		}
	}
	classifyAt := func(a uint64) {
		e.Address = &a
		classifyA64(e, a, kernel)
	}
	if trap == nil || trap.Op == ".inst" {
		if far != nil {
			classifyAt(*far)
		}
		e.add(false, "no decodable trapping instruction in the report: the analysis stops at the fault address")
		return
	}
	e.add(true, "the trapping instruction is `%s` (Code word %s)", trap.Text, hexBytes(trap.Bytes))
	m := a64Mem.FindStringSubmatch(trap.Text)
	if m == nil {
		e.add(true, "the trapping instruction `%s` has no memory operand", trap.Text)
		if far != nil {
			classifyAt(*far)
		}
		return
	}
	e.Operand = m[0]
	e.Access = "read"
	if write {
		e.Access = "write"
	}
	base, ok := r.Registers[m[1]]
	ea := base
	if ok && m[2] != "" {
		imm, _ := strconv.ParseInt(m[2], 10, 64)
		// Post-index ("[xN], #imm") accesses the base itself; the regexp only
		// takes an immediate inside the brackets.
		ea = base + uint64(imm)
	}
	if ok && m[3] != "" {
		idx, ok2 := r.Registers["x"+m[3][1:]]
		if m[3][0] == 'w' {
			idx = uint64(uint32(idx))
		}
		sh, _ := strconv.Atoi(m[4])
		ea, ok = base+idx<<uint(sh), ok2
	}
	if !ok {
		if far != nil {
			classifyAt(*far)
		}
		return
	}
	e.add(true, "the %s operand %s addresses %#x", e.Access, m[0], ea)
	if far != nil {
		eq := *far == ea
		e.MatchesCR2 = &eq
		if eq {
			e.add(true, "that equals the fault address the CPU reported (FAR): this operand faulted")
		} else {
			e.add(false, "the fault address is %#x, not %#x: another access of this instruction faulted (or the registers changed)", *far, ea)
		}
	}
	classifyAt(ea)
}

// classifyA64 is classify for arm64 addresses: TTBR0 (user) below 2^48, TTBR1
// (kernel) with the top 16 bits set, anything else a tagged or corrupted pointer.
func classifyA64(e *Explanation, a uint64, kernelMode bool) {
	if classifyNullOrPoison(e, a) {
		return
	}
	switch {
	case a>>48 != 0 && a>>48 != 0xffff:
		e.Cause = "non-canonical"
		e.add(true, "%#x is neither a user (TTBR0) nor a kernel (TTBR1) address (bits 63..48 mixed): a corrupted pointer, or a tag in the top byte", a)
	case a>>48 == 0 && kernelMode:
		e.Cause = "user-address"
		e.add(true, "%#x is a user-space address accessed by kernel code: a user pointer used without copy_from_user()/copy_to_user() (PAN forbids it)", a)
	default:
		e.Cause = "bad-address"
		e.add(false, "%#x is a kernel address that is not mapped (freed, vmalloc guard, or a stale pointer)", a)
	}
}

// classifyNullOrPoison explains a NULL, first-page or poison address, the cases
// every architecture shares, and reports whether it was one.
func classifyNullOrPoison(e *Explanation, a uint64) bool {
	switch p := poison(a); {
	case a == 0:
		e.Cause = "null-pointer"
		e.add(true, "the address is 0: a NULL pointer was dereferenced")
	case a < 4096:
		e.Cause = "near-null"
		e.add(true, "the address %#x is in the first page: a NULL struct pointer was dereferenced at member offset %#x", a, a)
	case p != "":
		e.Cause = "poison"
		e.add(true, "%#x is %s", a, p)
	default:
		return false
	}
	return true
}
