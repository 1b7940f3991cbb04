package kernel

import (
	"debug/dwarf"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/kcrash/kcrash/internal/symbolize"
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

// Types are read one compilation unit at a time: each unit gets a dwarf.Data of its
// own bytes (one header and one abbreviation table to parse), so finding
// task_struct does not mean building a reader over every unit before it. Offsets
// handed around in this file are absolute in .debug_info; unitData maps them back.

// unitCache holds the per-unit readers opened so far.
type unitCache struct {
	starts []int               // sorted unit header offsets (from .debug_aranges, then as scanned)
	data   map[int]*dwarf.Data // by unit header offset
}

// initDWARF locates .debug_info and the unit starts.
func (v *Vmlinux) initDWARF() error {
	if v.info != nil {
		return nil
	}
	v.info = v.section(".debug_info")
	if v.info == nil {
		return fmt.Errorf("%s has no DWARF (.debug_info): use the -dbg package's vmlinux", v.Path)
	}
	v.typeOff = map[string]dwarf.Offset{}
	v.typeCache = map[string]dwarf.Type{}
	v.units.data = map[int]*dwarf.Data{}
	if ar := v.section(".debug_aranges"); ar != nil {
		rs, _ := symbolize.ParseAranges(ar)
		seen := map[int]bool{}
		for _, r := range rs {
			if u := int(r.Unit); !seen[u] && u < len(v.info) {
				seen[u] = true
				v.units.starts = append(v.units.starts, u)
			}
			v.aranges = append(v.aranges, r)
		}
		sort.Ints(v.units.starts)
		sort.Slice(v.aranges, func(i, j int) bool { return v.aranges[i].Lo < v.aranges[j].Lo })
	}
	return nil
}

// unitOf returns the header offset of the unit holding absolute offset off.
func (v *Vmlinux) unitOf(off int) (int, bool) {
	i := sort.SearchInts(v.units.starts, off+1) - 1
	if i >= 0 && off < unitEnd(v.info, v.units.starts[i]) {
		return v.units.starts[i], true
	}
	return 0, false
}

func (v *Vmlinux) addUnitStart(u int) {
	i := sort.SearchInts(v.units.starts, u)
	if i < len(v.units.starts) && v.units.starts[i] == u {
		return
	}
	v.units.starts = append(v.units.starts, 0)
	copy(v.units.starts[i+1:], v.units.starts[i:])
	v.units.starts[i] = u
}

// unitData returns the reader of the unit starting at u.
func (v *Vmlinux) unitData(u int) (d *dwarf.Data, err error) {
	if d, ok := v.units.data[u]; ok {
		return d, nil
	}
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("%s: malformed DWARF unit at %#x: %v", v.Path, u, p)
		}
	}()
	end := unitEnd(v.info, u)
	d, err = dwarf.New(v.section(".debug_abbrev"), nil, nil, v.info[u:end], nil, nil, nil, v.section(".debug_str"))
	if err != nil {
		return nil, fmt.Errorf("%s: DWARF unit at %#x: %w", v.Path, u, err)
	}
	for _, s := range []string{".debug_line_str", ".debug_str_offsets", ".debug_rnglists", ".debug_addr"} {
		if b := v.section(s); b != nil {
			if err := d.AddSection(s, b); err != nil {
				return nil, err
			}
		}
	}
	v.units.data[u] = d
	return d, nil
}

// dataAt returns the reader for absolute offset off and off relative to it.
func (v *Vmlinux) dataAt(off dwarf.Offset) (*dwarf.Data, dwarf.Offset, int, error) {
	u, ok := v.unitOf(int(off))
	if !ok {
		return nil, 0, 0, fmt.Errorf("%s: DWARF offset %#x is in no known unit", v.Path, off)
	}
	d, err := v.unitData(u)
	return d, off - dwarf.Offset(u), u, err
}

// typeAt builds the type at absolute offset off.
func (v *Vmlinux) typeAt(off dwarf.Offset) (dwarf.Type, error) {
	d, rel, _, err := v.dataAt(off)
	if err != nil {
		return nil, err
	}
	return d.Type(rel)
}

// scanUnitAt records the named top-level types of the unit starting at u.
func (v *Vmlinux) scanUnitAt(u int) error {
	v.addUnitStart(u)
	d, err := v.unitData(u)
	if err != nil {
		return err
	}
	r := d.Reader()
	cu, err := r.Next()
	if err != nil || cu == nil || !cu.Children {
		return err
	}
	for {
		e, err := r.Next()
		if err != nil {
			return err
		}
		if e == nil || e.Tag == 0 {
			return nil
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
				v.typeOff[prefix+name] = e.Offset + dwarf.Offset(u)
			}
		}
		if e.Children {
			r.SkipChildren()
		}
	}
}

// anchorFunctions are defined in units that include nearly every core header
// (kernel/fork.c, kernel/exit.c, the scheduler, the module loader): their units
// define the structures crash's commands read, so they are scanned first.
var anchorFunctions = []string{"copy_process", "do_exit", "load_module", "__schedule"}

// scanAnchors scans the units of the anchor functions (found through .debug_aranges).
func (v *Vmlinux) scanAnchors() {
	for _, fn := range anchorFunctions {
		v.scanUnitOf(fn)
	}
}

// scanUnitOf scans the unit that defines function fn, once.
func (v *Vmlinux) scanUnitOf(fn string) {
	s, err := v.Symbol(fn)
	if err != nil {
		return
	}
	i := sort.Search(len(v.aranges), func(i int) bool { return v.aranges[i].Lo > s.Addr }) - 1
	if i >= 0 && s.Addr < v.aranges[i].Hi && int(v.aranges[i].Unit) < len(v.info) {
		u := int(v.aranges[i].Unit)
		if v.anchorDone == nil {
			v.anchorDone = map[int]bool{}
			v.scanAnchors()
		}
		if !v.anchorDone[u] {
			v.anchorDone[u] = true
			v.scanUnitAt(u)
		}
	}
}

// HintType makes a lookup of type name (as "struct orc_entry") look in the
// unit that defines function fn before scanning .debug_info from the start:
// for types only one source file uses (orc_entry in arch/x86/kernel/unwind_orc.c).
func (v *Vmlinux) HintType(name, fn string) {
	v.dwMu.Lock()
	defer v.dwMu.Unlock()
	if v.section(".debug_info") == nil {
		return
	}
	if v.dwErr != nil {
		return
	}
	if v.info == nil {
		if err := v.initDWARF(); err != nil {
			v.dwErr = err
			return
		}
		v.loadTypeCache()
	}
	if _, ok := v.cached[name]; ok {
		return
	}
	if _, ok := v.typeOff[name]; ok {
		return
	}
	v.scanUnitOf(fn)
}

// findType returns the absolute DWARF offset of a named type ("struct task_struct",
// "atomic_long_t"). Cost: the first call scans the few anchor units; a type they
// lack is searched unit by unit from the start (all of .debug_info for rare types).
// Where earlier runs found types is cached per build ID.
func (v *Vmlinux) findType(name string) (dwarf.Offset, error) {
	if v.dwErr != nil {
		return 0, v.dwErr
	}
	if v.info == nil {
		if err := v.initDWARF(); err != nil {
			v.dwErr = err
			return 0, err
		}
		v.loadTypeCache()
	}
	if off, ok := v.cached[name]; ok && int(off) < len(v.info) {
		if _, ok := v.unitOf(int(off)); ok {
			return off, nil
		}
	}
	defer v.saveTypeCache(name)
	if off, ok := v.typeOff[name]; ok {
		return off, nil
	}
	if v.anchorDone == nil {
		v.anchorDone = map[int]bool{}
		v.scanAnchors()
		if off, ok := v.typeOff[name]; ok {
			return off, nil
		}
	}
	for {
		if off, ok := v.typeOff[name]; ok {
			return off, nil
		}
		if v.scanned >= len(v.info) {
			return 0, fmt.Errorf("%s: %w", name, ErrNoType)
		}
		u := v.scanned
		v.scanned = unitEnd(v.info, u)
		if v.anchorDone[u] {
			continue
		}
		if err := v.scanUnitAt(u); err != nil {
			return 0, err
		}
	}
}

// Type returns the named type. Plain names try "struct N", then a typedef or
// base type N, then "union N".
func (v *Vmlinux) Type(name string) (dwarf.Type, error) {
	v.dwMu.Lock()
	defer v.dwMu.Unlock()
	if b, err := v.btfTypes(); b != nil || err != nil {
		if err != nil {
			return nil, err
		}
		id, ok := b.lookup(name)
		if !ok {
			return nil, fmt.Errorf("%s: %w", name, ErrNoType)
		}
		return b.Dwarf(id), nil
	}
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
		t, err := v.typeAt(off)
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
// and type. Cost: reads only the DIEs of the structs on the path (the type
// graph is not built; the member's type is, lazily, when asked for).
func (v *Vmlinux) Member(typeName, path string) (int64, dwarf.Type, error) {
	v.dwMu.Lock()
	b, err := v.btfTypes()
	if b != nil {
		off, id, err := b.MemberOffset(typeName, path)
		var t dwarf.Type
		if err == nil {
			t = b.Dwarf(id)
		}
		v.dwMu.Unlock()
		return off, t, err
	}
	v.dwMu.Unlock()
	if err != nil {
		return 0, nil, err
	}
	off, toff, err := v.MemberOffset(typeName, path)
	if err != nil {
		return 0, nil, err
	}
	v.dwMu.Lock()
	defer v.dwMu.Unlock()
	t, err := v.typeAt(toff)
	return off, t, err
}

// MemberOffset is Member without building the member's type: the byte
// offset and the DWARF offset of the member's type.
func (v *Vmlinux) MemberOffset(typeName, path string) (int64, dwarf.Offset, error) {
	v.dwMu.Lock()
	defer v.dwMu.Unlock()
	if b, err := v.btfTypes(); b != nil || err != nil {
		if err != nil {
			return 0, 0, err
		}
		off, _, err := b.MemberOffset(typeName, path)
		return off, 0, err
	}
	cands := []string{typeName}
	if !strings.Contains(typeName, " ") {
		cands = []string{"struct " + typeName, typeName, "union " + typeName}
	}
	var toff dwarf.Offset
	var err error
	for _, c := range cands {
		if toff, err = v.findType(c); err == nil {
			break
		}
		if !errors.Is(err, ErrNoType) {
			return 0, 0, err
		}
	}
	if err != nil {
		return 0, 0, err
	}
	var total int64
	for _, part := range strings.Split(path, ".") {
		o, t, ok, err := v.memberDIE(toff, part, 0)
		if err != nil {
			return 0, 0, err
		}
		if !ok {
			return 0, 0, fmt.Errorf("%s has no member %s", typeName, path)
		}
		total += o
		toff = t
	}
	return total, toff, nil
}

// memberDIE finds member name among the children of the struct or union at
// off (through typedefs and qualifiers, and into anonymous members).
func (v *Vmlinux) memberDIE(off dwarf.Offset, name string, depth int) (int64, dwarf.Offset, bool, error) {
	if depth > 8 {
		return 0, 0, false, nil
	}
	d, rel, u, err := v.dataAt(off)
	if err != nil {
		return 0, 0, false, err
	}
	base := dwarf.Offset(u)
	off = rel
	r := d.Reader()
	for i := 0; ; i++ {
		r.Seek(off)
		e, err := r.Next()
		if err != nil || e == nil {
			return 0, 0, false, err
		}
		switch e.Tag {
		case dwarf.TagTypedef, dwarf.TagConstType, dwarf.TagVolatileType:
			t, ok := e.Val(dwarf.AttrType).(dwarf.Offset)
			if !ok || i > 16 {
				return 0, 0, false, nil
			}
			off = t
			continue
		case dwarf.TagStructType, dwarf.TagUnionType:
		default:
			return 0, 0, false, nil
		}
		if !e.Children {
			return 0, 0, false, nil
		}
		var anon []struct {
			loc int64
			typ dwarf.Offset
		}
		for {
			c, err := r.Next()
			if err != nil {
				return 0, 0, false, err
			}
			if c == nil || c.Tag == 0 {
				break
			}
			if c.Tag == dwarf.TagMember {
				loc, _ := c.Val(dwarf.AttrDataMemberLoc).(int64)
				typ, _ := c.Val(dwarf.AttrType).(dwarf.Offset)
				n, _ := c.Val(dwarf.AttrName).(string)
				if n == name {
					return loc, typ + base, true, nil
				}
				if n == "" {
					anon = append(anon, struct {
						loc int64
						typ dwarf.Offset
					}{loc, typ + base})
				}
			}
			if c.Children {
				r.SkipChildren()
			}
		}
		for _, a := range anon {
			if o, t, ok, err := v.memberDIE(a.typ, name, depth+1); err != nil || ok {
				return a.loc + o, t, ok, err
			}
		}
		return 0, 0, false, nil
	}
}

// MustOffsets resolves several members of one type; the first failure is returned.
func (v *Vmlinux) Offsets(typeName string, paths ...string) ([]int64, error) {
	out := make([]int64, len(paths))
	for i, p := range paths {
		o, _, err := v.MemberOffset(typeName, p)
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
			if inner, ok := symbolize.Strip(f.Type).(*dwarf.StructType); ok {
				if o, t, ok := findField(inner, name); ok {
					return f.ByteOffset + o, t, true
				}
			}
		}
	}
	return 0, nil, false
}

// Sizeof returns a type's size in bytes.
func (v *Vmlinux) Sizeof(typeName string) (int64, error) {
	t, err := v.Type(typeName)
	if err != nil {
		return 0, err
	}
	return t.Size(), nil
}

// loadTypeCache reads the name → DIE offset index saved by an earlier run for
// this vmlinux (keyed by its build ID) from CacheDir, when set.
func (v *Vmlinux) loadTypeCache() {
	v.cached = map[string]dwarf.Offset{}
	if v.CacheDir == "" {
		return
	}
	b, err := os.ReadFile(v.typeCachePath())
	if err != nil {
		return
	}
	var m map[string]dwarf.Offset
	if json.Unmarshal(b, &m) == nil {
		v.cached = m
	}
}

// saveTypeCache records where name was found, for the next run.
func (v *Vmlinux) saveTypeCache(name string) {
	off, ok := v.typeOff[name]
	if v.CacheDir == "" || !ok {
		return
	}
	v.cached[name] = off
	b, err := json.Marshal(v.cached)
	if err != nil {
		return
	}
	p := v.typeCachePath()
	if os.MkdirAll(filepath.Dir(p), 0o755) != nil {
		return
	}
	tmp := p + fmt.Sprintf(".%d", os.Getpid())
	if os.WriteFile(tmp, b, 0o644) == nil {
		os.Rename(tmp, p)
	}
}

func (v *Vmlinux) typeCachePath() string {
	id := v.BuildID()
	if id == "" {
		id = "nobuildid"
	}
	return filepath.Join(v.CacheDir, "types-"+id+".json")
}

// CompDir returns the compilation directory the vmlinux's relative source
// paths are relative to, or "". gdb, and so crash, print a line table's
// relative path joined to its unit's DW_AT_comp_dir. A kernel is compiled in
// one object directory, and relative paths only occur in units whose
// comp_dir is itself relative (a -ffile-prefix-map build, like Debian's:
// "debian/build/build_amd64_none_cloud-amd64"), while assembler units may keep
// an absolute one: so the first relative comp_dir among the first units is
// returned, else the first unit's. Cost: the root entries of a few units.
func (v *Vmlinux) CompDir() (dir string) {
	info := v.section(".debug_info")
	defer func() {
		if recover() != nil {
			dir = ""
		}
	}()
	first := ""
	for off, i := 0, 0; off+12 < len(info) && i < 64; i++ {
		end := unitEnd(info, off)
		d := unitCompDir(v, info[off:end])
		if i == 0 {
			first = d
		}
		if d != "" && !strings.HasPrefix(d, "/") {
			return d
		}
		off = end
	}
	return first
}

// unitCompDir reads DW_AT_comp_dir from the root entry of one unit.
func unitCompDir(v *Vmlinux, unit []byte) string {
	dw, err := dwarf.New(v.section(".debug_abbrev"), nil, nil, unit, nil, nil, nil, v.section(".debug_str"))
	if err != nil {
		return ""
	}
	for _, s := range []string{".debug_line_str", ".debug_str_offsets"} {
		if b := v.section(s); b != nil {
			dw.AddSection(s, b)
		}
	}
	e, err := dw.Reader().Next()
	if err != nil || e == nil {
		return ""
	}
	d, _ := e.Val(dwarf.AttrCompDir).(string)
	return d
}

// btfTypes returns the vmlinux's BTF when it has no DWARF but a .BTF
// section (a vmlinux stripped with objcopy --strip-debug, or extracted from
// vmlinuz): types then come from BTF. nil, nil means DWARF is used. Callers
// hold dwMu.
func (v *Vmlinux) btfTypes() (*BTF, error) {
	if v.btfDone {
		return v.btf, v.btfErr
	}
	v.btfDone = true
	if v.section(".debug_info") != nil {
		return nil, nil
	}
	b := v.section(".BTF")
	if b == nil {
		return nil, nil
	}
	v.btf, v.btfErr = ParseBTF(b)
	if v.btfErr != nil {
		v.btfErr = fmt.Errorf("%s: %w", v.Path, v.btfErr)
	}
	return v.btf, v.btfErr
}

// TypesFrom says where types come from: "DWARF", "BTF" or "none".
func (v *Vmlinux) TypesFrom() string {
	v.dwMu.Lock()
	defer v.dwMu.Unlock()
	if b, _ := v.btfTypes(); b != nil {
		return "BTF"
	}
	if v.section(".debug_info") != nil {
		return "DWARF"
	}
	return "none"
}
