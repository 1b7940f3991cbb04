package disasm

import (
	"encoding/binary"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/arch/arm64/arm64asm"
)

// a64Text renders one arm64 word as binutils' objdump prints it (GNU syntax),
// given its address (0 when unknown): golang.org/x/arch's GNU syntax with
// objdump's spacing, absolute branch, adr and adrp targets, system register
// names, the "// #decimal" comment of mov immediates, udf, the SVE register
// loads and stores, and ".inst 0x… ; undefined" for anything else it cannot
// decode. It returns the text, the mnemonic and the operands as decoded.
func a64Text(word []byte, addr uint64) (text, op string, args []string) {
	w := binary.LittleEndian.Uint32(word)
	if w&0xfff8f01f == 0xd500401f {
		// MSR (immediate): arm64asm names some fields where binutils does not.
		t, _ := a64System(w)
		m, _, _ := strings.Cut(t, " ")
		return t, m, nil
	}
	if w&0x3fa00000 == 0x08800000 && (w>>22&1 == 1 || w>>15&1 == 0) {
		// LDAR, LDLAR, STLLR: binutils rejects LDAR whose Rs or Rt2 is not
		// 0b11111 but takes the LORegion forms with any (arm64asm: the reverse).
		size, rs, rt2, rn, rt := w>>30, w>>16&31, w>>10&31, w>>5&31, w&31
		suffix := [4]string{"b", "h", "", ""}[size]
		switch {
		case w>>22&1 == 1 && w>>15&1 == 1:
			if rs != 31 || rt2 != 31 {
				return fmt.Sprintf(".inst 0x%08x ; undefined", w), ".inst", nil
			}
		case w>>22&1 == 1:
			return fmt.Sprintf("ldlar%s %s, [%s]", suffix, a64Reg(rt, size == 3), a64Base(rn)), "ldlar" + suffix, nil
		default:
			return fmt.Sprintf("stllr%s %s, [%s]", suffix, a64Reg(rt, size == 3), a64Base(rn)), "stllr" + suffix, nil
		}
	}
	in, err := arm64asm.Decode(word)
	if err != nil {
		if t, ok := a64Extra(w); ok {
			m, _, _ := strings.Cut(t, " ")
			return t, m, nil
		}
		return fmt.Sprintf(".inst 0x%08x ; undefined", w), ".inst", nil
	}
	op = strings.ToLower(in.Op.String())
	for _, a := range in.Args {
		if a != nil {
			args = append(args, a.String())
		}
	}
	return a64GNU(in, w, addr), op, args
}

// a64GNU fixes up arm64asm.GNUSyntax where objdump prints otherwise.
func a64GNU(in arm64asm.Inst, w uint32, addr uint64) string {
	t := strings.TrimSpace(arm64asm.GNUSyntax(in))
	for _, a := range in.Args {
		switch a := a.(type) {
		case arm64asm.PCRel:
			rel := a.String()
			target := addr + uint64(a)
			if in.Op == arm64asm.ADRP {
				target = addr&^0xfff + uint64(a)
			}
			abs := fmt.Sprintf("0x%x", target)
			if addr == 0 {
				// Unknown address: relative, as "." counts from the instruction.
				if int64(a) < 0 {
					abs = fmt.Sprintf(".-%#x", -int64(a))
				} else {
					abs = fmt.Sprintf(".+%#x", int64(a))
				}
			}
			t = strings.Replace(t, strings.ToLower(rel), abs, 1)
		case arm64asm.Systemreg:
			s := strings.ToLower(a.String())
			if name := a64SysregName(s, in.Op == arm64asm.MSR); name != "" {
				t = strings.Replace(t, s, name, 1)
			}
		}
	}
	if in.Op == arm64asm.HINT {
		if name := a64Hints[w>>5&0x7f]; name != "" {
			return name
		}
	}
	t = a64Spacing(t)
	if c := a64MovComment(in, w); c != "" {
		t += " // " + c
	}
	// A condition operand: objdump names the condition's other spellings.
	for _, a := range in.Args {
		c, ok := a.(arm64asm.Cond)
		if !ok {
			continue
		}
		name := strings.ToLower(c.String())
		if c.Value&0xf == 15 && !c.Invert {
			// Condition 0b1111 behaves as "al" but binutils prints "nv".
			name = "nv"
			if strings.HasSuffix(t, ", al") {
				t = strings.TrimSuffix(t, "al") + "nv"
			} else {
				t = strings.Replace(t, "b.al ", "b.nv ", 1)
			}
		}
		if alt := a64CondAliases[name]; alt != "" {
			if in.Op == arm64asm.B {
				t += " // b." + strings.ReplaceAll(alt, ", ", ", b.")
			} else {
				t += " // " + name + " = " + alt
			}
		}
	}
	return t
}

// a64CondAliases are the other names binutils gives a condition (the SVE ones
// among them), which objdump prints in a comment.
var a64CondAliases = map[string]string{
	"eq": "none", "ne": "any", "cs": "hs, nlast", "cc": "lo, ul, last", "mi": "first",
	"pl": "nfrst", "hi": "pmore", "ls": "plast", "ge": "tcont", "lt": "tstop",
}

// a64Hints are the HINT #imm that objdump prints by name.
var a64Hints = map[uint32]string{
	0: "nop", 1: "yield", 2: "wfe", 3: "wfi", 4: "sev", 5: "sevl", 7: "xpaclri",
	8: "pacia1716", 10: "pacib1716", 12: "autia1716", 14: "autib1716", 16: "esb",
	17: "psb csync", 18: "tsb csync", 20: "csdb", 22: "clearbhb", 24: "paciaz",
	25: "paciasp", 26: "pacibz", 27: "pacibsp", 28: "autiaz", 29: "autiasp",
	30: "autibz", 31: "autibsp", 32: "bti", 34: "bti c", 36: "bti j", 38: "bti jc",
}

// a64Spacing puts one space after every comma outside of braces' element lists,
// as objdump does ("[x8, #24]", "[x8], #-320").
func a64Spacing(t string) string {
	if !strings.Contains(t, ",") {
		return t
	}
	var b strings.Builder
	for i := 0; i < len(t); i++ {
		b.WriteByte(t[i])
		if t[i] == ',' && i+1 < len(t) && t[i+1] != ' ' {
			b.WriteByte(' ')
		}
	}
	return b.String()
}

// a64MovComment is objdump's comment after a mov of an immediate (the aliases
// of movz, movn and orr): the value in signed decimal at the register's width.
func a64MovComment(in arm64asm.Inst, w uint32) string {
	if in.Op != arm64asm.MOV || len(in.Args) < 2 || in.Args[1] == nil {
		return ""
	}
	r, ok := in.Args[0].(arm64asm.RegSP)
	var reg arm64asm.Reg
	if ok {
		reg = arm64asm.Reg(r)
	} else if rr, ok := in.Args[0].(arm64asm.Reg); ok {
		reg = rr
	} else {
		return ""
	}
	s := in.Args[1].String()
	if !strings.HasPrefix(s, "#") {
		return ""
	}
	v, err := strconv.ParseUint(strings.TrimPrefix(s, "#"), 0, 64)
	if err != nil {
		return ""
	}
	if reg >= arm64asm.W0 && reg <= arm64asm.WZR {
		return "#" + strconv.FormatInt(int64(int32(uint32(v))), 10)
	}
	return "#" + strconv.FormatInt(int64(v), 10)
}

// a64SysregName names a system register "s3_3_c0_c0_7" as objdump does
// (a64sysregs, generated from binutils), or "".
func a64SysregName(s string, write bool) string {
	var op0, op1, crn, crm, op2 int
	if n, err := fmt.Sscanf(s, "s%d_%d_c%d_c%d_%d", &op0, &op1, &crn, &crm, &op2); n != 5 || err != nil {
		return ""
	}
	if op0 < 2 || op0 > 3 || op1 > 7 || crn > 15 || crm > 15 || op2 > 7 {
		return ""
	}
	key := uint16(op0-2)<<14 | uint16(op1)<<11 | uint16(crn)<<7 | uint16(crm)<<3 | uint16(op2)
	if write {
		if n, ok := a64SysregsWrite[key]; ok {
			return n
		}
	}
	return a64Sysregs[key]
}

// a64Extra decodes the words arm64asm does not know but objdump does: UDF and
// the SVE register loads and stores of a vector or predicate with a
// vector-length-scaled offset (the kernel's SVE state save and restore).
func a64Extra(w uint32) (string, bool) {
	if w>>16 == 0 {
		return fmt.Sprintf("udf #%d", w&0xffff), true
	}
	if t, ok := a64Atomic(w); ok {
		return t, true
	}
	if t, ok := a64Tags(w); ok {
		return t, true
	}
	if t, ok := a64System(w); ok {
		return t, true
	}
	// LDR/STR (vector): 1000 0101 10 imm9h 010 imm9l Rn Zt (LDR), 1110 0101 10 … (STR)
	// LDR/STR (predicate): same with bits 15:13 = 000 and bit 4 = 0.
	top := w & 0xffc00000
	if top == 0x85800000 || top == 0xe5800000 {
		imm := int32((w>>16&0x3f)<<3|(w>>10&7)) << 23 >> 23 // imm9, signed
		rn := w >> 5 & 31
		mn := "ldr"
		if top == 0xe5800000 {
			mn = "str"
		}
		base := "x" + strconv.Itoa(int(rn))
		if rn == 31 {
			base = "sp"
		}
		off := ""
		if imm != 0 {
			off = fmt.Sprintf(", #%d, mul vl", imm)
		}
		switch w >> 13 & 7 {
		case 2: // vector
			return fmt.Sprintf("%s z%d, [%s%s]", mn, w&31, base, off), true
		case 0: // predicate
			if w&0x10 == 0 {
				return fmt.Sprintf("%s p%d, [%s%s]", mn, w&15, base, off), true
			}
		}
	}
	// STNT1B/H/W/D (vector plus scalar, SVE2), the non-temporal scatter stores:
	// 1110010 msz:2 esz:1 0 Rm 001 Pg Zn Zt; esz 0: .d elements, 1: .s (not for D).
	if w&0xfe20e000 == 0xe4002000 {
		msz, elem := w>>23&3, "d"
		if w>>22&1 == 1 {
			if msz == 3 {
				return "", false
			}
			elem = "s"
		}
		zt, pg, zn, rm := w&31, w>>10&7, w>>5&31, w>>16&31
		xm := "x" + strconv.Itoa(int(rm))
		if rm == 31 {
			xm = "xzr"
		}
		return fmt.Sprintf("stnt1%c {z%d.%s}, p%d, [z%d.%s, %s]", "bhwd"[msz], zt, elem, pg, zn, elem, xm), true
	}
	return "", false
}

// a64Reg names general register n of an instruction's operand size (x or w),
// 31 being the zero register.
func a64Reg(n uint32, x bool) string {
	p := "w"
	if x {
		p = "x"
	}
	if n == 31 {
		return p + "zr"
	}
	return p + strconv.Itoa(int(n))
}

// a64Base names a base register, 31 being sp.
func a64Base(n uint32) string {
	if n == 31 {
		return "sp"
	}
	return "x" + strconv.Itoa(int(n))
}

// a64Atomic decodes the ARMv8.1 LSE atomics arm64asm lacks: the atomic memory
// operations LD<op>/ST<op> and SWP, CAS and CASP (Arm ARM C4.1.94: "Atomic
// memory operations", "Compare and swap").
func a64Atomic(w uint32) (string, bool) {
	size := w >> 30
	suffix := [4]string{"b", "h", "", ""}[size]
	rs, rn, rt := w>>16&31, w>>5&31, w&31
	x := size == 3
	switch {
	case w&0x3f200c00 == 0x38200000: // size 111 0 00 A R 1 Rs o3 opc 00 Rn Rt
		a, r, o3, opc := w>>23&1, w>>22&1, w>>15&1, w>>12&7
		var op string
		switch {
		case o3 == 0:
			op = [8]string{"add", "clr", "eor", "set", "smax", "smin", "umax", "umin"}[opc]
		case opc == 0:
			op = "swp"
		case (opc == 2 || opc == 3) && size == 3 && a == 0 && r == 0:
			// ST64BV0, ST64BV (ARMv8.7 LS64): status register, data, base.
			mn := [2]string{"st64bv0", "st64bv"}[opc-2]
			return fmt.Sprintf("%s %s, %s, [%s]", mn, a64Reg(rs, true), a64Reg(rt, true), a64Base(rn)), true
		default:
			return "", false // LDAPR and the rest: not LSE
		}
		ord := ""
		if a == 1 {
			ord += "a"
		}
		if r == 1 {
			ord += "l"
		}
		if op != "swp" && rt == 31 && a == 0 {
			// ST<op>: the load's result discarded (binutils prints the alias).
			return fmt.Sprintf("st%s%s%s %s, [%s]", op, ord, suffix, a64Reg(rs, x), a64Base(rn)), true
		}
		mn := "ld" + op
		if op == "swp" {
			mn = "swp"
		}
		return fmt.Sprintf("%s%s%s %s, %s, [%s]", mn, ord, suffix, a64Reg(rs, x), a64Reg(rt, x), a64Base(rn)), true
	case w&0x3fa07c00 == 0x08a07c00: // size 001000 1 L 1 Rs o0 11111 Rn Rt
		ord := ""
		if w>>22&1 == 1 {
			ord += "a"
		}
		if w>>15&1 == 1 {
			ord += "l"
		}
		return fmt.Sprintf("cas%s%s %s, %s, [%s]", ord, suffix, a64Reg(rs, x), a64Reg(rt, x), a64Base(rn)), true
	case w&0xbfa07c00 == 0x08207c00: // 0 sz 001000 0 L 1 Rs o0 11111 Rn Rt
		if rs&1 != 0 || rt&1 != 0 {
			return "", false
		}
		ord := ""
		if w>>22&1 == 1 {
			ord += "a"
		}
		if w>>15&1 == 1 {
			ord += "l"
		}
		px := w>>30&1 == 1
		return fmt.Sprintf("casp%s %s, %s, %s, %s, [%s]", ord, a64Reg(rs, px), a64Reg(rs+1, px), a64Reg(rt, px), a64Reg(rt+1, px), a64Base(rn)), true
	}
	return "", false
}

// a64Tags decodes the MTE tag loads and stores (ARMv8.5): 11011001 opc 1 imm9
// op2 Rn Rt; opc and op2 pick LDG, STG, STZG, ST2G, STZ2G (post-index, offset,
// pre-index) and the whole-granule STGM, STZGM, LDGM.
func a64Tags(w uint32) (string, bool) {
	if w&0xff200000 != 0xd9200000 {
		return "", false
	}
	opc, op2 := w>>22&3, w>>10&3
	imm := int32(w>>12&0x1ff) << 23 >> 23 << 4
	rn, rt := w>>5&31, w&31
	if op2 == 0 {
		if opc == 1 { // LDG Xt, [Xn|SP{, #simm}]
			off := ""
			if imm != 0 {
				off = fmt.Sprintf(", #%d", imm)
			}
			return fmt.Sprintf("ldg %s, [%s%s]", a64Reg(rt, true), a64Base(rn), off), true
		}
		if imm != 0 {
			return "", false
		}
		mn := [4]string{"stzgm", "", "stgm", "ldgm"}[opc]
		return fmt.Sprintf("%s %s, [%s]", mn, a64Reg(rt, true), a64Base(rn)), true
	}
	mn := [4]string{"stg", "stzg", "st2g", "stz2g"}[opc]
	switch op2 {
	case 1:
		return fmt.Sprintf("%s %s, [%s], #%d", mn, a64Base(rt), a64Base(rn), imm), true
	case 3:
		return fmt.Sprintf("%s %s, [%s, #%d]!", mn, a64Base(rt), a64Base(rn), imm), true
	}
	off := ""
	if imm != 0 {
		off = fmt.Sprintf(", #%d", imm)
	}
	return fmt.Sprintf("%s %s, [%s%s]", mn, a64Base(rt), a64Base(rn), off), true
}

// a64PStateFields name MSR (immediate)'s PSTATE fields by op1<<3|op2; the
// one-bit ones take CRm 0 or 1 only.
var a64PStateFields = map[uint32]string{
	0<<3 | 3: "uao", 0<<3 | 4: "pan", 0<<3 | 5: "spsel", 1<<3 | 0: "allint",
	3<<3 | 1: "ssbs", 3<<3 | 2: "dit", 3<<3 | 4: "tco", 3<<3 | 6: "daifset", 3<<3 | 7: "daifclr",
}

// a64System decodes the exception generators HVC and SMC, SB and MSR
// (immediate), which arm64asm leaves undecoded.
func a64System(w uint32) (string, bool) {
	switch {
	case w&0xffe0001f == 0xd4000002:
		return fmt.Sprintf("hvc #%#x", w>>5&0xffff), true
	case w&0xffe0001f == 0xd4000003:
		return fmt.Sprintf("smc #%#x", w>>5&0xffff), true
	case w == 0xd50330ff:
		return "sb", true
	case w&0xffffffc0 == 0xd5031000: // WFET, WFIT (ARMv8.7)
		return fmt.Sprintf("%s %s", [2]string{"wfet", "wfit"}[w>>5&1], a64Reg(w&31, true)), true
	case w&0xfff80000 == 0xd5080000: // SYS: the IC and AT aliases
		if name, ok := a64SysOps[w>>5&0x3fff]; ok {
			if strings.HasPrefix(name, "ic iall") {
				return name, true // no register operand (binutils ignores Rt)
			}
			return name + ", " + a64Reg(w&31, true), true
		}
	case w&0xffffffe0 == 0x2518e400: // SVE PFALSE
		return fmt.Sprintf("pfalse p%d.b", w&15), w&0x10 == 0
	case w&0xfffffe1f == 0x25289000: // SVE WRFFR
		return fmt.Sprintf("wrffr p%d.b", w>>5&15), true
	case w&0xfffffff0 == 0x2519f000: // SVE RDFFR (unpredicated)
		return fmt.Sprintf("rdffr p%d.b", w&15), true
	case w&0xfffff000 == 0x04bf5000: // SVE RDVL, SME RDSVL
		return fmt.Sprintf("%s %s, #%d", [2]string{"rdvl", "rdsvl"}[w>>11&1], a64Reg(w&31, true), int32(w>>5&0x3f)<<26>>26), true
	case w&0xfff8f01f == 0xd500401f:
		op1, crm, op2 := w>>16&7, w>>8&15, w>>5&7
		switch {
		case op1 == 0 && crm == 0 && op2 <= 2:
			return [3]string{"cfinv", "xaflag", "axflag"}[op2], true
		case op1 == 3 && op2 == 3 && crm&8 == 0 && crm>>1 != 0:
			// MSR SVCRSM/SVCRZA/SVCRSMZA (SME): the smstart and smstop aliases.
			mn := [2]string{"smstop", "smstart"}[crm&1]
			return mn + [4]string{"", " sm", " za", ""}[crm>>1&3], true
		}
		name := a64PStateFields[op1<<3|op2]
		if name == "" || (crm > 1 && name != "daifset" && name != "daifclr") {
			return fmt.Sprintf("msr s0_%d_c4_c%d_%d, xzr", op1, crm, op2), true
		}
		return fmt.Sprintf("msr %s, #%#x", name, crm), true
	}
	return "", false
}

// A64Text is one arm64 instruction word (4 little-endian bytes) at addr as
// objdump prints it, mnemonic and operands separated by one space; target is
// the absolute address of a branch, adr or adrp operand (0 when it has none).
func A64Text(word []byte, addr uint64) (text string, target uint64) {
	if len(word) < 4 {
		return "(bad)", 0
	}
	text, _, _ = a64Text(word[:4], addr)
	if in, err := arm64asm.Decode(word[:4]); err == nil && addr != 0 {
		for _, a := range in.Args {
			if r, ok := a.(arm64asm.PCRel); ok {
				target = addr + uint64(r)
				if in.Op == arm64asm.ADRP {
					target = addr&^0xfff + uint64(r)
				}
			}
		}
	}
	return text, target
}

// a64SysOps are the SYS aliases (IC, AT) arm64asm does not decode, by
// op1:CRn:CRm:op2 (bits 18:5 of the word).
var a64SysOps = map[uint32]string{
	0<<11 | 7<<7 | 1<<3 | 0: "ic ialluis", 0<<11 | 7<<7 | 5<<3 | 0: "ic iallu", 3<<11 | 7<<7 | 5<<3 | 1: "ic ivau",
	0<<11 | 7<<7 | 8<<3 | 0: "at s1e1r", 0<<11 | 7<<7 | 8<<3 | 1: "at s1e1w", 0<<11 | 7<<7 | 8<<3 | 2: "at s1e0r",
	0<<11 | 7<<7 | 8<<3 | 3: "at s1e0w", 0<<11 | 7<<7 | 9<<3 | 0: "at s1e1rp", 0<<11 | 7<<7 | 9<<3 | 1: "at s1e1wp",
	4<<11 | 7<<7 | 8<<3 | 0: "at s1e2r", 4<<11 | 7<<7 | 8<<3 | 1: "at s1e2w", 4<<11 | 7<<7 | 8<<3 | 4: "at s12e1r",
	4<<11 | 7<<7 | 8<<3 | 5: "at s12e1w", 4<<11 | 7<<7 | 8<<3 | 6: "at s12e0r", 4<<11 | 7<<7 | 8<<3 | 7: "at s12e0w",
	6<<11 | 7<<7 | 8<<3 | 0: "at s1e3r", 6<<11 | 7<<7 | 8<<3 | 1: "at s1e3w",
}
