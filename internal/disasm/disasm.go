// Package disasm turns the Code: bytes of an oops into instructions with the trapping
// one marked, for x86-64 and arm64, in AT&T/GNU syntax as objdump prints it.
package disasm

import (
	"errors"
	"fmt"
	"strings"

	"golang.org/x/arch/x86/x86asm"
)

// Inst is one decoded instruction.
type Inst struct {
	Offset int    `json:"offset"`         // in the Code bytes
	Addr   uint64 `json:"addr,omitempty"` // when the trapping instruction's address is known
	Bytes  []byte `json:"bytes"`
	Text   string `json:"text"` // GNU syntax, e.g. "mov 0x0,%rbx"
	Trap   bool   `json:"trap,omitempty"`
	// Op is the mnemonic and Args the operands as decoded, for analysis.
	Op   string   `json:"op"`
	Args []string `json:"args,omitempty"`
	x86  *x86asm.Inst
}

// X86 returns the decoded x86 instruction, or nil.
func (i *Inst) X86() *x86asm.Inst { return i.x86 }

// ErrNoTrap is returned when the Code bytes carry no trap marker.
var ErrNoTrap = errors.New("code bytes have no trapping-instruction marker")

// Symbolizer names an address for branch targets; it may be nil.
type Symbolizer func(addr uint64) (name string, base uint64)

// X86 decodes 64-bit x86 Code bytes. trap is the index of the marked byte; trapAddr is
// its address (the RIP) or 0 when unknown. The instructions before the trap are decoded
// from the earliest offset whose instruction stream lands exactly on the trap byte, the
// way scripts/decodecode aligns them.
func X86(code []byte, trap int, trapAddr uint64, sym Symbolizer) ([]Inst, error) {
	if trap < 0 || trap >= len(code) {
		return nil, ErrNoTrap
	}
	// Of the start offsets whose stream lands on the trap, the earliest with the fewest
	// implausible instructions wins: a misaligned start decodes data-like bytes into
	// far returns, x87 and port I/O before the streams converge.
	var before []Inst
	best := -1
	for s := 0; s <= trap; s++ {
		insts, ok := decodeX86(code[s:trap], s, trap, trapAddr, sym)
		if !ok {
			continue
		}
		score := implausible(insts)
		if best < 0 || score < best {
			before, best = insts, score
		}
		if score == 0 || s >= 16 {
			break
		}
	}
	after, _ := decodeX86(code[trap:], trap, trap, trapAddr, sym)
	if len(after) == 0 {
		return nil, fmt.Errorf("trapping bytes % x do not decode", code[trap:min(trap+15, len(code))])
	}
	after[0].Trap = true
	return append(before, after...), nil
}

// implausible counts instructions kernel code hardly ever contains: far returns and
// calls, x87, port I/O, BCD and segment-load leftovers of 32-bit mode, "add %al,(%rax)"
// (two zero bytes), hlt and int.
func implausible(insts []Inst) int {
	n := 0
	for _, i := range insts {
		in := i.x86
		if in == nil {
			n++
			continue
		}
		switch in.Op {
		case x86asm.LRET, x86asm.IRET, x86asm.IRETD, x86asm.IRETQ, x86asm.LCALL, x86asm.LJMP, x86asm.IN, x86asm.OUT,
			x86asm.INSB, x86asm.INSD, x86asm.INSW, x86asm.OUTSB, x86asm.OUTSD, x86asm.OUTSW, x86asm.HLT, x86asm.INT,
			x86asm.INTO, x86asm.SAHF, x86asm.LAHF, x86asm.XLATB, x86asm.CMC, x86asm.STD, x86asm.FWAIT, x86asm.ENTER:
			n++
		case x86asm.ADD:
			if len(i.Bytes) == 2 && i.Bytes[0] == 0 && i.Bytes[1] == 0 {
				n++
			}
		default:
			if name := in.Op.String(); len(name) > 1 && name[0] == 'F' && name != "FXSAVE" && name != "FXRSTOR" {
				n++ // x87
			}
		}
	}
	return n
}

// decodeX86 decodes b (at offset base in the code) fully; ok reports whether every byte
// decoded and the last instruction ended exactly at the end of b.
func decodeX86(b []byte, base, trap int, trapAddr uint64, sym Symbolizer) ([]Inst, bool) {
	var out []Inst
	for off := 0; off < len(b); {
		in, err := x86asm.Decode(b[off:], 64)
		if err != nil || in.Len == 0 || in.Op == 0 {
			text, n, ok := ud1(b[off:])
			if !ok {
				return out, false
			}
			i := Inst{Offset: base + off, Bytes: b[off : off+n], Op: "ud1", Text: text}
			if trapAddr != 0 {
				i.Addr = trapAddr + uint64(base+off) - uint64(trap)
			}
			out = append(out, i)
			off += n
			continue
		}
		i := Inst{Offset: base + off, Bytes: b[off : off+in.Len], Op: strings.ToLower(in.Op.String())}
		if trapAddr != 0 {
			i.Addr = trapAddr + uint64(base+off) - uint64(trap)
		}
		var symname func(uint64) (string, uint64)
		if sym != nil {
			symname = sym
		}
		_ = symname
		i.Text = att(&in, b[off:off+in.Len], i.Addr)
		for _, a := range in.Args {
			if a != nil {
				i.Args = append(i.Args, a.String())
			}
		}
		inCopy := in
		i.x86 = &inCopy
		out = append(out, i)
		off += in.Len
	}
	return out, true
}

// ARM64 decodes arm64 Code words (little-endian bytes, 4 per instruction) in
// objdump's GNU syntax (see a64Text). trap is the byte index of the marked word;
// trapAddr its address (the pc), or 0 when unknown (branch targets are then
// relative). Words that do not decode are ".inst 0x… ; undefined", as objdump
// prints them.
func ARM64(code []byte, trap int, trapAddr uint64) ([]Inst, error) {
	return words(code, trap, trapAddr, a64Text)
}

// words decodes Code made of 4-byte instruction words with text, the trapping word
// at byte trap and its address trapAddr (0 when unknown).
func words(code []byte, trap int, trapAddr uint64, text func(word []byte, addr uint64) (string, string, []string)) ([]Inst, error) {
	if trap < 0 || trap >= len(code) || trap%4 != 0 {
		return nil, ErrNoTrap
	}
	var out []Inst
	for off := 0; off+4 <= len(code); off += 4 {
		i := Inst{Offset: off, Bytes: code[off : off+4], Trap: off == trap}
		if trapAddr != 0 {
			i.Addr = trapAddr + uint64(off) - uint64(trap)
		}
		i.Text, i.Op, i.Args = text(i.Bytes, i.Addr)
		out = append(out, i)
	}
	return out, nil
}

// Format renders instructions like objdump, the trapping one marked with "<-- trapping
// instruction" as scripts/decodecode does.
func Format(insts []Inst) string {
	var b strings.Builder
	for _, i := range insts {
		var hex strings.Builder
		for k, c := range i.Bytes {
			if k > 0 {
				hex.WriteByte(' ')
			}
			fmt.Fprintf(&hex, "%02x", c)
		}
		loc := fmt.Sprintf("%4x", i.Offset)
		if i.Addr != 0 {
			loc = fmt.Sprintf("%16x", i.Addr)
		}
		mark := ""
		if i.Trap {
			mark = "\t\t<-- trapping instruction"
		}
		fmt.Fprintf(&b, "%s:\t%-21s\t%s%s\n", loc, hex.String(), i.Text, mark)
	}
	return b.String()
}
