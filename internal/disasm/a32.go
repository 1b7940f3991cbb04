package disasm

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
	"strings"

	"golang.org/x/arch/arm/armasm"
)

// ErrThumb is returned for 32-bit ARM Code in Thumb-2 halfwords ("Code: 4620 f7ff
// (6803)"), which golang.org/x/arch does not decode.
var ErrThumb = errors.New("32-bit ARM Thumb-2 code is not disassembled")

// ARM decodes 32-bit ARM (A32) Code words, little-endian bytes 4 per instruction, in
// objdump's GNU syntax as far as golang.org/x/arch's armasm prints it. trap is the
// byte index of the marked word and trapAddr its address (the pc), or 0 when unknown.
// Words that do not decode print as objdump prints them: "@ <UNDEFINED> instruction".
func ARM(code []byte, trap int, trapAddr uint64) ([]Inst, error) {
	return words(code, trap, trapAddr, a32Text)
}

// a32Text is one A32 word as text, with its mnemonic and operands split out.
func a32Text(word []byte, addr uint64) (text, op string, args []string) {
	w := binary.LittleEndian.Uint32(word)
	if w&0xfff000f0 == 0xe7f000f0 {
		// UDF, which armasm does not know: 32-bit ARM's BUG() is "udf #18".
		text = fmt.Sprintf("udf #%d", (w>>4)&0xfff0|w&0xf)
		return text, "udf", []string{text[4:]}
	}
	inst, err := armasm.Decode(word, armasm.ModeARM)
	if err != nil {
		return fmt.Sprintf("@ <UNDEFINED> instruction: 0x%08x", w), "", nil
	}
	text = armasm.GNUSyntax(inst)
	base, _, _ := strings.Cut(inst.Op.String(), ".")
	if base == "STM" && strings.Contains(text, "!,") && !strings.HasPrefix(text, "push") && !strings.HasPrefix(text, "pop") {
		// objdump spells increment-after with writeback in the divided syntax:
		// "stmiage ip!, {…}" where armasm prints "stmge".
		text = text[:3] + "ia" + text[3:]
	}
	comment := ""
	for _, a := range inst.Args {
		switch a := a.(type) {
		case armasm.PCRel:
			if addr != 0 {
				// Branch targets absolute, as objdump prints them given the address.
				if k := strings.LastIndexByte(text, ' '); k >= 0 {
					text = text[:k+1] + fmt.Sprintf("0x%x", uint32(int64(addr)+8+int64(a)))
				}
			}
		case armasm.Mem:
			if a.Base == armasm.PC && a.Sign == 0 {
				// A literal-pool load: objdump names the address it reads.
				off := int64(a.Offset)
				if a.Mode == armasm.AddrPostIndex || a.Mode == armasm.AddrLDM {
					off = 0 // the access is at the base; the offset is the writeback
				}
				if addr != 0 {
					comment = fmt.Sprintf("@ 0x%x", uint32(int64(addr)+8+off))
				} else {
					comment = fmt.Sprintf("@ .%+#x", 8+off)
				}
			} else if a.Sign == 0 && (a.Offset > 32 || a.Offset < -16) {
				comment = fmt.Sprintf("@ 0x%x", uint32(int32(a.Offset)))
			}
		case armasm.ImmAlt:
			// "#124, 8": the rotated immediate, whose value objdump shows.
			if v := bits.RotateLeft32(uint32(a.Val), -int(a.Rot)); a32ImmComment[base] && (v > 32 || int32(v) < -16) {
				comment = fmt.Sprintf("@ 0x%x", v)
			}
		case armasm.Imm:
			if a32ImmComment[base] && (a > 32 || int32(a) < -16) {
				comment = fmt.Sprintf("@ 0x%x", uint32(a))
			}
		}
	}
	if comment != "" {
		text += "\t" + comment
	}
	op, rest, _ := strings.Cut(strings.SplitN(text, "\t", 2)[0], " ")
	for _, a := range strings.Split(rest, ",") {
		if a = strings.TrimSpace(a); a != "" {
			args = append(args, a)
		}
	}
	return text, op, args
}

// a32ImmComment lists the instructions whose immediate objdump repeats in hex in a
// comment when it is above 32 or below -16 (binutils' value_in_comment).
var a32ImmComment = map[string]bool{"AND": true, "EOR": true, "SUB": true, "RSB": true, "ADD": true,
	"ADC": true, "SBC": true, "RSC": true, "TST": true, "TEQ": true, "CMP": true, "CMN": true,
	"ORR": true, "MOV": true, "BIC": true, "MVN": true, "MOVW": true, "MOVT": true}
