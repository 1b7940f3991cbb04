package kernel

import (
	"debug/dwarf"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
)

// ErrNoType is returned when the vmlinux's DWARF does not define a type.
var ErrNoType = errors.New("no such type in the DWARF")

// firstWindow is how much of .debug_info the first type lookup indexes: the
// core structures (task_struct, module, list_head) sit in the first units.
const firstWindow = 8 << 20

// unitEnd returns the end of the compilation unit starting at off in info
// (DWARF 4/5 unit header: a 32-bit length, or 0xffffffff and a 64-bit one).
func unitEnd(info []byte, off int) int {
	if off+4 > len(info) {
		return len(info)
	}
	n := uint64(binary.LittleEndian.Uint32(info[off:]))
	hdr := 4
	if n == 0xffffffff {
		if off+12 > len(info) {
			return len(info)
		}
		n, hdr = binary.LittleEndian.Uint64(info[off+4:]), 12
	}
	if n > uint64(len(info)-off-hdr) {
		return len(info)
	}
	return off + hdr + int(n)
}

// extendDWARF rebuilds v.dw over the units up to at least want bytes of .debug_info.
func (v *Vmlinux) extendDWARF(want int) (err error) {
	if v.info == nil {
		v.info = v.section(".debug_info")
		if v.info == nil {
			return fmt.Errorf("%s has no DWARF (.debug_info): use the -dbg package's vmlinux", v.Path)
		}
		v.typeOff = map[string]dwarf.Offset{}
		v.typeCache = map[string]dwarf.Type{}
	}
	cut := v.cut
	for cut < len(v.info) && cut < want {
		cut = unitEnd(v.info, cut)
	}
	if cut == v.cut && v.dw != nil {
		return nil
	}
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("%s: malformed DWARF: %v", v.Path, p)
		}
	}()
	dw, err := dwarf.New(v.section(".debug_abbrev"), nil, nil, v.info[:cut], nil, nil, nil, v.section(".debug_str"))
	if err != nil {
		return fmt.Errorf("%s: DWARF: %w", v.Path, err)
	}
	for _, s := range []string{".debug_line_str", ".debug_str_offsets", ".debug_rnglists", ".debug_addr"} {
		if b := v.section(s); b != nil {
			if err := dw.AddSection(s, b); err != nil {
				return err
			}
		}
	}
	v.dw, v.cut = dw, cut
	return nil
}

// scanUnit records the named top-level types of the unit at v.scanned and
// advances past it.
func (v *Vmlinux) scanUnit() error {
	start := v.scanned
	end := unitEnd(v.info, start)
	hdr := 11
	if start+6 <= len(v.info) && binary.LittleEndian.Uint16(v.info[start+4:]) >= 5 {
		hdr = 12
	}
	if binary.LittleEndian.Uint32(v.info[start:]) == 0xffffffff {
		hdr += 8
	}
	r := v.dw.Reader()
	r.Seek(dwarf.Offset(start + hdr))
	cu, err := r.Next()
	if err != nil || cu == nil {
		v.scanned = end
		return err
	}
	if cu.Children {
		for {
			e, err := r.Next()
			if err != nil {
				v.scanned = end
				return err
			}
			if e == nil || e.Tag == 0 {
				break
			}
			var prefix string
			switch e.Tag {
			case dwarf.TagStructType:
				prefix = "struct "
			case dwarf.TagUnionType:
				prefix = "union "
			case dwarf.TagEnumerationType:
				prefix = "enum "
			case dwarf.TagTypedef, dwarf.TagBaseType:
			default:
				if e.Children {
					r.SkipChildren()
				}
				continue
			}
			name, _ := e.Val(dwarf.AttrName).(string)
			decl, _ := e.Val(dwarf.AttrDeclaration).(bool)
			if name != "" && !decl {
				if _, ok := v.typeOff[prefix+name]; !ok {
					v.typeOff[prefix+name] = e.Offset
				}
			}
			if e.Children {
				r.SkipChildren()
			}
		}
	}
	v.scanned = end
	return nil
}

// findType returns the DWARF offset of a named type ("struct task_struct",
// "atomic_long_t"), scanning units in order until it appears. Cost: the first
// call indexes the first few MB of .debug_info; rare types may index it all.
func (v *Vmlinux) findType(name string) (dwarf.Offset, error) {
	if v.dwErr != nil {
		return 0, v.dwErr
	}
	if v.dw == nil {
		if err := v.extendDWARF(firstWindow); err != nil {
			v.dwErr = err
			return 0, err
		}
	}
	for {
		if off, ok := v.typeOff[name]; ok {
			return off, nil
		}
		if v.scanned >= len(v.info) {
			return 0, fmt.Errorf("%s: %w", name, ErrNoType)
		}
		if v.scanned >= v.cut {
			if err := v.extendDWARF(max(2*v.cut, v.cut+firstWindow)); err != nil {
				return 0, err
			}
		}
		if err := v.scanUnit(); err != nil {
			return 0, err
		}
	}
}

// Type returns the named type. Plain names try "struct N", then a typedef or
// base type N, then "union N".
func (v *Vmlinux) Type(name string) (dwarf.Type, error) {
	v.dwMu.Lock()
	defer v.dwMu.Unlock()
	name = strings.TrimSpace(name)
	if t, ok := v.typeCache[name]; ok {
		return t, nil
	}
	cands := []string{name}
	if !strings.Contains(name, " ") {
		cands = []string{"struct " + name, name, "union " + name}
	}
	var err error
	for _, c := range cands {
		var off dwarf.Offset
		off, err = v.findType(c)
		if err != nil {
			if errors.Is(err, ErrNoType) {
				continue
			}
			return nil, err
		}
		t, err := v.dw.Type(off)
		if err != nil {
			return nil, err
		}
		v.typeCache[name] = t
		return t, nil
	}
	return nil, err
}

// Member resolves a member path ("thread.sp", "tasks") in a struct type,
// looking through anonymous structs and unions, and returns its byte offset
// and type.
func (v *Vmlinux) Member(typeName, path string) (int64, dwarf.Type, error) {
	t, err := v.Type(typeName)
	if err != nil {
		return 0, nil, err
	}
	var off int64
	for _, part := range strings.Split(path, ".") {
		st, ok := peel(t).(*dwarf.StructType)
		if !ok {
			return 0, nil, fmt.Errorf("%s.%s: %s is not a struct or union", typeName, path, t)
		}
		o, ft, ok := findField(st, part)
		if !ok {
			return 0, nil, fmt.Errorf("%s has no member %s", typeName, path)
		}
		off += o
		t = ft
	}
	return off, t, nil
}

// MustOffsets resolves several members of one type; the first failure is returned.
func (v *Vmlinux) Offsets(typeName string, paths ...string) ([]int64, error) {
	out := make([]int64, len(paths))
	for i, p := range paths {
		o, _, err := v.Member(typeName, p)
		if err != nil {
			return nil, err
		}
		out[i] = o
	}
	return out, nil
}

func findField(st *dwarf.StructType, name string) (int64, dwarf.Type, bool) {
	for _, f := range st.Field {
		if f.Name == name {
			return f.ByteOffset, f.Type, true
		}
	}
	for _, f := range st.Field {
		if f.Name == "" {
			if inner, ok := peel(f.Type).(*dwarf.StructType); ok {
				if o, t, ok := findField(inner, name); ok {
					return f.ByteOffset + o, t, true
				}
			}
		}
	}
	return 0, nil, false
}

// peel strips typedefs and qualifiers.
func peel(t dwarf.Type) dwarf.Type {
	for {
		switch x := t.(type) {
		case *dwarf.TypedefType:
			t = x.Type
		case *dwarf.QualType:
			t = x.Type
		default:
			return t
		}
	}
}

// Sizeof returns a type's size in bytes.
func (v *Vmlinux) Sizeof(typeName string) (int64, error) {
	t, err := v.Type(typeName)
	if err != nil {
		return 0, err
	}
	return t.Size(), nil
}
