package disasm

import (
	"fmt"
	"strings"

	"golang.org/x/arch/x86/x86asm"
)

// ATT formats one decoded x86-64 instruction (raw: its bytes, pc: its address) as
// objdump does; see att.
func ATT(in *x86asm.Inst, raw []byte, pc uint64) string { return att(in, raw, pc) }

// att formats an x86-64 instruction in AT&T syntax the way GNU objdump (binutils 2.40)
// prints it, so output can be compared with objdump and decodecode line for line.
// x86asm decodes; its own GNUSyntax differs from current objdump in mnemonics
// (callq/retq), scale-1 and zero displacements, immediates (objdump prints them
// unsigned at the operand's width), movabs and RIP-relative comments.
func att(in *x86asm.Inst, raw []byte, pc uint64) string {
	gnu := x86asm.GNUSyntax(*in, pc, nil)
	mnem := gnu
	if i := strings.IndexByte(gnu, ' '); i >= 0 {
		mnem = gnu[:i]
	}
	// Prefix words GNUSyntax leaves in front (lock, rep, data16 …) stay as they are.
	var pre []string
	for strings.Contains(gnu, " ") && isPrefixWord(mnem) {
		pre = append(pre, mnem)
		gnu = strings.TrimSpace(gnu[len(mnem):])
		mnem = gnu
		if i := strings.IndexByte(gnu, ' '); i >= 0 {
			mnem = gnu[:i]
		}
	}
	switch mnem {
	case "callq", "jmpq", "retq", "pushq", "popq", "leaveq":
		mnem = mnem[:len(mnem)-1]
	case "icebp":
		mnem = "int1"
	case "cdqe":
		mnem = "cltq"
	case "movsxd":
		if operandWidth(in) == 64 {
			mnem = "movslq"
		}
	case "pushfq", "popfq":
		mnem = mnem[:len(mnem)-1]
	case "lcallq", "ljmpq":
		mnem = mnem[:len(mnem)-1]
	case "fisttp":
		mnem += map[int]string{2: "s", 4: "l", 8: "ll"}[in.MemBytes]
	}
	if (mnem == "rep" || mnem == "repn" || len(pre) > 0 && (pre[0] == "rep" || pre[0] == "repn")) && !isStringOp(in.Op) {
		// f3/f2 on an instruction that is not a string operation: objdump names each
		// prefix byte repz/repnz, then the instruction.
		pre = pre[:0]
		for _, b := range raw {
			if b == 0xf3 {
				pre = append(pre, "repz")
			} else if b == 0xf2 {
				pre = append(pre, "repnz")
			} else {
				break
			}
		}
		mnem = strings.ToLower(in.Op.String())
		if operandWidth(in) == in.MemBytes*8 && in.MemBytes > 0 && !hasRegArg(in) {
			mnem += map[int]string{1: "b", 2: "w", 4: "l", 8: "q"}[in.MemBytes]
		}
	}
	if in.Op == x86asm.NOP && len(in.Args) > 0 {
		if _, ok := in.Args[0].(x86asm.Mem); ok {
			pre, mnem = nopPrefixes(raw)
		}
	}
	op := opcodeByte(raw)
	if in.Op == x86asm.MOV && (in.Len >= 10 && isImm64Mov(raw) || op >= 0xa0 && op <= 0xa3) {
		mnem = "movabs"
	}
	if len(raw) == 2 && raw[0] == 0x66 && raw[1] == 0x90 {
		return "xchg %ax,%ax"
	}
	mod, hasModRM := modRM(raw)
	var ops []string
	var comment string
	width := operandWidth(in)
	for i := len(in.Args) - 1; i >= 0; i-- {
		a := in.Args[i]
		if a == nil {
			continue
		}
		switch a := a.(type) {
		case x86asm.Reg:
			if a == x86asm.DX && (in.Op == x86asm.IN || in.Op == x86asm.OUT) {
				ops = append(ops, "(%dx)")
				continue
			}
			ops = append(ops, "%"+regName(a))
		case x86asm.Imm:
			if in.Op == x86asm.INT && len(raw) > 0 && raw[len(raw)-1] == 0xcc {
				continue // int3 has no operand
			}
			if (op == 0xd0 || op == 0xd1) && a == 1 {
				continue // shift/rotate by one: objdump shows no count
			}
			v := uint64(a)
			if width < 64 {
				v &= 1<<width - 1
			}
			ops = append(ops, fmt.Sprintf("$0x%x", v))
		case x86asm.Rel:
			ops = append(ops, fmt.Sprintf("0x%x", pc+uint64(in.Len)+uint64(int64(a))))
		case x86asm.Mem:
			s := ""
			if a.Segment != 0 {
				s = "%" + regName(a.Segment) + ":"
			}
			explicit := hasModRM && (mod == 1 || mod == 2)
			if a.Disp >= 0x80000000 && a.Disp <= 0xffffffff {
				a.Disp -= 1 << 32 // disp32 is sign-extended in 64-bit addressing, RIP-relative too
			}
			if op >= 0xa0 && op <= 0xa3 && a.Base == 0 && a.Index == 0 {
				s += fmt.Sprintf("0x%x", uint64(a.Disp)) // moffs64: an absolute address
			} else if a.Base == x86asm.RIP {
				s += signedHex(a.Disp) + "(%rip)"
				comment = fmt.Sprintf("        # 0x%x", pc+uint64(in.Len)+uint64(a.Disp))
			} else {
				// No base register means a disp32 is encoded (absolute, or SIB base 101).
				if a.Disp != 0 || explicit || a.Base == 0 {
					s += signedHex(a.Disp)
				}
				if a.Base != 0 || a.Index != 0 {
					s += "("
					if a.Base != 0 {
						s += "%" + regName(a.Base)
					}
					if a.Index != 0 {
						s += fmt.Sprintf(",%%%s,%d", regName(a.Index), a.Scale)
					}
					s += ")"
				}
			}
			ops = append(ops, s)
		default:
			ops = append(ops, a.String())
		}
	}
	text := strings.Join(append(pre, mnem), " ")
	if len(ops) > 0 {
		// Far-branch and string forms keep GNUSyntax's operands.
		if isIndirectBranch(in) || mnem == "lcall" || mnem == "ljmp" {
			ops[len(ops)-1] = "*" + ops[len(ops)-1]
		}
		text += " " + strings.Join(ops, ",")
	}
	return text + comment
}

// nopPrefixes names the padding prefixes of a multi-byte nop as objdump does:
// 66 66 2e 0f 1f 84 … is "data16 cs nopw".
func nopPrefixes(raw []byte) ([]string, string) {
	var pre []string
	n66 := 0
	for _, b := range raw {
		switch b {
		case 0x66:
			n66++
			continue
		case 0x2e:
			for ; n66 > 1; n66-- {
				pre = append(pre, "data16")
			}
			pre = append(pre, "cs")
			continue
		}
		break
	}
	for ; n66 > 1; n66-- {
		pre = append(pre, "data16")
	}
	if n66 > 0 {
		return pre, "nopw"
	}
	return pre, "nopl"
}

func isStringOp(op x86asm.Op) bool {
	switch op {
	case x86asm.MOVSB, x86asm.MOVSW, x86asm.MOVSD, x86asm.MOVSQ, x86asm.STOSB, x86asm.STOSW, x86asm.STOSD, x86asm.STOSQ,
		x86asm.LODSB, x86asm.LODSW, x86asm.LODSD, x86asm.LODSQ, x86asm.SCASB, x86asm.SCASW, x86asm.SCASD, x86asm.SCASQ,
		x86asm.CMPSB, x86asm.CMPSW, x86asm.CMPSD, x86asm.CMPSQ, x86asm.INSB, x86asm.INSW, x86asm.INSD,
		x86asm.OUTSB, x86asm.OUTSW, x86asm.OUTSD:
		return true
	}
	return false
}

func hasRegArg(in *x86asm.Inst) bool {
	for _, a := range in.Args {
		if _, ok := a.(x86asm.Reg); ok {
			return true
		}
	}
	return false
}

func isPrefixWord(w string) bool {
	switch w {
	case "rex", "rex.w", "rex.W", "rex.b", "rex.r", "rex.x", "lock", "rep", "repz", "repnz", "repe", "repne", "data16", "addr32", "cs", "ds", "es", "ss", "fs", "gs", "notrack", "bnd":
		return true
	}
	return false
}

func isIndirectBranch(in *x86asm.Inst) bool {
	switch in.Op {
	case x86asm.CALL, x86asm.JMP:
		_, rel := in.Args[0].(x86asm.Rel)
		return !rel
	}
	return false
}

func signedHex(d int64) string {
	if d < 0 {
		return fmt.Sprintf("-0x%x", uint64(-d))
	}
	return fmt.Sprintf("0x%x", d)
}

// operandWidth is the width in bits at which objdump prints the instruction's immediate.
func operandWidth(in *x86asm.Inst) int {
	for _, a := range in.Args {
		if r, ok := a.(x86asm.Reg); ok {
			switch {
			case r >= x86asm.AL && r <= x86asm.R15B:
				return 8
			case r >= x86asm.AX && r <= x86asm.R15W:
				return 16
			case r >= x86asm.EAX && r <= x86asm.R15L:
				return 32
			case r >= x86asm.RAX && r <= x86asm.R15:
				return 64
			}
		}
	}
	if in.MemBytes > 0 {
		return in.MemBytes * 8
	}
	if in.DataSize > 0 {
		return in.DataSize
	}
	return 64
}

// modRM returns the mod field of the instruction's ModRM byte, found after its legacy,
// REX and VEX prefixes and opcode bytes.
func modRM(raw []byte) (byte, bool) {
	i := 0
	for i < len(raw) {
		switch b := raw[i]; {
		case b == 0x66 || b == 0x67 || b == 0xf0 || b == 0xf2 || b == 0xf3 ||
			b == 0x2e || b == 0x36 || b == 0x3e || b == 0x26 || b == 0x64 || b == 0x65:
			i++
			continue
		case b >= 0x40 && b <= 0x4f:
			i++
			continue
		case b == 0xc5:
			i += 3 // VEX2 + opcode
		case b == 0xc4:
			i += 4 // VEX3 + opcode
		case b == 0x0f:
			if i+1 < len(raw) && (raw[i+1] == 0x38 || raw[i+1] == 0x3a) {
				i += 3
			} else {
				i += 2
			}
		default:
			i++
		}
		if i < len(raw) {
			return raw[i] >> 6, true
		}
		return 0, false
	}
	return 0, false
}

// opcodeByte returns the first opcode byte after legacy and REX prefixes (0 if none).
func opcodeByte(raw []byte) byte {
	for _, b := range raw {
		switch {
		case b == 0x66 || b == 0x67 || b == 0xf0 || b == 0xf2 || b == 0xf3 ||
			b == 0x2e || b == 0x36 || b == 0x3e || b == 0x26 || b == 0x64 || b == 0x65, b >= 0x40 && b <= 0x4f:
			continue
		}
		return b
	}
	return 0
}

// isImm64Mov reports a REX.W B8+r mov with a 64-bit immediate.
func isImm64Mov(raw []byte) bool {
	for i := 0; i < len(raw); i++ {
		b := raw[i]
		if b >= 0x40 && b <= 0x4f {
			return b&8 != 0 && i+1 < len(raw) && raw[i+1] >= 0xb8 && raw[i+1] <= 0xbf
		}
		if b != 0x66 && b != 0x67 && b != 0x2e && b != 0x3e && b != 0x26 && b != 0x36 && b != 0x64 && b != 0x65 {
			return false
		}
	}
	return false
}

func regName(r x86asm.Reg) string {
	s := strings.ToLower(r.String())
	switch s {
	case "sib", "dib", "bpb", "spb":
		return s[:2] + "l"
	}
	switch {
	case strings.HasPrefix(s, "x") && len(s) <= 3:
		return "xmm" + s[1:]
	case strings.HasPrefix(s, "y") && len(s) <= 3:
		return "ymm" + s[1:]
	case strings.HasPrefix(s, "f") && len(s) == 2:
		return "st(" + s[1:] + ")"
	case strings.HasPrefix(s, "r") && strings.HasSuffix(s, "l") && len(s) >= 3 && s[1] >= '0' && s[1] <= '9':
		return s[:len(s)-1] + "d" // R8L → r8d
	}
	return s
}

// ud1 decodes UD1 (0f b9 /r), which the kernel uses as a trap (UBSAN, CFI) and
// x86asm does not know: "67 48 0f b9 3a" is "ud1 (%edx),%rdi". Only register-indirect
// forms without SIB or displacement are handled.
func ud1(b []byte) (text string, n int, ok bool) {
	i, rexW, rexR, rexB, addr32 := 0, false, false, false, false
	for ; i < len(b); i++ {
		switch c := b[i]; {
		case c == 0x67:
			addr32 = true
			continue
		case c >= 0x40 && c <= 0x4f:
			rexW, rexR, rexB = c&8 != 0, c&4 != 0, c&1 != 0
			continue
		}
		break
	}
	if i+2 >= len(b) || b[i] != 0x0f || b[i+1] != 0xb9 {
		return "", 0, false
	}
	m := b[i+2]
	mod, reg, rm := m>>6, (m>>3)&7, m&7
	if rexR {
		reg += 8
	}
	if rexB {
		rm += 8
	}
	r64 := []string{"rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi", "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15"}
	r32 := []string{"eax", "ecx", "edx", "ebx", "esp", "ebp", "esi", "edi", "r8d", "r9d", "r10d", "r11d", "r12d", "r13d", "r14d", "r15d"}
	dst := r32[reg]
	if rexW {
		dst = r64[reg]
	}
	switch {
	case mod == 3:
		src := r32[rm]
		if rexW {
			src = r64[rm]
		}
		return fmt.Sprintf("ud1 %%%s,%%%s", src, dst), i + 3, true
	case mod == 0 && rm&7 != 4 && rm&7 != 5:
		base := r64[rm]
		if addr32 {
			base = r32[rm]
		}
		return fmt.Sprintf("ud1 (%%%s),%%%s", base, dst), i + 3, true
	}
	return "", 0, false
}
