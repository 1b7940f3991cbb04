package kernel

import (
	"debug/dwarf"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
)

// BTF kinds (include/uapi/linux/btf.h).
const (
	btfInt      = 1
	btfPtr      = 2
	btfArray    = 3
	btfStruct   = 4
	btfUnion    = 5
	btfEnum     = 6
	btfFwd      = 7
	btfTypedef  = 8
	btfVolatile = 9
	btfConst    = 10
	btfRestrict = 11
	btfFunc     = 12
	btfFuncProt = 13
	btfVar      = 14
	btfDatasec  = 15
	btfFloat    = 16
	btfDeclTag  = 17
	btfTypeTag  = 18
	btfEnum64   = 19
)

// maxBTFTypes bounds the number of types a .BTF section may declare.
const maxBTFTypes = 1 << 22

type btfMember struct {
	name   string
	typ    uint32
	bitOff uint32 // offset in bits
	bits   uint32 // bitfield size, 0 when not a bitfield
}

type btfEnumVal struct {
	name string
	val  int64
}

// btfType is one decoded type; id 0 is void.
type btfType struct {
	kind    int
	name    string
	size    uint32 // INT, STRUCT, UNION, ENUM, FLOAT: bytes
	typ     uint32 // PTR, TYPEDEF, qualifiers, VAR, FUNC: the referenced type
	signed  bool   // INT
	intBits uint32 // INT: encoding bits
	elem    uint32 // ARRAY
	nelems  uint32 // ARRAY
	members []btfMember
	enums   []btfEnumVal
}

// BTF is a parsed .BTF section: the kernel's compact type information,
// present in vmlinux files without DWARF (CONFIG_DEBUG_INFO_BTF).
type BTF struct {
	types  []btfType // index = type id
	byName map[string]uint32
	conv   map[uint32]dwarf.Type
}

// ParseBTF decodes a .BTF section. It never panics on malformed input and
// bounds what it allocates by the section's size.
func ParseBTF(b []byte) (*BTF, error) {
	le := binary.LittleEndian
	if len(b) < 24 || le.Uint16(b) != 0xeb9f {
		return nil, errors.New("BTF: bad magic")
	}
	hdrLen := le.Uint32(b[4:])
	typeOff, typeLen := le.Uint32(b[8:]), le.Uint32(b[12:])
	strOff, strLen := le.Uint32(b[16:]), le.Uint32(b[20:])
	if hdrLen < 24 || uint64(hdrLen) > uint64(len(b)) {
		return nil, errors.New("BTF: bad header length")
	}
	data := b[hdrLen:]
	if uint64(typeOff)+uint64(typeLen) > uint64(len(data)) || uint64(strOff)+uint64(strLen) > uint64(len(data)) {
		return nil, errors.New("BTF: sections out of bounds")
	}
	tb := data[typeOff : typeOff+typeLen]
	strs := data[strOff : strOff+strLen]
	str := func(off uint32) string {
		if uint64(off) >= uint64(len(strs)) {
			return ""
		}
		s := strs[off:]
		for i, c := range s {
			if c == 0 {
				return string(s[:i])
			}
		}
		return string(s)
	}
	t := &BTF{types: []btfType{{}}, byName: map[string]uint32{}, conv: map[uint32]dwarf.Type{}}
	for p := 0; p+12 <= len(tb); {
		if len(t.types) >= maxBTFTypes {
			return nil, errors.New("BTF: too many types")
		}
		info := le.Uint32(tb[p+4:])
		vlen := int(info & 0xffff)
		kind := int(info >> 24 & 0x1f)
		kflag := info>>31 != 0
		x := btfType{kind: kind, name: str(le.Uint32(tb[p:])), size: le.Uint32(tb[p+8:]), typ: le.Uint32(tb[p+8:])}
		p += 12
		need := 0
		switch kind {
		case btfInt, btfVar, btfDeclTag:
			need = 4
		case btfArray:
			need = 12
		case btfStruct, btfUnion, btfDatasec, btfEnum64:
			need = 12 * vlen
		case btfEnum, btfFuncProt:
			need = 8 * vlen
		case btfPtr, btfFwd, btfTypedef, btfVolatile, btfConst, btfRestrict, btfFunc, btfFloat, btfTypeTag:
		default:
			return nil, fmt.Errorf("BTF: type %d has unknown kind %d", len(t.types), kind)
		}
		if p+need > len(tb) {
			return nil, fmt.Errorf("BTF: type %d truncated", len(t.types))
		}
		d := tb[p : p+need]
		switch kind {
		case btfInt:
			enc := le.Uint32(d)
			x.signed, x.intBits = enc>>24&1 != 0, enc&0xff
		case btfArray:
			x.elem, x.nelems = le.Uint32(d), le.Uint32(d[8:])
		case btfStruct, btfUnion:
			x.members = make([]btfMember, vlen)
			for i := range x.members {
				m := d[12*i:]
				off := le.Uint32(m[8:])
				bm := btfMember{name: str(le.Uint32(m)), typ: le.Uint32(m[4:]), bitOff: off}
				if kflag {
					bm.bitOff, bm.bits = off&0xffffff, off>>24
				}
				x.members[i] = bm
			}
		case btfEnum:
			x.enums = make([]btfEnumVal, vlen)
			for i := range x.enums {
				x.enums[i] = btfEnumVal{str(le.Uint32(d[8*i:])), int64(int32(le.Uint32(d[8*i+4:])))}
			}
		case btfEnum64:
			x.enums = make([]btfEnumVal, vlen)
			for i := range x.enums {
				e := d[12*i:]
				x.enums[i] = btfEnumVal{str(le.Uint32(e)), int64(uint64(le.Uint32(e[4:])) | uint64(le.Uint32(e[8:]))<<32)}
			}
		}
		p += need
		id := uint32(len(t.types))
		t.types = append(t.types, x)
		if x.name != "" {
			key := x.name
			switch kind {
			case btfStruct:
				key = "struct " + x.name
			case btfUnion:
				key = "union " + x.name
			case btfEnum, btfEnum64:
				key = "enum " + x.name
			case btfInt, btfTypedef, btfFloat:
			default:
				key = ""
			}
			if _, ok := t.byName[key]; key != "" && !ok {
				t.byName[key] = id
			}
		}
	}
	return t, nil
}

func (t *BTF) get(id uint32) *btfType {
	if int(id) >= len(t.types) {
		return &btfType{}
	}
	return &t.types[id]
}

// lookup finds a named type: "struct x", "union x", "enum x", or a plain
// name tried as struct, typedef or base type, then union.
func (t *BTF) lookup(name string) (uint32, bool) {
	name = strings.TrimSpace(name)
	cands := []string{name}
	if !strings.Contains(name, " ") {
		cands = []string{"struct " + name, name, "union " + name}
	}
	for _, c := range cands {
		if id, ok := t.byName[c]; ok {
			return id, true
		}
	}
	return 0, false
}

// resolve skips typedefs and qualifiers.
func (t *BTF) resolve(id uint32) uint32 {
	for i := 0; i < 32; i++ {
		switch x := t.get(id); x.kind {
		case btfTypedef, btfVolatile, btfConst, btfRestrict, btfTypeTag:
			id = x.typ
		default:
			return id
		}
	}
	return id
}

// member finds name in the struct or union id, looking into anonymous members.
func (t *BTF) member(id uint32, name string, depth int) (bitOff uint32, typ uint32, ok bool) {
	x := t.get(t.resolve(id))
	if depth > 8 || (x.kind != btfStruct && x.kind != btfUnion) {
		return 0, 0, false
	}
	for _, m := range x.members {
		if m.name == name {
			return m.bitOff, m.typ, true
		}
	}
	for _, m := range x.members {
		if m.name == "" {
			if o, ty, ok := t.member(m.typ, name, depth+1); ok {
				return m.bitOff + o, ty, true
			}
		}
	}
	return 0, 0, false
}

// MemberOffset resolves a member path in a named struct: its byte offset and type id.
func (t *BTF) MemberOffset(typeName, path string) (int64, uint32, error) {
	id, ok := t.lookup(typeName)
	if !ok {
		return 0, 0, fmt.Errorf("%s: %w", typeName, ErrNoType)
	}
	var bits uint64
	for _, part := range strings.Split(path, ".") {
		o, ty, ok := t.member(id, part, 0)
		if !ok {
			return 0, 0, fmt.Errorf("%s has no member %s", typeName, path)
		}
		bits += uint64(o)
		id = ty
	}
	return int64(bits / 8), id, nil
}

// size returns a type's size in bytes (arrays of arrays to a depth of 16;
// a cyclic array type has size 0).
func (t *BTF) size(id uint32) int64 { return t.sizeN(id, 0) }

func (t *BTF) sizeN(id uint32, depth int) int64 {
	id = t.resolve(id)
	x := t.get(id)
	switch x.kind {
	case btfInt, btfStruct, btfUnion, btfEnum, btfEnum64, btfFloat:
		return int64(x.size)
	case btfPtr:
		return 8
	case btfArray:
		if depth > 16 {
			return 0
		}
		return int64(x.nelems) * t.sizeN(x.elem, depth+1)
	}
	return 0
}

// Dwarf converts a BTF type to the debug/dwarf type the rest of kcrash uses
// (struct layouts, pointers, arrays, integers, enums, typedefs). Types are
// converted once; cycles through pointers are safe.
func (t *BTF) Dwarf(id uint32) dwarf.Type {
	if d, ok := t.conv[id]; ok {
		return d
	}
	x := t.get(id)
	common := dwarf.CommonType{ByteSize: t.size(id), Name: x.name}
	switch x.kind {
	case btfInt:
		b := dwarf.BasicType{CommonType: common, BitSize: int64(x.intBits)}
		var d dwarf.Type
		switch {
		case x.size == 1 && strings.Contains(x.name, "char") && x.signed:
			d = &dwarf.CharType{BasicType: b}
		case x.size == 1 && strings.Contains(x.name, "char"):
			d = &dwarf.UcharType{BasicType: b}
		case x.name == "_Bool" || x.name == "bool":
			d = &dwarf.BoolType{BasicType: b}
		case x.signed:
			d = &dwarf.IntType{BasicType: b}
		default:
			d = &dwarf.UintType{BasicType: b}
		}
		t.conv[id] = d
		return d
	case btfPtr:
		p := &dwarf.PtrType{CommonType: common}
		p.ByteSize = 8
		t.conv[id] = p
		p.Type = t.Dwarf(x.typ)
		return p
	case btfArray:
		a := &dwarf.ArrayType{CommonType: common, Count: int64(x.nelems)}
		t.conv[id] = a
		a.Type = t.Dwarf(x.elem)
		return a
	case btfStruct, btfUnion:
		kind := "struct"
		if x.kind == btfUnion {
			kind = "union"
		}
		s := &dwarf.StructType{CommonType: common, StructName: x.name, Kind: kind}
		t.conv[id] = s
		for _, m := range x.members {
			f := &dwarf.StructField{Name: m.name, Type: t.Dwarf(m.typ), ByteOffset: int64(m.bitOff / 8)}
			if m.bits != 0 {
				f.BitSize, f.DataBitOffset = int64(m.bits), int64(m.bitOff)
				f.ByteOffset = 0
				f.ByteSize = 0
			}
			s.Field = append(s.Field, f)
		}
		return s
	case btfEnum, btfEnum64:
		e := &dwarf.EnumType{CommonType: common, EnumName: x.name}
		for _, v := range x.enums {
			e.Val = append(e.Val, &dwarf.EnumValue{Name: v.name, Val: v.val})
		}
		t.conv[id] = e
		return e
	case btfTypedef:
		d := &dwarf.TypedefType{CommonType: common}
		t.conv[id] = d
		d.Type = t.Dwarf(x.typ)
		return d
	case btfVolatile, btfConst, btfRestrict, btfTypeTag:
		q := &dwarf.QualType{CommonType: common, Qual: map[int]string{btfVolatile: "volatile", btfConst: "const", btfRestrict: "restrict", btfTypeTag: ""}[x.kind]}
		t.conv[id] = q
		q.Type = t.Dwarf(x.typ)
		return q
	case btfFuncProt, btfFunc:
		f := &dwarf.FuncType{CommonType: common}
		t.conv[id] = f
		return f
	}
	v := &dwarf.VoidType{CommonType: common}
	t.conv[id] = v
	return v
}
