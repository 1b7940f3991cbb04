package symbolize

import (
	"debug/dwarf"
	"fmt"
	"sort"
	"strings"
)

// unit is what one compilation unit holds for lookups, loaded on first use.
type unit struct {
	d     *dwarf.Data // this unit alone (or the whole DWARF of a small file)
	entry *dwarf.Entry
	lines *dwarf.LineReader
	files []*dwarf.LineFile
	rows  []lineRow // every row of the line table, sorted by address
	// scopes are the unit's functions, inlined calls and lexical blocks as a tree.
	scopes []*scope
}

// scope is a subprogram, inlined subroutine or lexical block with its address ranges,
// and the variables and parameters declared directly in it.
type scope struct {
	tag      dwarf.Tag
	offset   dwarf.Offset
	origin   dwarf.Offset // abstract origin / specification, where the name and type live
	name     string
	ranges   [][2]uint64
	callFile int64
	callLine int64
	children []*scope
	vars     []*dwarf.Entry
}

func (s *scope) contains(pc uint64) bool {
	for _, r := range s.ranges {
		if pc >= r[0] && pc < r[1] {
			return true
		}
	}
	return false
}

// Location is one level of the inline chain at an address, innermost first, as
// `addr2line -fi` prints it.
type Location struct {
	Function string `json:"function"`
	File     string `json:"file"` // as recorded in DWARF (absolute build path)
	Line     int    `json:"line"`
	Inlined  bool   `json:"inlined"` // this level was inlined into the next one
}

// ShortFile is File relative to the kernel tree when it can tell.
func (l Location) ShortFile() string { return trimBuildPath(l.File) }

func (b *Binary) unit(off dwarf.Offset) (*unit, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if u, ok := b.cus[off]; ok {
		return u, nil
	}
	u, err := b.loadUnit(off)
	if err != nil {
		return nil, err
	}
	b.cus[off] = u
	return u, nil
}

// loadUnit reads one unit's line table and its tree of scopes, skipping types.
func (b *Binary) loadUnit(off dwarf.Offset) (u *unit, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%s: malformed unit at %#x: %v", b.Path, off, r)
		}
	}()
	// With an aranges index each unit gets a dwarf.Data of its own bytes: opening it
	// parses one header and one abbreviation table, not the whole kernel's.
	var d *dwarf.Data
	entryOff := off
	if b.perUnit {
		secs, _ := b.debugSections()
		data, ok := unitSlice(secs[".debug_info"], off, b.elf.ByteOrder)
		if !ok {
			return nil, fmt.Errorf("%s: no unit at %#x", b.Path, off)
		}
		if d, err = b.newData(data); err != nil {
			return nil, err
		}
		entryOff = 0
	} else if d, err = b.Dwarf(); err != nil {
		return nil, err
	}
	r := d.Reader()
	r.Seek(entryOff)
	cu, err := r.Next()
	if err != nil || cu == nil {
		return nil, fmt.Errorf("%s: unit at %#x: %v", b.Path, off, err)
	}
	u = &unit{d: d, entry: cu}
	if u.lines, err = d.LineReader(cu); err != nil {
		return nil, fmt.Errorf("%s: line table of unit at %#x: %w", b.Path, off, err)
	}
	if u.lines != nil {
		u.files = u.lines.Files()
		u.rows = readRows(u.lines)
	}
	if !cu.Children {
		return u, nil
	}
	// Depth-first walk keeping a stack of the open scopes; entries that are not scopes
	// have their children skipped, so the stack follows the tree exactly.
	var stack []*scope
	for {
		e, err := r.Next()
		if err != nil {
			return nil, fmt.Errorf("%s: unit at %#x: %w", b.Path, off, err)
		}
		if e == nil {
			break
		}
		if e.Tag == 0 { // end of a sibling list
			if len(stack) == 0 {
				break
			}
			stack = stack[:len(stack)-1]
			continue
		}
		switch e.Tag {
		case dwarf.TagSubprogram, dwarf.TagInlinedSubroutine, dwarf.TagLexDwarfBlock:
			s := &scope{tag: e.Tag, offset: e.Offset}
			s.ranges, _ = d.Ranges(e)
			s.name, _ = e.Val(dwarf.AttrName).(string)
			if o, ok := e.Val(dwarf.AttrAbstractOrigin).(dwarf.Offset); ok {
				s.origin = o
			} else if o, ok := e.Val(dwarf.AttrSpecification).(dwarf.Offset); ok {
				s.origin = o
			}
			s.callFile, _ = e.Val(dwarf.AttrCallFile).(int64)
			s.callLine, _ = e.Val(dwarf.AttrCallLine).(int64)
			if len(stack) > 0 {
				p := stack[len(stack)-1]
				p.children = append(p.children, s)
			} else {
				u.scopes = append(u.scopes, s)
			}
			if e.Children {
				stack = append(stack, s)
			}
		case dwarf.TagFormalParameter, dwarf.TagVariable:
			if len(stack) > 0 {
				p := stack[len(stack)-1]
				p.vars = append(p.vars, e)
			}
			if e.Children {
				r.SkipChildren()
			}
		default:
			if e.Children {
				r.SkipChildren()
			}
		}
	}
	return u, nil
}

// nameOf returns the name of the function a scope stands for, following abstract
// origins and specifications.
func (u *unit) nameOf(s *scope) string {
	if s.name != "" {
		return s.name
	}
	off := s.origin
	for i := 0; i < 4 && off != 0; i++ {
		r := u.d.Reader()
		r.Seek(off)
		e, err := r.Next()
		if err != nil || e == nil {
			break
		}
		if n, ok := e.Val(dwarf.AttrName).(string); ok {
			return n
		}
		next, ok := e.Val(dwarf.AttrAbstractOrigin).(dwarf.Offset)
		if !ok {
			next, _ = e.Val(dwarf.AttrSpecification).(dwarf.Offset)
		}
		off = next
	}
	return "??"
}

// chain returns the scopes containing pc from the outermost subprogram inwards.
func chain(scopes []*scope, pc uint64) []*scope {
	var out []*scope
	for level := scopes; ; {
		var found *scope
		for _, s := range level {
			if s.contains(pc) {
				found = s
				break
			}
		}
		if found == nil {
			return out
		}
		out = append(out, found)
		level = found.children
	}
}

// Locate returns the source location of pc with its inline chain, innermost first.
// Cost: a binary search for the unit, then (first time per unit) reading the unit's
// line table and scope tree; afterwards a line-table seek and a walk down one tree path.
func (b *Binary) Locate(pc uint64) ([]Location, error) {
	if err := b.indexUnits(); err != nil {
		return nil, err
	}
	off, ok := b.unitFor(pc)
	if !ok {
		// No unit covers pc (data, or code built without -g). Like addr2line, name a
		// global variable there by its declaration (small files only: this reads every
		// unit), else the symbol alone ("func ??:0").
		if loc, ok := b.globalAt(pc); ok {
			return []Location{loc}, nil
		}
		if sym, ok := b.Nearest(pc); ok {
			return []Location{{Function: sym.Name, File: "??"}}, nil
		}
		return nil, fmt.Errorf("%s: no debug info covers %#x", b.Path, pc)
	}
	u, err := b.unit(off)
	if err != nil {
		return nil, err
	}
	file, line := u.lineAt(pc)
	var fns []*scope
	for _, s := range chain(u.scopes, pc) {
		if s.tag != dwarf.TagLexDwarfBlock {
			fns = append(fns, s)
		}
	}
	if len(fns) == 0 {
		name := "??"
		if sym, ok := b.Nearest(pc); ok {
			name = sym.Name
		}
		return []Location{{Function: name, File: file, Line: line}}, nil
	}
	var out []Location
	for i := len(fns) - 1; i >= 0; i-- {
		s := fns[i]
		name := u.nameOf(s)
		if name == "??" {
			name = b.nameAbsolute(s.origin)
		}
		if name == "??" && i == 0 {
			if sym, ok := b.Nearest(pc); ok {
				name = sym.Name
			}
		}
		out = append(out, Location{Function: name, File: file, Line: line, Inlined: i > 0})
		// The enclosing level is at this inlined call's site.
		file, line = u.fileName(s.callFile), int(s.callLine)
	}
	return out, nil
}

// lineRow is one row of a line table.
type lineRow struct {
	addr   uint64
	file   *dwarf.LineFile
	line   int
	endSeq bool
}

// readRows reads a whole line table. Sequences (one per section a unit has code in)
// come in any order, so rows are sorted by address; debug/dwarf's SeekPC assumes the
// first sequence has the lowest address and misses the others.
func readRows(lr *dwarf.LineReader) []lineRow {
	var rows []lineRow
	var e dwarf.LineEntry
	for len(rows) < 1<<24 {
		if err := lr.Next(&e); err != nil {
			break
		}
		rows = append(rows, lineRow{addr: e.Address, file: e.File, line: e.Line, endSeq: e.EndSequence})
	}
	sort.SliceStable(rows, func(i, j int) bool {
		if rows[i].addr != rows[j].addr {
			return rows[i].addr < rows[j].addr
		}
		return rows[i].endSeq && !rows[j].endSeq // a sequence ending where another starts
	})
	return rows
}

// lineAt returns the file and line of pc: the last row at or before pc, unless that
// row ends a sequence (pc is in a gap).
func (u *unit) lineAt(pc uint64) (string, int) {
	i := sort.Search(len(u.rows), func(i int) bool { return u.rows[i].addr > pc }) - 1
	if i < 0 || u.rows[i].endSeq || u.rows[i].file == nil {
		return "", 0
	}
	return u.rows[i].file.Name, u.rows[i].line
}

// globalAt finds a global variable whose storage holds pc, for relocatable files
// (modules), where reading all units is cheap.
func (b *Binary) globalAt(pc uint64) (Location, bool) {
	if !b.Relocatable {
		return Location{}, false
	}
	d, err := b.Dwarf()
	if err != nil {
		return Location{}, false
	}
	r := d.Reader()
	var cu *dwarf.Entry
	var files []*dwarf.LineFile
	for {
		e, err := r.Next()
		if err != nil || e == nil {
			return Location{}, false
		}
		switch e.Tag {
		case dwarf.TagCompileUnit:
			cu, files = e, nil
			continue
		case dwarf.TagVariable:
			loc, _ := e.Val(dwarf.AttrLocation).([]byte)
			if len(loc) == 9 && loc[0] == 0x03 { // DW_OP_addr
				a := b.elf.ByteOrder.Uint64(loc[1:])
				size := int64(1)
				if to, ok := e.Val(dwarf.AttrType).(dwarf.Offset); ok {
					if t, err := d.Type(to); err == nil && t.Size() > 0 {
						size = t.Size()
					}
				}
				if pc >= a && pc < a+uint64(size) {
					if files == nil && cu != nil {
						if lr, err := d.LineReader(cu); err == nil && lr != nil {
							files = lr.Files()
						}
					}
					fi, _ := e.Val(dwarf.AttrDeclFile).(int64)
					line, _ := e.Val(dwarf.AttrDeclLine).(int64)
					u := &unit{files: files}
					return Location{Function: "??", File: u.fileName(fi), Line: int(line)}, true
				}
			}
		}
		if e.Children && e.Tag != dwarf.TagCompileUnit {
			r.SkipChildren()
		}
	}
}

// nameAbsolute resolves a reference that leaves its unit (DW_FORM_ref_addr is an
// offset into the whole .debug_info) through the whole DWARF. It loads the whole DWARF
// the first time, so it is only tried when a unit-local lookup failed.
func (b *Binary) nameAbsolute(off dwarf.Offset) string {
	if off == 0 || !b.perUnit {
		return "??"
	}
	d, err := b.Dwarf()
	if err != nil {
		return "??"
	}
	u := &unit{d: d}
	return u.nameOf(&scope{origin: off})
}

func (u *unit) fileName(i int64) string {
	if i >= 0 && int(i) < len(u.files) && u.files[i] != nil {
		return u.files[i].Name
	}
	return "??"
}

// FuncName strips compiler suffixes from an ELF symbol: foo.cold, foo.isra.0 → foo.
func FuncName(sym string) string {
	if i := strings.IndexByte(sym, '.'); i > 0 {
		return sym[:i]
	}
	return sym
}
