package crashcmd

import (
	"debug/dwarf"
	"fmt"
	"io"
	"strconv"
	"strings"

	"golang.org/x/arch/x86/x86asm"

	"github.com/kcrash/kcrash/internal/disasm"
	"github.com/kcrash/kcrash/internal/symbolize"
)

func init() {
	register(&Command{Name: "dis", Synopsis: "disassemble a function or instructions at an address (AT&T; GNU syntax on arm64); -r up to ADDR; -l source lines", Run: runDis})
}

// maxDis bounds a disassembly (bytes of one function or count instructions).
const maxDis = 1 << 16

func runDis(s *Session, w io.Writer, args []string) error {
	reverse, lines := false, false
	var rest []string
	for _, a := range args {
		if len(a) > 1 && a[0] == '-' && strings.Trim(a[1:], "rl") == "" {
			reverse = reverse || strings.Contains(a, "r")
			lines = lines || strings.Contains(a, "l")
			continue
		}
		rest = append(rest, a)
	}
	if len(rest) == 0 || len(rest) > 2 {
		return fmt.Errorf("dis: usage: dis [-rl] ADDR|SYMBOL [COUNT]")
	}
	addr, err := s.addrOrSymbol(rest[0])
	if err != nil {
		return err
	}
	sym, off, _, ok := s.K.Lookup(addr)
	start, end, count := addr, addr, 1
	isSym := !strings.HasPrefix(rest[0], "0x") && !isHexWord(rest[0])
	switch {
	case reverse && ok:
		start, end, count = sym.Addr, addr+1, maxDis
	case len(rest) == 2:
		n, err := strconv.Atoi(rest[1])
		if err != nil || n <= 0 || n > maxDis {
			return fmt.Errorf("dis: count %q", rest[1])
		}
		count, end = n, addr+uint64(n)*15 // at most 15 bytes an instruction (4 on arm64)
	case isSym && ok && off == 0 && sym.Size > 0:
		start, end, count = sym.Addr, sym.Addr+min(sym.Size, maxDis), maxDis
	default:
		end = addr + 15
	}
	if end-start > maxDis {
		return fmt.Errorf("dis: %#x is %d bytes past %s", addr, off, sym.Name)
	}
	code := make([]byte, end-start+15)
	n, err := s.K.ReadAt(code, start)
	if n < int(end-start) {
		return err
	}
	code = code[:n]
	var lastFile string
	lastLine := -1
	pc := start
	a64 := s.K.Arch != nil && s.K.Arch.Name() == "aarch64"
	for i := 0; i < count && pc < end; i++ {
		raw := code[pc-start:]
		var in x86asm.Inst
		text := ""
		if a64 {
			// arm64: 4-byte words in objdump's (and gdb's: the same opcodes
			// library) GNU syntax, a tab after the mnemonic, <sym+off> after a
			// branch, adr or adrp target.
			if len(raw) < 4 {
				break
			}
			var target uint64
			text, target = disasm.A64Text(raw, pc)
			if m, ops, ok := strings.Cut(text, " "); ok {
				text = m + "\t" + ops
			}
			if sym := s.symRef(target); target != 0 && sym != "" {
				text += " " + sym
			}
			in.Len = 4
		} else if d, err := x86asm.Decode(raw, 64); err != nil {
			in.Len = 1
			text = "(bad)"
		} else {
			in = d
			text = s.gdbInst(&in, raw[:in.Len], pc)
		}
		name, o, _ := s.symName(pc)
		if o != 0 {
			name += "+" + strconv.FormatUint(o, 10)
		}
		if lines {
			if f, l, ok := s.SourceLine(pc); ok && (f != lastFile || l != lastLine) {
				fmt.Fprintf(w, "%s: %d\n", f, l)
				lastFile, lastLine = f, l
			}
		}
		fmt.Fprintf(w, "0x%x <%s>:\t%s\n", pc, name, text)
		pc += uint64(in.Len)
	}
	return nil
}

// gdbInst renders an instruction as crash prints gdb's disassembly. It starts
// from disasm.ATT (GNU objdump's AT&T text) and applies what gdb, and crash
// on top of it, do differently:
//   - the mnemonic, with its prefixes, is padded to six columns and a space,
//     also when no operand follows ("ret    ");
//   - branch and call targets are "0xADDR <sym+DEC>" (objdump: "ADDR <sym+0xHEX>");
//   - a RIP-relative operand's "# 0xADDR" comment names the symbol there;
//   - REX.W 63 is movslq (disasm.ATT says movsxd; objdump 2.40 also says movslq);
//   - the sign extensions of rAX are cltq, cwtl, cbtw, cqto, cltd, cwtd
//     (disasm.ATT: cdqe, cwde, cbw, cqo, cdq, cwd);
//   - a DS segment prefix (3e: the kernel patches lock prefixes to it on a
//     uniprocessor) shows as %ds: on the memory operand; ATT drops it;
//   - crash marks the 5-byte nop ftrace left at a function's entry "[FTRACE NOP]".
func (s *Session) gdbInst(in *x86asm.Inst, raw []byte, pc uint64) string {
	t := disasm.ATT(in, raw, pc)
	comment := ""
	if i := strings.Index(t, "        # "); i >= 0 {
		t, comment = t[:i], t[i:]
		if a, err := parseHex(strings.TrimPrefix(comment[len("        # "):], "0x")); err == nil {
			if sym := s.symRef(a); sym != "" {
				comment += " " + sym
			}
		}
	}
	if in.Op == x86asm.MOVSXD && strings.HasPrefix(t, "movsxd ") && strings.HasSuffix(t, ",%r"+strings.TrimPrefix(strings.ToLower(in.Args[0].String()), "r")) {
		// 48 63: gdb and objdump name the 64-bit sign extension from 32 bits movslq.
		t = "movslq " + t[len("movsxd "):]
	}
	if g, ok := gdbMnemonics[t]; ok {
		t = g
	}
	mnem, ops := t, ""
	words := strings.Split(t, " ")
	for i, wd := range words {
		if i > 0 && wd != "" && !(wd[0] >= 'a' && wd[0] <= 'z') {
			mnem, ops = strings.Join(words[:i], " "), strings.Join(words[i:], " ")
			break
		}
	}
	if hasDSPrefix(raw) && !strings.Contains(ops, "%ds:") {
		ops = dsSegment(ops)
	}
	for _, a := range in.Args {
		if r, ok := a.(x86asm.Rel); ok {
			if sym := s.symRef(pc + uint64(in.Len) + uint64(int64(r))); sym != "" {
				ops += " " + sym
			}
		}
	}
	out := fmt.Sprintf("%-6s %s%s", mnem, ops, comment)
	if len(raw) == 5 && string(raw) == "\x0f\x1f\x44\x00\x00" {
		if _, off, _, ok := s.K.Lookup(pc); ok && off == 0 {
			out += " [FTRACE NOP]"
		}
	}
	return out
}

// gdbMnemonics maps disasm.ATT's operand-less mnemonics to gdb's names.
var gdbMnemonics = map[string]string{"cdqe": "cltq", "cwde": "cwtl", "cbw": "cbtw", "cqo": "cqto", "cdq": "cltd", "cwd": "cwtd"}

// hasDSPrefix reports a 3e byte among an instruction's legacy prefixes.
func hasDSPrefix(raw []byte) bool {
	for _, b := range raw {
		switch b {
		case 0x3e:
			return true
		case 0x66, 0x67, 0xf0, 0xf2, 0xf3, 0x2e, 0x36, 0x26, 0x64, 0x65:
			continue
		}
		return false
	}
	return false
}

// dsSegment puts %ds: in front of the memory operand of an operand list.
func dsSegment(ops string) string {
	depth, start := 0, 0
	for i := 0; i <= len(ops); i++ {
		if i == len(ops) || ops[i] == ',' && depth == 0 {
			if op := ops[start:i]; strings.Contains(op, "(") && !strings.HasPrefix(op, "%") {
				return ops[:start] + "%ds:" + ops[start:]
			}
			start = i + 1
			continue
		}
		switch ops[i] {
		case '(':
			depth++
		case ')':
			depth--
		}
	}
	return ops
}

// gdbName is the name gdb gives a function symbol: for GCC's clones
// (foo.part.0, foo.isra.0, foo.constprop.0) the DWARF subprogram of the clone
// starts at the symbol and carries the original name, which gdb prefers to the
// ELF symbol's; a .cold part is not a subprogram of its own, so it keeps the
// ELF name.
func gdbName(name string) string {
	for _, suf := range []string{".part.", ".isra.", ".constprop."} {
		if i := strings.Index(name, suf); i > 0 {
			name = name[:i]
		}
	}
	return name
}

// symRef is gdb's "<sym+off>" for an address, or "".
func (s *Session) symRef(a uint64) string {
	name, off, _ := s.symName(a)
	if name == "" {
		return ""
	}
	name = gdbName(name)
	if off != 0 {
		return "<" + name + "+" + strconv.FormatUint(off, 10) + ">"
	}
	return "<" + name + ">"
}

// SourceLine returns the source file and line of a runtime text address from
// the vmlinux's DWARF, or for a module's address from the debug file given
// with `mod -s`. Relative paths are joined to the compilation directory, as
// gdb prints them.
func (s *Session) SourceLine(pc uint64) (string, int, bool) {
	sym, off, mod, ok := s.K.Lookup(pc)
	if !ok {
		return "", 0, false
	}
	var b *symbolize.Binary
	var link uint64
	var compDir string
	if mod == "" {
		if s.vmlinuxLines == nil && s.linesErr == nil {
			s.vmlinuxLines, s.linesErr = symbolize.Open(s.VmlinuxPath)
			s.compDir = s.K.Vmlinux.CompDir()
		}
		b, link, compDir = s.vmlinuxLines, pc-s.K.Offset, s.compDir
	} else {
		b = s.moduleLines(mod)
		if b == nil {
			return "", 0, false
		}
		a, _, err := b.Resolve(sym.Name, off, 0)
		if err != nil {
			return "", 0, false
		}
		link = a
		compDir = s.modCompDir[mod]
	}
	if b == nil {
		return "", 0, false
	}
	locs, err := b.Locate(link)
	if err != nil || len(locs) == 0 || locs[0].Line <= 0 || locs[0].File == "" || locs[0].File == "??" {
		return "", 0, false
	}
	f := locs[0].File
	if compDir != "" && !strings.HasPrefix(f, "/") {
		f = compDir + "/" + f
	}
	return f, locs[0].Line, true
}

// moduleLines opens the debug file registered for a module with `mod -s`.
func (s *Session) moduleLines(mod string) *symbolize.Binary {
	if b, ok := s.modLines[mod]; ok {
		return b
	}
	path, ok := s.ModFiles[mod]
	if !ok {
		return nil
	}
	if s.modLines == nil {
		s.modLines, s.modCompDir = map[string]*symbolize.Binary{}, map[string]string{}
	}
	b, err := symbolize.Open(path)
	if err != nil {
		s.modLines[mod] = nil
		return nil
	}
	s.modLines[mod] = b
	if d, err := b.Dwarf(); err == nil {
		if e, err := d.Reader().Next(); err == nil && e != nil {
			s.modCompDir[mod], _ = e.Val(dwarf.AttrCompDir).(string)
		}
	}
	return b
}

// Close releases the debug files the session opened.
func (s *Session) Close() error {
	if s.vmlinuxLines != nil {
		s.vmlinuxLines.Close()
	}
	for _, b := range s.modLines {
		if b != nil {
			b.Close()
		}
	}
	return nil
}
