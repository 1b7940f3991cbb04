// Package kernel finds the Linux kernel in a crash dump's memory: VMCOREINFO,
// the KASLR offset, x86-64 page tables, per-CPU data, the printk ring buffer,
// tasks, modules and kernel stacks unwound with the vmlinux's ORC tables.
package kernel

import (
	"bytes"
	"cmp"
	"debug/dwarf"
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"slices"
	"sort"
	"sync"
	"syscall"

	"github.com/kcrash/kcrash/internal/symbolize"
)

// Vmlinux is the kernel image with its symbols and, when present, DWARF. The
// file is mapped, not read: only the pages a lookup touches cost memory.
type Vmlinux struct {
	Path  string
	data  []byte // the mapped file
	f     *elf.File
	syms  []Symbol // sorted by address
	byNam map[string]int
	symMu sync.Once
	// scanMu guards scanned1 (names found by scanSymbol, a zero Symbol for a
	// missing one) and byNam, built after scansBeforeIndex names.
	scanMu   sync.Mutex
	scanned1 map[string]Symbol
	atScans  int // SymbolAt lookups answered by scanSymbolAt

	dwMu       sync.Mutex
	units      unitCache // per-unit DWARF readers (see types.go)
	aranges    []symbolize.UnitRange
	anchorDone map[int]bool // anchor units already scanned
	dwErr      error
	info       []byte
	scanned    int // bytes of .debug_info scanned for type names
	typeOff    map[string]dwarf.Offset
	typeCache  map[string]dwarf.Type
	cached     map[string]dwarf.Offset // from CacheDir: where earlier runs found types

	// BTF, when the vmlinux has no DWARF (see btfTypes).
	btfDone bool
	btf     *BTF
	btfErr  error

	// CacheDir, when set, keeps an index of where types were found in the
	// DWARF, per build ID, so later runs skip the scan.
	CacheDir string
}

// Symbol is one ELF symbol of the vmlinux, at its link-time address.
type Symbol struct {
	Name string
	Addr uint64
	Size uint64
	Type elf.SymType
}

// OpenVmlinux maps the vmlinux at path. Cost: the ELF headers only; symbols are
// read on the first lookup (about 120k symbols, tens of milliseconds) and DWARF
// is scanned unit by unit as types are asked for.
func OpenVmlinux(path string) (v *Vmlinux, err error) {
	fd, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer fd.Close()
	st, err := fd.Stat()
	if err != nil {
		return nil, err
	}
	if st.Size() < 64 || st.Size() > 1<<40 {
		return nil, fmt.Errorf("%s: not a vmlinux (%d bytes)", path, st.Size())
	}
	data, err := syscall.Mmap(int(fd.Fd()), 0, int(st.Size()), syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("%s: mmap: %w", path, err)
	}
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("%s: malformed ELF: %v", path, p)
		}
		if err != nil {
			syscall.Munmap(data)
		}
	}()
	f, err := elf.NewFile(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if _, ok := arches[f.Machine]; !ok || f.Class != elf.ELFCLASS64 {
		return nil, fmt.Errorf("%s: not a vmlinux of a supported architecture (%v)", path, f.Machine)
	}
	return &Vmlinux{Path: path, data: data, f: f}, nil
}

// Close unmaps the file.
func (v *Vmlinux) Close() error { return syscall.Munmap(v.data) }

// section returns the bytes of a section in place, or nil.
func (v *Vmlinux) section(name string) []byte {
	s := v.f.Section(name)
	if s == nil || s.Type == elf.SHT_NOBITS || s.Flags&elf.SHF_COMPRESSED != 0 {
		return nil
	}
	if s.Offset > uint64(len(v.data)) || s.Size > uint64(len(v.data))-s.Offset {
		return nil
	}
	return v.data[s.Offset : s.Offset+s.Size]
}

// SectionAddr returns a section's link address and bytes.
func (v *Vmlinux) SectionAddr(name string) (uint64, []byte) {
	s := v.f.Section(name)
	if s == nil {
		return 0, nil
	}
	return s.Addr, v.section(name)
}

// loadSymbols parses .symtab (Elf64_Sym: name u32, info u8, other u8, shndx
// u16, value u64, size u64) straight from the mapping into the address-sorted
// table SymbolAt searches. Names are substrings of one copy of the string
// table (one allocation, not one per symbol), the sort moves 16-byte keys, not
// Symbols, and the by-name map is left to the first lookups that need it
// (Symbol): bt needs SymbolAt's table but only a few names.
func (v *Vmlinux) loadSymbols() {
	v.symMu.Do(func() {
		st := v.section(".symtab")
		ss := v.f.Section(".symtab")
		if st == nil || int(ss.Link) >= len(v.f.Sections) {
			v.syms = []Symbol{}
			return
		}
		raw := v.section(v.f.Sections[ss.Link].Name)
		strs := string(raw)
		le := binary.LittleEndian
		type key struct {
			addr uint64
			i    int
		}
		var (
			all  = make([]Symbol, 0, len(st)/24)
			keys = make([]key, 0, len(st)/24)
		)
		for off := 24; off+24 <= len(st); off += 24 {
			e := st[off:]
			typ := elf.SymType(e[4] & 0xf)
			if typ != elf.STT_FUNC && typ != elf.STT_OBJECT && typ != elf.STT_NOTYPE {
				continue
			}
			shndx := le.Uint16(e[6:])
			if shndx == 0 || shndx == uint16(elf.SHN_ABS) {
				continue
			}
			no := int(le.Uint32(e))
			if no >= len(strs) {
				continue
			}
			end := bytes.IndexByte(raw[no:], 0)
			if end < 0 {
				end = len(raw) - no
			}
			if end == 0 || strs[no] == '$' {
				continue
			}
			addr := le.Uint64(e[8:])
			keys = append(keys, key{addr, len(all)})
			all = append(all, Symbol{Name: strs[no : no+end], Addr: addr, Size: le.Uint64(e[16:]), Type: typ})
		}
		// By address, ties in .symtab order (SymbolAt prefers the first function or object).
		slices.SortFunc(keys, func(a, b key) int {
			if c := cmp.Compare(a.addr, b.addr); c != 0 {
				return c
			}
			return cmp.Compare(a.i, b.i)
		})
		syms := make([]Symbol, len(keys))
		for j, k := range keys {
			syms[j] = all[k.i]
		}
		v.scanMu.Lock()
		v.syms = syms
		v.scanMu.Unlock()
	})
}

// buildByName indexes the loaded table by name, preferring functions and
// objects over untyped symbols (as scanSymbol does). Called with scanMu held.
func (v *Vmlinux) buildByName() {
	v.byNam = make(map[string]int, len(v.syms))
	for i, s := range v.syms {
		if _, ok := v.byNam[s.Name]; !ok || s.Type == elf.STT_FUNC || s.Type == elf.STT_OBJECT {
			if j, ok := v.byNam[s.Name]; !ok || v.syms[j].Type == elf.STT_NOTYPE {
				v.byNam[s.Name] = i
			}
		}
	}
}

// scansBeforeIndex is how many names Symbol finds by scanning .symtab (about a
// millisecond each) before it builds the by-name map (tens of milliseconds).
const scansBeforeIndex = 32

// ErrNoSymbol is returned for names the vmlinux does not define.
var ErrNoSymbol = errors.New("no such symbol")

// Symbol returns the link-time address of name. The first names are found by
// a scan of .symtab in place (about a millisecond and no allocation each) and
// remembered; after scansBeforeIndex of them a by-name map of the whole table
// answers instead.
func (v *Vmlinux) Symbol(name string) (Symbol, error) {
	if name == "" {
		return Symbol{}, fmt.Errorf("empty name: %w", ErrNoSymbol)
	}
	v.scanMu.Lock()
	if v.byNam == nil && len(v.scanned1) >= scansBeforeIndex {
		v.scanMu.Unlock()
		v.loadSymbols() // takes scanMu to publish the table
		v.scanMu.Lock()
		if v.byNam == nil {
			v.buildByName()
		}
	}
	defer v.scanMu.Unlock()
	if v.byNam != nil {
		i, ok := v.byNam[name]
		if !ok {
			return Symbol{}, fmt.Errorf("%s: %w", name, ErrNoSymbol)
		}
		return v.syms[i], nil
	}
	if s, ok := v.scanned1[name]; ok {
		if s.Name == "" {
			return Symbol{}, fmt.Errorf("%s: %w", name, ErrNoSymbol)
		}
		return s, nil
	}
	if v.scanned1 == nil {
		v.scanned1 = map[string]Symbol{}
	}
	s, ok := v.scanSymbol(name)
	v.scanned1[name] = s // a zero Symbol remembers a missing name
	if !ok {
		return Symbol{}, fmt.Errorf("%s: %w", name, ErrNoSymbol)
	}
	return s, nil
}

// scanSymbol finds name in .symtab without building the table, preferring
// functions and objects over untyped symbols as loadSymbols does.
func (v *Vmlinux) scanSymbol(name string) (Symbol, bool) {
	st := v.section(".symtab")
	ss := v.f.Section(".symtab")
	if st == nil || int(ss.Link) >= len(v.f.Sections) {
		return Symbol{}, false
	}
	strs := v.section(v.f.Sections[ss.Link].Name)
	le := binary.LittleEndian
	var best Symbol
	found := false
	for off := 24; off+24 <= len(st); off += 24 {
		e := st[off:]
		no := int(le.Uint32(e))
		if no+len(name) >= len(strs) || strs[no] != name[0] || strs[no+len(name)] != 0 || string(strs[no:no+len(name)]) != name {
			continue
		}
		typ := elf.SymType(e[4] & 0xf)
		shndx := le.Uint16(e[6:])
		if (typ != elf.STT_FUNC && typ != elf.STT_OBJECT && typ != elf.STT_NOTYPE) || shndx == 0 || shndx == uint16(elf.SHN_ABS) {
			continue
		}
		s := Symbol{Name: name, Addr: le.Uint64(e[8:]), Size: le.Uint64(e[16:]), Type: typ}
		if !found || (best.Type == elf.STT_NOTYPE && typ != elf.STT_NOTYPE) {
			best, found = s, true
		}
	}
	return best, found
}

// SymbolAt returns the symbol containing the link-time address addr: the last
// symbol at or below it (preferring functions and objects), within its size
// when it has one. Cost: a binary search.
func (v *Vmlinux) SymbolAt(addr uint64) (Symbol, bool) {
	s, ok := v.symbolAt(addr)
	if !ok {
		return Symbol{}, false
	}
	if s.Size != 0 && addr >= s.Addr+s.Size {
		// Past the end of a sized symbol: only claim it when nothing else is closer.
		if addr-s.Addr > 1<<20 {
			return Symbol{}, false
		}
	}
	return s, true
}

// symbolAt is the last symbol at or below addr, the first function or object
// of those at its address in .symtab order, else the last of them. The first
// scansBeforeTable lookups scan .symtab in place (about a millisecond each, no
// allocation: bt and sys need a few dozen); later ones load the sorted table.
func (v *Vmlinux) symbolAt(addr uint64) (Symbol, bool) {
	v.scanMu.Lock()
	scan := v.syms == nil && v.atScans < scansBeforeTable
	if scan {
		v.atScans++
	}
	v.scanMu.Unlock()
	if scan {
		return v.scanSymbolAt(addr)
	}
	v.loadSymbols()
	i := sort.Search(len(v.syms), func(i int) bool { return v.syms[i].Addr > addr }) - 1
	if i < 0 {
		return Symbol{}, false
	}
	best := i
	for j := i; j >= 0 && v.syms[j].Addr == v.syms[i].Addr; j-- {
		if v.syms[j].Type == elf.STT_FUNC || v.syms[j].Type == elf.STT_OBJECT {
			best = j
		}
	}
	return v.syms[best], true
}

// scansBeforeTable is how many SymbolAt lookups scan .symtab before the table
// is loaded (tens of milliseconds, mostly its sort).
const scansBeforeTable = 64

// scanSymbolAt is symbolAt by one pass over .symtab, with loadSymbols' filter.
func (v *Vmlinux) scanSymbolAt(addr uint64) (Symbol, bool) {
	st := v.section(".symtab")
	ss := v.f.Section(".symtab")
	if st == nil || int(ss.Link) >= len(v.f.Sections) {
		return Symbol{}, false
	}
	strs := v.section(v.f.Sections[ss.Link].Name)
	le := binary.LittleEndian
	var (
		have        bool
		bestAddr    uint64
		typed, last int // .symtab offsets; typed 0: none
	)
	for off := 24; off+24 <= len(st); off += 24 {
		e := st[off:]
		a := le.Uint64(e[8:])
		if a > addr || (have && a < bestAddr) {
			continue
		}
		typ := elf.SymType(e[4] & 0xf)
		if typ != elf.STT_FUNC && typ != elf.STT_OBJECT && typ != elf.STT_NOTYPE {
			continue
		}
		if shndx := le.Uint16(e[6:]); shndx == 0 || shndx == uint16(elf.SHN_ABS) {
			continue
		}
		no := int(le.Uint32(e))
		if no >= len(strs) || strs[no] == 0 || strs[no] == '$' {
			continue
		}
		if !have || a > bestAddr {
			have, bestAddr, typed = true, a, 0
		}
		last = off
		if typed == 0 && typ != elf.STT_NOTYPE {
			typed = off
		}
	}
	if !have {
		return Symbol{}, false
	}
	off := last
	if typed != 0 {
		off = typed
	}
	e := st[off:]
	no := int(le.Uint32(e))
	name := strs[no:]
	if i := bytes.IndexByte(name, 0); i >= 0 {
		name = name[:i]
	}
	return Symbol{Name: string(name), Addr: le.Uint64(e[8:]), Size: le.Uint64(e[16:]), Type: elf.SymType(e[4] & 0xf)}, true
}

// Symbols returns all symbols sorted by address. The slice is shared: do not modify.
func (v *Vmlinux) Symbols() []Symbol {
	v.loadSymbols()
	return v.syms
}

// Sections returns the vmlinux's ELF section headers.
func (v *Vmlinux) Sections() []*elf.Section { return v.f.Sections }
