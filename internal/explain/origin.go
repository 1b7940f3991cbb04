package explain

import (
	"fmt"
	"strings"

	"golang.org/x/arch/x86/x86asm"

	"github.com/kcrash/kcrash/internal/disasm"
	"github.com/kcrash/kcrash/internal/oops"
)

// Origin is where the trapping instruction's base register got its value, found by a
// backward scan over the Code bytes before the trap (no debug info needed).
type Origin struct {
	Register    string  `json:"register"`             // the base register, e.g. R12
	Instruction string  `json:"instruction"`          // the instruction that set it, e.g. "mov 0x20(%rbx),%r12"
	Bytes       string  `json:"bytes"`                // its Code bytes, e.g. "4c 8b 63 20"
	Offset      int     `json:"offset"`               // its offset in the Code bytes
	Load        bool    `json:"load"`                 // a load from memory (else a copy or address computation)
	From        string  `json:"from,omitempty"`       // the register it was loaded from or through, e.g. RBX
	Disp        int64   `json:"disp"`                 // displacement of the load, e.g. 0x20
	FromValue   *uint64 `json:"from_value,omitempty"` // From's value in the register dump (unchanged since)
	// Argument is 1..6 when From's value equals an argument register (RDI, RSI, RDX,
	// RCX, R8, R9): the struct is most likely that argument of the function. 0 when not.
	Argument int `json:"argument,omitempty"`
}

// argRegs are the x86-64 System V argument registers in order.
var argRegs = []string{"RDI", "RSI", "RDX", "RCX", "R08", "R09"}

// callerSaved registers do not survive a call.
var callerSaved = map[string]bool{"RAX": true, "RCX": true, "RDX": true, "RSI": true, "RDI": true,
	"R08": true, "R09": true, "R10": true, "R11": true}

var ordinals = []string{"", "first", "second", "third", "fourth", "fifth", "sixth"}

// writesReg reports whether in writes the register family reg as its destination.
func writesReg(in *x86asm.Inst, reg string) bool {
	if in.Op == x86asm.CALL {
		return callerSaved[reg]
	}
	dst, ok := in.Args[0].(x86asm.Reg)
	if !ok || x86Family[dst] != reg {
		return false
	}
	switch in.Op {
	case x86asm.CMP, x86asm.TEST, x86asm.PUSH, x86asm.BT:
		return false
	}
	return true
}

// traceOrigin scans the decoded Code bytes backwards from the trap for the instruction
// that last set the base register of the faulting operand, and what that register was
// loaded from. It says how certain each step is: the scan follows the bytes as one
// straight-line path, which a jump into the middle would break.
func traceOrigin(e *Explanation, r *oops.Report, code []disasm.Inst, trapIdx int, mem *x86asm.Mem) {
	base := x86Family[mem.Base]
	if base == "" || base == "RSP" || base == "RBP" {
		return
	}
	reg := base
	for i := trapIdx - 1; i >= 0; i-- {
		in := code[i].X86()
		if in == nil {
			return
		}
		if !writesReg(in, reg) {
			continue
		}
		o := &Origin{Register: base, Instruction: code[i].Text, Bytes: hexBytes(code[i].Bytes), Offset: code[i].Offset}
		if in.Op == x86asm.CALL {
			e.add(false, "%s is caller-saved and the call `%s` before the trap may have changed it", base, code[i].Text)
			return
		}
		branches := branchesBetween(code, i, trapIdx)
		certain := branches == 0
		src := in.Args[1]
		switch a := src.(type) {
		case x86asm.Mem:
			if a.Base == 0 || a.Base == x86asm.RIP || a.Index != 0 {
				e.add(certain, "%s was last set by `%s` (Code bytes %s)", base, code[i].Text, o.Bytes)
				e.Origin = o
				return
			}
			o.From, o.Disp = x86Family[a.Base], a.Disp
			o.Load = in.Op == x86asm.MOV || in.Op == x86asm.MOVZX || in.Op == x86asm.MOVSX || in.Op == x86asm.MOVSXD
		case x86asm.Reg:
			if in.Op == x86asm.MOV {
				// A register copy: follow the source register.
				e.add(certain, "%s was copied from %s by `%s` (Code bytes %s)", reg, x86Family[a], code[i].Text, o.Bytes)
				reg = x86Family[a]
				if reg == "" {
					return
				}
				continue
			}
			e.add(certain, "%s was last set by `%s` (Code bytes %s)", base, code[i].Text, o.Bytes)
			e.Origin = o
			return
		default:
			e.add(certain, "%s was last set by `%s` (Code bytes %s)", base, code[i].Text, o.Bytes)
			e.Origin = o
			return
		}
		e.Origin = o
		val, haveVal := r.Registers[base]
		state := fmt.Sprintf("%#x", val)
		if haveVal && val == 0 {
			state = "NULL"
		}
		what := "loaded"
		if !o.Load {
			what = "computed"
		}
		e.add(certain, "%s was %s by `%s` (Code bytes %s): %s = *(%s + %#x)%s", base, what, code[i].Text, o.Bytes,
			base, o.From, o.Disp, pathNote(branches))
		if !o.Load {
			return
		}
		// Is the source register unchanged between the load and the trap?
		for k := i + 1; k < trapIdx; k++ {
			if in := code[k].X86(); in != nil && writesReg(in, o.From) {
				e.add(false, "%s changed after the load (`%s`): its value in the register dump is not the one the load used", o.From, code[k].Text)
				return
			}
		}
		// Was the source register itself copied from an argument register earlier in
		// the bytes ("mov %rdi,%rbx" in the prologue)? Then the argument is certain.
		for k := i - 1; k >= 0; k-- {
			in := code[k].X86()
			if in == nil || !writesReg(in, o.From) {
				continue
			}
			if src, ok := in.Args[1].(x86asm.Reg); ok && in.Op == x86asm.MOV {
				for n, ar := range argRegs {
					if x86Family[src] == ar {
						o.Argument = n + 1
						e.add(branchesBetween(code, k, i) == 0, "%s was copied from %s, the %s argument, by `%s` (Code bytes %s)",
							o.From, ar, ordinals[n+1], code[k].Text, hexBytes(code[k].Bytes))
					}
				}
			}
			break
		}
		fv, ok := r.Registers[o.From]
		if !ok {
			return
		}
		o.FromValue = &fv
		copied := o.Argument > 0
		for n, ar := range argRegs {
			if copied {
				break
			}
			if ar != o.From && r.Registers[ar] == fv && fv != 0 {
				if _, ok := r.Registers[ar]; ok {
					o.Argument = n + 1
					break
				}
			}
		}
		owner := fmt.Sprintf("the struct %s points to (%#x)", o.From, fv)
		if copied {
			owner = fmt.Sprintf("the struct in %s, the function's %s argument", o.From, ordinals[o.Argument])
		} else if o.Argument > 0 {
			e.add(false, "%s = %#x equals %s, the register of the function's %s argument: %s most likely holds the %s argument",
				o.From, fv, argRegs[o.Argument-1], ordinals[o.Argument], o.From, ordinals[o.Argument])
			owner = fmt.Sprintf("the struct in %s, the function's %s argument", o.From, ordinals[o.Argument])
		}
		if haveVal {
			e.add(true, "so the pointer at offset %#x of %s, is %s, and the faulting access reads offset %#x of the struct it should point to",
				o.Disp, owner, state, mem.Disp)
		}
		return
	}
}

func pathNote(branches int) string {
	if branches == 0 {
		return ""
	}
	return fmt.Sprintf(" (assuming the straight-line path: %d branch(es) lie between it and the trap)", branches)
}

func branchesBetween(code []disasm.Inst, from, to int) int {
	n := 0
	for k := from + 1; k < to; k++ {
		if in := code[k].X86(); in != nil && (in.Op >= x86asm.JA && in.Op <= x86asm.JS || in.Op == x86asm.JMP || in.Op == x86asm.JRCXZ) {
			n++
		}
	}
	return n
}

func hexBytes(b []byte) string {
	var s strings.Builder
	for i, c := range b {
		if i > 0 {
			s.WriteByte(' ')
		}
		fmt.Fprintf(&s, "%02x", c)
	}
	return s.String()
}
