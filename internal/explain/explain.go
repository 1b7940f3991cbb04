// Package explain says why an oops happened: the trapping instruction, its memory
// operand and the registers it used with their values from the report, whether the
// computed address is the faulting one, known poison values, and — with debug info —
// the source line, the variable in the base register and where that register was
// loaded from, so the explanation names a pointer chain and a struct member.
//
// Every step says whether it is certain; guesses are labelled, never silent.
package explain

import (
	"fmt"
	"strings"

	"golang.org/x/arch/x86/x86asm"

	"github.com/kcrash/kcrash/internal/disasm"
	"github.com/kcrash/kcrash/internal/oops"
	"github.com/kcrash/kcrash/internal/symbolize"
)

// Debug is the debug info for the function holding the trapping instruction.
type Debug struct {
	Binary *symbolize.Binary
	PC     uint64 // the trapping instruction's link-time address in Binary
}

// Step is one finding, in reading order.
type Step struct {
	Text    string `json:"text"`
	Certain bool   `json:"certain"`
}

// RegUse is a register the faulting operand uses, with its value from the report.
type RegUse struct {
	Name  string `json:"name"`
	Value uint64 `json:"value"`
	Known bool   `json:"known"`
	Note  string `json:"note,omitempty"` // e.g. "NULL", "LIST_POISON1"
}

// Explanation of a fault.
type Explanation struct {
	Summary     string   `json:"summary"`
	Cause       string   `json:"cause"` // null-pointer, near-null, user-address, non-canonical, poison, exec-nx, bug, warning, …
	Instruction string   `json:"instruction,omitempty"`
	Access      string   `json:"access,omitempty"` // read, write, exec
	Operand     string   `json:"operand,omitempty"`
	Registers   []RegUse `json:"registers,omitempty"`
	Address     *uint64  `json:"address,omitempty"` // the operand's effective address
	MatchesCR2  *bool    `json:"matches_cr2,omitempty"`
	Source      string   `json:"source,omitempty"`   // file:line (inline chain joined by " <- ")
	Variable    string   `json:"variable,omitempty"` // variable held in the base register
	Chain       string   `json:"chain,omitempty"`    // the pointer chain, e.g. "skb->dev"
	Member      string   `json:"member,omitempty"`   // the member accessed through it
	// Origin is where the base register was loaded, from the Code bytes alone.
	Origin *Origin `json:"origin,omitempty"`
	Steps  []Step  `json:"steps"`
}

func (e *Explanation) add(certain bool, format string, args ...any) {
	e.Steps = append(e.Steps, Step{Text: fmt.Sprintf(format, args...), Certain: certain})
}

// x86 register families: every name of a register maps to the report's dump name.
var x86Family = map[x86asm.Reg]string{}

func init() {
	groups := [][]x86asm.Reg{
		{x86asm.AL, x86asm.AX, x86asm.EAX, x86asm.RAX}, {x86asm.CL, x86asm.CX, x86asm.ECX, x86asm.RCX},
		{x86asm.DL, x86asm.DX, x86asm.EDX, x86asm.RDX}, {x86asm.BL, x86asm.BX, x86asm.EBX, x86asm.RBX},
		{x86asm.SPB, x86asm.SP, x86asm.ESP, x86asm.RSP}, {x86asm.BPB, x86asm.BP, x86asm.EBP, x86asm.RBP},
		{x86asm.SIB, x86asm.SI, x86asm.ESI, x86asm.RSI}, {x86asm.DIB, x86asm.DI, x86asm.EDI, x86asm.RDI},
		{x86asm.R8B, x86asm.R8W, x86asm.R8L, x86asm.R8}, {x86asm.R9B, x86asm.R9W, x86asm.R9L, x86asm.R9},
		{x86asm.R10B, x86asm.R10W, x86asm.R10L, x86asm.R10}, {x86asm.R11B, x86asm.R11W, x86asm.R11L, x86asm.R11},
		{x86asm.R12B, x86asm.R12W, x86asm.R12L, x86asm.R12}, {x86asm.R13B, x86asm.R13W, x86asm.R13L, x86asm.R13},
		{x86asm.R14B, x86asm.R14W, x86asm.R14L, x86asm.R14}, {x86asm.R15B, x86asm.R15W, x86asm.R15L, x86asm.R15},
	}
	names := []string{"RAX", "RCX", "RDX", "RBX", "RSP", "RBP", "RSI", "RDI", "R08", "R09", "R10", "R11", "R12", "R13", "R14", "R15"}
	for i, g := range groups {
		for _, r := range g {
			x86Family[r] = names[i]
		}
	}
}

// dwarfX86 maps DWARF register numbers to the dump's names (System V psABI order).
var dwarfX86 = []string{"RAX", "RDX", "RCX", "RBX", "RSI", "RDI", "RBP", "RSP", "R08", "R09", "R10", "R11", "R12", "R13", "R14", "R15"}

// Explain analyses r. code is the disassembled Code: bytes (may be nil); dbg may be nil.
func Explain(r *oops.Report, code []disasm.Inst, dbg *Debug) *Explanation {
	e := &Explanation{Cause: "unknown"}
	var trap *disasm.Inst
	trapIdx := -1
	for i := range code {
		if code[i].Trap {
			trap, trapIdx = &code[i], i
		}
	}
	if trap != nil {
		e.Instruction = trap.Text
	}
	if dbg != nil {
		if locs, err := dbg.Binary.Locate(dbg.PC); err == nil && len(locs) > 0 {
			var parts []string
			for _, l := range locs {
				parts = append(parts, fmt.Sprintf("%s (%s:%d)", l.Function, l.ShortFile(), l.Line))
			}
			e.Source = strings.Join(parts, " <- ")
		}
	}
	switch r.Kind {
	case oops.KindBUG, oops.KindInvalidOpcode, oops.KindListCorruption:
		explainBug(e, r, trap)
	case oops.KindWarning, oops.KindRefcount:
		e.Cause = "warning"
		e.add(true, "WARN at %s: the kernel detected a condition it considers a bug and continued", orUnknown(r.Source))
	case oops.KindNullDeref, oops.KindPageFault, oops.KindGPF:
		explainFault(e, r, code, trapIdx, dbg)
	default:
		e.Cause = string(r.Kind)
		e.add(true, "%s", r.Message)
	}
	if e.Source != "" {
		e.add(true, "source: %s", e.Source)
	}
	e.Summary = summary(e, r)
	return e
}

func orUnknown(s string) string {
	if s == "" {
		return "an unknown location"
	}
	return s
}

func explainBug(e *Explanation, r *oops.Report, trap *disasm.Inst) {
	e.Cause = "bug"
	if r.Kind == oops.KindListCorruption {
		e.Cause = "list-corruption"
	}
	if trap != nil && (trap.Op == "ud2" || trap.Op == "ud1") {
		e.add(true, "the trapping instruction is %s, which BUG()/BUG_ON() compile to: a deliberate stop, not a wild jump", trap.Op)
	}
	if r.Source != "" {
		e.add(true, "BUG() at %s", r.Source)
	}
	for _, l := range append(r.Context, strings.Split(r.Text, "\n")...) {
		if strings.Contains(l, "list_add corruption") || strings.Contains(l, "list_del corruption") {
			e.add(true, "the list debugging check reported: %s", strings.TrimSpace(l))
		}
	}
	for _, name := range sortedRegs(r.Registers) {
		if note := poison(r.Registers[name]); note != "" && !strings.HasPrefix(note, "NULL") {
			e.add(false, "%s = %#x is %s", name, r.Registers[name], note)
		}
	}
}

// poison names known special values: NULL and near-NULL, slab and list poison, KASAN
// shadow, error pointers.
func poison(v uint64) string {
	switch {
	case v == 0:
		return "NULL"
	case v < 4096:
		return fmt.Sprintf("NULL+%#x (a member of a NULL struct pointer)", v)
	case v>>32 == 0xdead0000 && v&0xffffffff <= 0x1000:
		// include/linux/poison.h: POISON_POINTER_DELTA is 0xdead000000000000 on x86-64.
		switch v & 0xffffffff {
		case 0x100:
			return "LIST_POISON1 (list entry already deleted: ->next)"
		case 0x122:
			return "LIST_POISON2 (list entry already deleted: ->prev)"
		}
		return "a 0xdead… poison pointer (include/linux/poison.h)"
	case v == 0x6b6b6b6b6b6b6b6b:
		return "slab POISON_FREE (0x6b): memory read after it was freed"
	case v == 0x5a5a5a5a5a5a5a5a:
		return "slab POISON_INUSE (0x5a): uninitialised slab memory"
	case v == 0xcccccccccccccccc || v == 0xbbbbbbbbbbbbbbbb:
		return "SLUB red zone bytes (0xcc/0xbb): an out-of-bounds access"
	case v>>56 == 0x6b && v&0xffffffff == 0x6b6b6b6b:
		return "partly slab POISON_FREE: use after free"
	case v >= 0xfffffffffffff001:
		return fmt.Sprintf("an error pointer ERR_PTR(-%d) used as a pointer", ^v+1)
	case v>>48 == 0xdfff && v&0xffff000000000000 == 0xdfff000000000000 && v < 0xdffffc0000100000:
		return "a KASAN shadow address near NULL's shadow (0xdffffc0000000000): a NULL-ish pointer under KASAN"
	}
	return ""
}

func canonical(v uint64) bool {
	top := v >> 47
	return top == 0 || top == 0x1ffff
}

func sortedRegs(regs map[string]uint64) []string {
	var out []string
	for _, n := range []string{"RAX", "RBX", "RCX", "RDX", "RSI", "RDI", "RBP", "R08", "R09", "R10", "R11", "R12", "R13", "R14", "R15"} {
		if _, ok := regs[n]; ok {
			out = append(out, n)
		}
	}
	return out
}

func summary(e *Explanation, r *oops.Report) string {
	var b strings.Builder
	switch e.Cause {
	case "null-pointer", "near-null":
		fmt.Fprintf(&b, "NULL pointer dereference")
	case "user-address":
		fmt.Fprintf(&b, "kernel access to a user-space address")
	case "non-canonical":
		fmt.Fprintf(&b, "access through a non-canonical (corrupted) pointer")
	case "poison":
		fmt.Fprintf(&b, "access through a poisoned pointer")
	case "exec-nx":
		fmt.Fprintf(&b, "execution of non-executable memory")
	case "bug", "list-corruption":
		fmt.Fprintf(&b, "BUG() assertion")
	default:
		fmt.Fprintf(&b, "%s", r.Kind)
	}
	if e.Access != "" && e.Address != nil {
		fmt.Fprintf(&b, ": %s of %#x", e.Access, *e.Address)
	}
	if e.Instruction != "" {
		fmt.Fprintf(&b, " by `%s`", e.Instruction)
	}
	if r.IP != nil && r.IP.Func != "" {
		fmt.Fprintf(&b, " in %s", r.IP.Func)
	}
	if o := e.Origin; e.Member == "" && o != nil && o.Load && o.From != "" {
		state := "NULL"
		if v := r.Registers[o.Register]; v != 0 {
			state = fmt.Sprintf("%#x", v)
		}
		owner := "the struct in " + o.From
		if o.Argument > 0 {
			owner += ", the function's " + ordinals[o.Argument] + " argument"
		}
		fmt.Fprintf(&b, "; %s is %s, loaded by `%s` from offset %#x of %s", o.Register, state, o.Instruction, o.Disp, owner)
		if e.Address != nil && e.Operand != "" {
			fmt.Fprintf(&b, "; the fault reads offset %#x", *e.Address-r.Registers[o.Register])
		}
	}
	if e.Member != "" {
		fmt.Fprintf(&b, "; %s", e.Member)
	} else if e.Variable != "" {
		fmt.Fprintf(&b, "; the pointer is %s", e.Variable)
	}
	if e.Source != "" {
		fmt.Fprintf(&b, " at %s", strings.SplitN(e.Source, " <- ", 2)[0])
	}
	return b.String()
}
