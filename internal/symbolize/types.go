package symbolize

import (
	"debug/dwarf"
	"strings"
)

// Strip removes typedefs and qualifiers.
func Strip(t dwarf.Type) dwarf.Type {
	for i := 0; i < 32 && t != nil; i++ {
		switch x := t.(type) {
		case *dwarf.TypedefType:
			t = x.Type
		case *dwarf.QualType:
			t = x.Type
		default:
			return t
		}
	}
	return t
}

// Pointee returns what a pointer type points to.
func Pointee(t dwarf.Type) (dwarf.Type, bool) {
	if p, ok := Strip(t).(*dwarf.PtrType); ok && p.Type != nil {
		return p.Type, true
	}
	return nil, false
}

// TypeName names a type as C spells it ("struct sk_buff *").
func TypeName(t dwarf.Type) string {
	if t == nil {
		return "?"
	}
	return t.String()
}

// MemberAt returns the scalar or pointer member of struct or union type t (typedefs
// stripped) that holds byte offset off, descending through nested and anonymous
// aggregates: "dev", "u.list.next". exact is true when off is the start of that member.
func MemberAt(t dwarf.Type, off int64) (path string, mt dwarf.Type, exact bool, ok bool) {
	var parts []string
	for depth := 0; depth < 16; depth++ {
		st, isStruct := Strip(t).(*dwarf.StructType)
		if !isStruct || st.Incomplete {
			break
		}
		var best *dwarf.StructField
		for _, f := range st.Field {
			size := f.Type.Size()
			if off >= f.ByteOffset && off < f.ByteOffset+max(size, 1) {
				best = f
				break
			}
		}
		if best == nil {
			break
		}
		if best.Name != "" {
			parts = append(parts, best.Name)
		}
		off -= best.ByteOffset
		t = best.Type
	}
	if len(parts) == 0 {
		return "", nil, false, false
	}
	return strings.Join(parts, "."), t, off == 0, true
}
