package crashcmd

import (
	"debug/dwarf"
	"debug/elf"
	"encoding/binary"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/kcrash/kcrash/internal/symbolize"
)

func init() {
	register(&Command{Name: "dis", Synopsis: "disassemble a function or instructions at an address (AT&T); -r up to ADDR; -l source lines", Run: runDis})
	register(&Command{Name: "rd", Synopsis: "read memory: rd [-p] [-32|-64] ADDR|SYMBOL [COUNT]", Run: runRd})
	register(&Command{Name: "struct", Synopsis: "show a struct or one member at an address: struct TYPE[.member] ADDR", Run: runStruct})
	register(&Command{Name: "sym", Synopsis: "symbol to address or address to symbol", Run: runSym})
	register(&Command{Name: "mod", Synopsis: "loaded modules; mod -s NAME FILE registers a module's debug file", Run: runMod})
}

func isHexWord(s string) bool {
	_, err := parseHex(s)
	return err == nil && len(s) >= 8
}

func runRd(s *Session, w io.Writer, args []string) error {
	phys, size := false, 8
	var rest []string
	for _, a := range args {
		switch a {
		case "-p":
			phys = true
		case "-64":
			size = 8
		case "-32":
			size = 4
		default:
			rest = append(rest, a)
		}
	}
	if len(rest) == 0 || len(rest) > 2 {
		return fmt.Errorf("rd: usage: rd [-p] [-32|-64] ADDR|SYMBOL [COUNT]")
	}
	addr, err := s.addrOrSymbol(rest[0])
	if err != nil {
		return err
	}
	count := 1
	if len(rest) == 2 {
		if count, err = strconv.Atoi(rest[1]); err != nil || count <= 0 || count > maxDis {
			return fmt.Errorf("rd: count %q", rest[1])
		}
	}
	buf := make([]byte, count*size)
	if phys {
		err = s.K.ReadPhys(buf, addr)
	} else {
		_, err = s.K.ReadAt(buf, addr)
	}
	if err != nil {
		return err
	}
	per := 16 / size
	for i := 0; i < count; i += per {
		fmt.Fprintf(w, "%x:  ", addr+uint64(i*size))
		var ascii strings.Builder
		for j := i; j < min(i+per, count); j++ {
			b := buf[j*size : (j+1)*size]
			if size == 8 {
				fmt.Fprintf(w, "%016x ", binary.LittleEndian.Uint64(b))
			} else {
				fmt.Fprintf(w, "%08x ", binary.LittleEndian.Uint32(b))
			}
			for _, c := range b {
				if c >= 0x20 && c < 0x7f {
					ascii.WriteByte(c)
				} else {
					ascii.WriteByte('.')
				}
			}
		}
		fmt.Fprintf(w, "  %s\n", ascii.String())
	}
	return nil
}

func runSym(s *Session, w io.Writer, args []string) error {
	if len(args) != 1 {
		return fmt.Errorf("sym: usage: sym SYMBOL|ADDR")
	}
	if a, err := s.K.LookupName(args[0]); err == nil {
		sym, _, mod, _ := s.K.Lookup(a)
		fmt.Fprintf(w, "%x (%c) %s%s\n", a, s.symType(sym.Addr, mod), args[0], modSuffix(mod))
		return nil
	}
	a, err := parseHex(args[0])
	if err != nil {
		return fmt.Errorf("sym: %s: no such symbol", args[0])
	}
	sym, off, mod, ok := s.K.Lookup(a)
	if !ok {
		return fmt.Errorf("sym: %#x: no symbol", a)
	}
	name := sym.Name
	if off != 0 {
		name += "+" + strconv.FormatUint(off, 10)
	}
	fmt.Fprintf(w, "%x (%c) %s%s\n", a, s.symType(sym.Addr, mod), name, modSuffix(mod))
	return nil
}

func modSuffix(m string) string {
	if m == "" {
		return ""
	}
	return " [" + m + "]"
}

// symType is nm's letter for a symbol by its section's flags.
func (s *Session) symType(runtime uint64, mod string) byte {
	if mod != "" {
		return 't'
	}
	link := runtime - s.K.Offset
	for _, sec := range s.K.Vmlinux.Sections() {
		if sec.Addr <= link && link < sec.Addr+sec.Size && sec.Flags&elf.SHF_ALLOC != 0 {
			switch {
			case sec.Flags&elf.SHF_EXECINSTR != 0:
				return 'T'
			case sec.Type == elf.SHT_NOBITS:
				return 'B'
			case sec.Flags&elf.SHF_WRITE != 0:
				return 'D'
			default:
				return 'R'
			}
		}
	}
	return '?'
}

func runMod(s *Session, w io.Writer, args []string) error {
	mods, err := s.K.Modules()
	if err != nil {
		return err
	}
	if len(args) >= 1 && args[0] == "-s" {
		if len(args) != 3 {
			return fmt.Errorf("mod: usage: mod -s NAME FILE")
		}
		for _, m := range mods {
			if m.Name == args[1] {
				f, err := elf.Open(args[2])
				if err != nil {
					return fmt.Errorf("mod -s %s: %w", args[1], err)
				}
				f.Close()
				if s.ModFiles == nil {
					s.ModFiles = map[string]string{}
				}
				s.ModFiles[m.Name] = args[2]
				fmt.Fprintln(w, "     MODULE       NAME                         BASE         SIZE  OBJECT FILE")
				fmt.Fprintf(w, "%x  %-20s  %x  %5d  %s\n", m.Addr, m.Name, m.Base, m.Size, args[2])
				return nil
			}
		}
		return fmt.Errorf("mod -s: no module %s loaded", args[1])
	}
	fmt.Fprintln(w, "     MODULE       NAME                         BASE         SIZE  OBJECT FILE")
	for i := len(mods) - 1; i >= 0; i-- {
		m := mods[i]
		file := "(not loaded)  [CONFIG_KALLSYMS]"
		if f, ok := s.ModFiles[m.Name]; ok {
			file = f
		}
		fmt.Fprintf(w, "%x  %-20s  %x  %5d  %s\n", m.Addr, m.Name, m.Base, m.Size, file)
	}
	return nil
}

// maxStructBytes bounds what `struct` reads and prints.
const maxStructBytes = 1 << 20

func runStruct(s *Session, w io.Writer, args []string) error {
	if len(args) != 2 {
		return fmt.Errorf("struct: usage: struct TYPE[.member[,member…]] ADDR")
	}
	typ, members, _ := strings.Cut(args[0], ".")
	addr, err := s.addrOrSymbol(args[1])
	if err != nil {
		return err
	}
	t, err := s.K.Vmlinux.Type(typ)
	if err != nil {
		return err
	}
	if members != "" {
		// crash prints each member asked for as gdb prints a struct's member,
		// every line ending in a comma.
		for _, member := range strings.Split(members, ",") {
			off, mt, err := s.K.Vmlinux.Member(typ, member)
			if err != nil {
				return err
			}
			v := s.value(mt, addr+uint64(off), "  ", 0)
			fmt.Fprintf(w, "  %s = %s,\n", member, v)
		}
		return nil
	}
	fmt.Fprintf(w, "%s %s\n", t.String(), s.value(t, addr, "", 0))
	return nil
}

// value renders memory at addr as a value of t as gdb prints it in crash:
// members separated by ",\n" (none after the last), pointers as 0x… with
// <symbol+offset> when they point into a symbol, enums by enumerator name,
// char arrays as strings with every byte but a final NUL shown (\000 escapes,
// no <repeats> folding, as crash's gdb prints them), other arrays as {a, b}.
func (s *Session) value(t dwarf.Type, addr uint64, indent string, depth int) string {
	if t.Size() > maxStructBytes {
		return "<too large>"
	}
	switch x := t.(type) {
	case *dwarf.TypedefType:
		return s.value(x.Type, addr, indent, depth)
	case *dwarf.QualType:
		return s.value(x.Type, addr, indent, depth)
	case *dwarf.StructType:
		if depth > 6 {
			return "{...}"
		}
		var b strings.Builder
		b.WriteString("{\n")
		for i, f := range x.Field {
			var v string
			if f.BitSize > 0 {
				v = s.bits(addr+uint64(f.ByteOffset), f)
			} else {
				v = s.value(f.Type, addr+uint64(f.ByteOffset), indent+"  ", depth+1)
			}
			sep := ","
			if i == len(x.Field)-1 {
				sep = ""
			}
			if f.Name == "" {
				fmt.Fprintf(&b, "%s  %s%s\n", indent, v, sep)
			} else {
				fmt.Fprintf(&b, "%s  %s = %s%s\n", indent, f.Name, v, sep)
			}
		}
		b.WriteString(indent + "}")
		return b.String()
	case *dwarf.ArrayType:
		if et := symbolize.Strip(x.Type); et.Size() == 1 && isCharType(et) {
			n := max(x.Size(), 0)
			if n > maxGdbElements+1 {
				n = maxGdbElements + 1
			}
			buf := make([]byte, n)
			if _, err := s.K.ReadAt(buf, addr); err != nil {
				return "<unreadable>"
			}
			return gdbString(buf, x.Size() > maxGdbElements+1)
		}
		if x.Count <= 0 || x.Type.Size() <= 0 {
			return "{}"
		}
		var parts []string
		for i := int64(0); i < min(x.Count, maxGdbElements); i++ {
			parts = append(parts, s.value(x.Type, addr+uint64(i*x.Type.Size()), indent+"  ", depth+1))
		}
		if x.Count > maxGdbElements {
			parts = append(parts, "...")
		}
		return "{" + strings.Join(parts, ", ") + "}"
	case *dwarf.PtrType, *dwarf.FuncType:
		v, err := s.K.U64(addr)
		if err != nil {
			return "<unreadable>"
		}
		if ref := s.symRef(v); ref != "" {
			return fmt.Sprintf("0x%x %s", v, ref)
		}
		return fmt.Sprintf("0x%x", v)
	case *dwarf.EnumType, *dwarf.IntType, *dwarf.UintType, *dwarf.CharType, *dwarf.UcharType, *dwarf.BoolType:
		n := t.Size()
		u, bad := s.readUint(addr, n)
		if bad != "" {
			return bad
		}
		sh := uint(64 - 8*n)
		switch x := t.(type) {
		case *dwarf.EnumType:
			for _, e := range x.Val {
				if e.Val == int64(u<<sh)>>sh || uint64(e.Val) == u {
					return e.Name
				}
			}
			return strconv.FormatInt(int64(u<<sh)>>sh, 10)
		case *dwarf.CharType:
			c := int64(u<<sh) >> sh
			return fmt.Sprintf("%d '%s'", c, gdbChar(byte(u), '\''))
		case *dwarf.UcharType:
			return fmt.Sprintf("%d '%s'", u, gdbChar(byte(u), '\''))
		case *dwarf.IntType:
			return strconv.FormatInt(int64(u<<sh)>>sh, 10)
		case *dwarf.BoolType:
			return strconv.FormatBool(u != 0)
		}
		return strconv.FormatUint(u, 10)
	}
	return fmt.Sprintf("<%s>", t.String())
}

// maxGdbElements is gdb's default `print elements` limit.
const maxGdbElements = 200

func isCharType(t dwarf.Type) bool {
	switch t.(type) {
	case *dwarf.CharType, *dwarf.UcharType:
		return true
	}
	return false
}

// gdbString quotes a char array as gdb does: a final NUL is not shown, other
// bytes are, escaped; truncated adds gdb's "...".
func gdbString(b []byte, truncated bool) string {
	if truncated {
		b = b[:maxGdbElements]
	} else if len(b) > 0 && b[len(b)-1] == 0 {
		b = b[:len(b)-1]
	}
	var sb strings.Builder
	sb.WriteByte('"')
	for _, c := range b {
		sb.WriteString(gdbChar(c, '"'))
	}
	sb.WriteByte('"')
	if truncated {
		sb.WriteString("...")
	}
	return sb.String()
}

// gdbChar escapes one byte inside quotes q as gdb prints it.
func gdbChar(c byte, q byte) string {
	switch c {
	case '\a':
		return `\a`
	case '\b':
		return `\b`
	case '\f':
		return `\f`
	case '\n':
		return `\n`
	case '\r':
		return `\r`
	case '\t':
		return `\t`
	case '\v':
		return `\v`
	case 033:
		return `\033`
	case '\\':
		return `\\`
	case q:
		return `\` + string(q)
	}
	if c < 0x20 || c >= 0x7f {
		return fmt.Sprintf("\\%03o", c)
	}
	return string(c)
}

// readUint reads an n-byte (1 to 8) little-endian integer at addr; on failure it
// returns the text crash prints instead ("?" or "<unreadable>").
func (s *Session) readUint(addr uint64, n int64) (uint64, string) {
	if n <= 0 || n > 8 {
		return 0, "?"
	}
	b := make([]byte, 8)
	if _, err := s.K.ReadAt(b[:n], addr); err != nil {
		return 0, "<unreadable>"
	}
	return binary.LittleEndian.Uint64(b), ""
}

func (s *Session) bits(addr uint64, f *dwarf.StructField) string {
	u, bad := s.readUint(addr, f.Type.Size())
	if bad != "" {
		return bad
	}
	off := f.DataBitOffset - f.ByteOffset*8
	return strconv.FormatUint(u>>uint(off)&(1<<uint(f.BitSize)-1), 10)
}
