package symbolize

import (
	"debug/dwarf"
	"encoding/binary"
	"fmt"
)

// LocKind says where a variable lives.
type LocKind int

// Location kinds of a variable at one PC.
const (
	LocUnknown LocKind = iota // optimized out, or an expression this package does not follow
	LocReg                    // in register Reg
	LocMem                    // in memory at Reg+Offset (a stack slot when Reg is the frame/stack pointer)
	LocFrame                  // at the frame base + Offset
	LocAddr                   // at a fixed address (a global)
	LocValue                  // not in storage: the value is computed (DW_OP_stack_value)
)

// Var is a variable or parameter in scope at a PC, with its location there.
type Var struct {
	Name   string
	Param  bool
	Type   dwarf.Type // may be nil
	Kind   LocKind
	Reg    int // DWARF register number (x86-64: 0 rax, 1 rdx, 2 rcx, 3 rbx, 4 rsi, 5 rdi, 6 rbp, 7 rsp, 8-15 r8-r15)
	Offset int64
	Addr   uint64
	// Function is the function (innermost inlined one first) declaring the variable.
	Function string
}

// VarsAt returns the variables and parameters in scope at pc, innermost scope first,
// with where each one is at pc. Cost: the unit's scope tree (cached) and one location
// list per variable.
func (b *Binary) VarsAt(pc uint64) ([]Var, error) {
	if err := b.indexUnits(); err != nil {
		return nil, err
	}
	off, ok := b.unitFor(pc)
	if !ok {
		return nil, fmt.Errorf("%s: no debug info covers %#x", b.Path, pc)
	}
	u, err := b.unit(off)
	if err != nil {
		return nil, err
	}
	secs, _ := b.debugSections()
	base, _ := u.entry.Val(dwarf.AttrLowpc).(uint64)
	ver := 5
	if len(secs[".debug_loclists"]) == 0 {
		ver = 4
	}
	path := chain(u.scopes, pc)
	var out []Var
	fn := ""
	for i := len(path) - 1; i >= 0; i-- {
		s := path[i]
		if s.tag != dwarf.TagLexDwarfBlock {
			fn = u.nameOf(s)
		}
		for _, e := range s.vars {
			v := Var{Param: e.Tag == dwarf.TagFormalParameter, Function: fn}
			v.Name, _ = e.Val(dwarf.AttrName).(string)
			typeOff, hasType := e.Val(dwarf.AttrType).(dwarf.Offset)
			if o, ok := e.Val(dwarf.AttrAbstractOrigin).(dwarf.Offset); ok && (v.Name == "" || !hasType) {
				if oe := u.entryAt(o); oe != nil {
					if v.Name == "" {
						v.Name, _ = oe.Val(dwarf.AttrName).(string)
					}
					if !hasType {
						typeOff, hasType = oe.Val(dwarf.AttrType).(dwarf.Offset)
					}
				}
			}
			if hasType {
				v.Type = u.typeAt(typeOff)
			}
			var expr []byte
			switch loc := e.Val(dwarf.AttrLocation).(type) {
			case []byte:
				expr = loc
			case int64:
				if ver == 5 {
					expr = loclist5(secs[".debug_loclists"], loc, base, pc, b.elf.ByteOrder)
				} else {
					expr = loclist4(secs[".debug_loc"], loc, base, pc, b.elf.ByteOrder)
				}
			}
			locate(&v, expr)
			out = append(out, v)
		}
	}
	return out, nil
}

func (u *unit) entryAt(off dwarf.Offset) *dwarf.Entry {
	r := u.d.Reader()
	r.Seek(off)
	e, err := r.Next()
	if err != nil {
		return nil
	}
	return e
}

func (u *unit) typeAt(off dwarf.Offset) (t dwarf.Type) {
	defer func() {
		if recover() != nil {
			t = nil
		}
	}()
	t, err := u.d.Type(off)
	if err != nil {
		return nil
	}
	return t
}

// locate interprets the simple location expressions compilers emit for variables.
func locate(v *Var, expr []byte) {
	if len(expr) == 0 {
		return
	}
	op := expr[0]
	rest := expr[1:]
	switch {
	case op >= 0x50 && op <= 0x6f: // DW_OP_reg0..31
		v.Kind, v.Reg = LocReg, int(op-0x50)
	case op == 0x90: // DW_OP_regx
		r, _ := uleb(rest)
		v.Kind, v.Reg = LocReg, int(r)
	case op >= 0x70 && op <= 0x8f: // DW_OP_breg0..31 offset
		o, n := sleb(rest)
		v.Kind, v.Reg, v.Offset = LocMem, int(op-0x70), o
		if n < len(rest) && rest[n] == 0x9f { // DW_OP_stack_value: reg+offset is the value
			v.Kind = LocValue
		}
	case op == 0x91: // DW_OP_fbreg
		o, _ := sleb(rest)
		v.Kind, v.Offset = LocFrame, o
	case op == 0x03 && len(rest) >= 8: // DW_OP_addr
		v.Kind, v.Addr = LocAddr, binary.LittleEndian.Uint64(rest)
	default:
		v.Kind = LocUnknown
	}
	if len(expr) > 1 && expr[len(expr)-1] == 0x9f && v.Kind != LocMem {
		v.Kind = LocValue
	}
}

func uleb(b []byte) (uint64, int) {
	var v uint64
	for i := 0; i < len(b) && i < 10; i++ {
		v |= uint64(b[i]&0x7f) << (7 * uint(i))
		if b[i]&0x80 == 0 {
			return v, i + 1
		}
	}
	return v, len(b)
}

func sleb(b []byte) (int64, int) {
	var v int64
	var shift uint
	for i := 0; i < len(b) && i < 10; i++ {
		v |= int64(b[i]&0x7f) << shift
		shift += 7
		if b[i]&0x80 == 0 {
			if shift < 64 && b[i]&0x40 != 0 {
				v |= -1 << shift
			}
			return v, i + 1
		}
	}
	return v, len(b)
}

// loclist5 returns the expression of a DWARF 5 location list (.debug_loclists) that
// covers pc, or nil. Entries that index .debug_addr are not followed.
func loclist5(sec []byte, off int64, base, pc uint64, bo binary.ByteOrder) []byte {
	if off < 0 || off >= int64(len(sec)) {
		return nil
	}
	b := sec[off:]
	expr := func() []byte {
		n, k := uleb(b)
		b = b[k:]
		if n > uint64(len(b)) {
			b = nil
			return nil
		}
		e := b[:n]
		b = b[n:]
		return e
	}
	for steps := 0; len(b) > 0 && steps < 1<<16; steps++ {
		kind := b[0]
		b = b[1:]
		switch kind {
		case 0x00: // end_of_list
			return nil
		case 0x01: // base_addressx
			_, k := uleb(b)
			b = b[k:]
			return nil
		case 0x02, 0x03: // startx_endx, startx_length
			_, k := uleb(b)
			b = b[k:]
			_, k = uleb(b)
			b = b[k:]
			expr()
		case 0x04: // offset_pair
			s, k := uleb(b)
			b = b[k:]
			e, k := uleb(b)
			b = b[k:]
			x := expr()
			if pc >= base+s && pc < base+e {
				return x
			}
		case 0x05: // default_location
			return expr()
		case 0x06: // base_address
			if len(b) < 8 {
				return nil
			}
			base = bo.Uint64(b)
			b = b[8:]
		case 0x07: // start_end
			if len(b) < 16 {
				return nil
			}
			s, e := bo.Uint64(b), bo.Uint64(b[8:])
			b = b[16:]
			x := expr()
			if pc >= s && pc < e {
				return x
			}
		case 0x08: // start_length
			if len(b) < 8 {
				return nil
			}
			s := bo.Uint64(b)
			b = b[8:]
			l, k := uleb(b)
			b = b[k:]
			x := expr()
			if pc >= s && pc < s+l {
				return x
			}
		default:
			return nil
		}
	}
	return nil
}

// loclist4 is loclist5 for DWARF 2-4's .debug_loc.
func loclist4(sec []byte, off int64, base, pc uint64, bo binary.ByteOrder) []byte {
	if off < 0 || off >= int64(len(sec)) {
		return nil
	}
	b := sec[off:]
	for len(b) >= 16 {
		s, e := bo.Uint64(b), bo.Uint64(b[8:])
		b = b[16:]
		if s == 0 && e == 0 {
			return nil
		}
		if s == ^uint64(0) {
			base = e
			continue
		}
		if len(b) < 2 {
			return nil
		}
		n := int(bo.Uint16(b))
		b = b[2:]
		if n > len(b) {
			return nil
		}
		if pc >= base+s && pc < base+e {
			return b[:n]
		}
		b = b[n:]
	}
	return nil
}
