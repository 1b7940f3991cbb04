package explain

import (
	"github.com/kcrash/kcrash/internal/disasm"
	"github.com/kcrash/kcrash/internal/oops"
)

// a32FSR names the fault status of 32-bit ARM's short-descriptor FSR, as
// arch/arm/mm/fsr-2level.c lists the ones a kernel oops shows.
var a32FSR = map[uint64]string{
	0x1: "alignment fault", 0x5: "section translation fault (no mapping)",
	0x7: "page translation fault (no mapping)", 0x9: "section domain fault",
	0xb: "page domain fault", 0xd: "section permission fault", 0xf: "page permission fault",
	0x8: "external abort on non-linefetch",
}

// explainFaultA32 is explainFault for 32-bit ARM: the FSR that die() prints as
// "Internal error: Oops: 817" decoded (status, and bit 11 for a write on ARMv6+), and
// the fault address classified. The trapping instruction is named, but its operands
// are not evaluated: the report's r0–r12 are not matched to the decoded registers.
func explainFaultA32(e *Explanation, r *oops.Report, trap *disasm.Inst) {
	if r.ErrorCode != nil {
		fsr := *r.ErrorCode
		status := fsr&0xf | (fsr&0x400)>>6
		acc := "read"
		if fsr&0x800 != 0 {
			acc = "write"
		}
		e.Access = acc
		if name, ok := a32FSR[status]; ok {
			e.add(true, "FSR %#x: %s on a %s", fsr, name, acc)
		} else {
			e.add(true, "FSR %#x: fault status %#x on a %s", fsr, status, acc)
		}
	}
	if trap != nil && trap.Op != "" {
		e.add(true, "the trapping instruction is `%s` (Code word %s)", trap.Text, hexBytes(trap.Bytes))
	}
	if r.FaultAddress == nil {
		return
	}
	a := *r.FaultAddress
	e.Address = &a
	if !classifyNullOrPoison(e, a) {
		e.add(false, "the fault address is %#x (32-bit ARM: kernel or user depends on the kernel's PAGE_OFFSET split)", a)
	}
}
