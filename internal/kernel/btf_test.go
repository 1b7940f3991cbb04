package kernel

import (
	"debug/dwarf"
	"encoding/binary"
	"testing"
)

// btfBuilder writes a .BTF section (include/uapi/linux/btf.h).
type btfBuilder struct {
	types []byte
	strs  []byte
}

func (b *btfBuilder) str(s string) uint32 {
	if s == "" {
		return 0
	}
	off := uint32(len(b.strs))
	b.strs = append(append(b.strs, s...), 0)
	return off
}

func (b *btfBuilder) typ(name string, kind, vlen int, kflag bool, sizeOrType uint32, extra ...uint32) {
	info := uint32(kind)<<24 | uint32(vlen)
	if kflag {
		info |= 1 << 31
	}
	for _, v := range append([]uint32{b.str(name), info, sizeOrType}, extra...) {
		b.types = binary.LittleEndian.AppendUint32(b.types, v)
	}
}

func (b *btfBuilder) bytes() []byte {
	h := make([]byte, 24)
	le := binary.LittleEndian
	le.PutUint16(h, 0xeb9f)
	h[2] = 1
	le.PutUint32(h[4:], 24)
	le.PutUint32(h[8:], 0)
	le.PutUint32(h[12:], uint32(len(b.types)))
	le.PutUint32(h[16:], uint32(len(b.types)))
	le.PutUint32(h[20:], uint32(len(b.strs)))
	return append(append(h, b.types...), b.strs...)
}

func sampleBTF() []byte {
	b := &btfBuilder{strs: []byte{0}}
	b.typ("int", btfInt, 0, false, 4, 1<<24|32) // 1: int
	b.typ("char", btfInt, 0, false, 1, 1<<24|8) // 2: char
	b.typ("", btfArray, 0, false, 0, 2, 1, 16)  // 3: char[16]
	b.typ("", btfPtr, 0, false, 5)              // 4: struct task *
	b.typ("task", btfStruct, 4, true, 40,       // 5: struct task
		b.str("pid"), 1, 0,
		b.str("comm"), 3, 32,
		b.str("parent"), 4, 160,
		0, 6, 256) //                                   anonymous union at byte 32
	b.typ("", btfUnion, 2, true, 8, //                  6: union { int state; int flags:3 @bit 0 }
		b.str("state"), 1, 0,
		b.str("flags"), 1, 3<<24|0)
	b.typ("pid_t", btfTypedef, 0, false, 1)                                          // 7
	b.typ("color", btfEnum, 2, false, 4, b.str("RED"), 0, b.str("BLUE"), 0xffffffff) // 8
	return b.bytes()
}

func TestParseBTF(t *testing.T) {
	b, err := ParseBTF(sampleBTF())
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		typ, path string
		off       int64
	}{
		{"task", "pid", 0}, {"struct task", "comm", 4}, {"task", "parent", 20}, {"task", "state", 32}, {"task", "flags", 32},
	} {
		off, _, err := b.MemberOffset(c.typ, c.path)
		if err != nil || off != c.off {
			t.Errorf("MemberOffset(%s, %s) = %d, %v; want %d", c.typ, c.path, off, err, c.off)
		}
	}
	if _, _, err := b.MemberOffset("task", "nope"); err == nil {
		t.Error("missing member found")
	}
	if _, _, err := b.MemberOffset("nope", "pid"); err == nil {
		t.Error("missing type found")
	}
	id, _ := b.lookup("task")
	st, ok := b.Dwarf(id).(*dwarf.StructType)
	if !ok || st.Size() != 40 || len(st.Field) != 4 || st.Field[1].Type.Size() != 16 || st.Field[1].ByteOffset != 4 {
		t.Fatalf("struct task: %#v", b.Dwarf(id))
	}
	if p, ok := st.Field[2].Type.(*dwarf.PtrType); !ok || p.Type != st {
		t.Errorf("parent is not a pointer back to struct task: %#v", st.Field[2].Type)
	}
	un := st.Field[3].Type.(*dwarf.StructType)
	if un.Kind != "union" || un.Field[1].BitSize != 3 {
		t.Errorf("union: %+v", un.Field[1])
	}
	eid, _ := b.lookup("enum color")
	if e := b.Dwarf(eid).(*dwarf.EnumType); len(e.Val) != 2 || e.Val[1].Val != -1 {
		t.Errorf("enum: %+v", e.Val)
	}
	tid, _ := b.lookup("pid_t")
	if b.size(tid) != 4 {
		t.Errorf("sizeof(pid_t) = %d", b.size(tid))
	}
}

func TestParseBTFMalformed(t *testing.T) {
	good := sampleBTF()
	for name, mut := range map[string]func([]byte) []byte{
		"short":          func(b []byte) []byte { return b[:10] },
		"magic":          func(b []byte) []byte { b[0] = 0; return b },
		"header length":  func(b []byte) []byte { binary.LittleEndian.PutUint32(b[4:], 1<<30); return b },
		"types past end": func(b []byte) []byte { binary.LittleEndian.PutUint32(b[12:], 1<<30); return b },
		"unknown kind":   func(b []byte) []byte { b[24+7] = 31; return b },
		"truncated type": func(b []byte) []byte {
			binary.LittleEndian.PutUint32(b[12:], 14)
			return b
		},
	} {
		b := mut(append([]byte{}, good...))
		if _, err := ParseBTF(b); err == nil && name != "truncated type" {
			t.Errorf("%s: parsed", name)
		}
	}
}

// FuzzParseBTF feeds hostile .BTF sections to the parser and to every
// lookup and conversion on what it returns: none may panic or loop.
func FuzzParseBTF(f *testing.F) {
	f.Add(sampleBTF())
	f.Add([]byte{0x9f, 0xeb, 1, 0, 24, 0, 0, 0})
	// An array whose element is itself.
	cyc := &btfBuilder{strs: []byte{0}}
	cyc.typ("", btfArray, 0, false, 0, 1, 1, 4)
	f.Add(cyc.bytes())
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := ParseBTF(data)
		if err != nil {
			return
		}
		for id := range b.types {
			b.Dwarf(uint32(id))
			b.size(uint32(id))
		}
		for name := range b.byName {
			b.MemberOffset(name, "pid")
			b.MemberOffset(name, "a.b.c")
		}
	})
}
