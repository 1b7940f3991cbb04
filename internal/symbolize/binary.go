// Package symbolize maps kernel addresses and func+off/size frames to source: ELF
// symbols plus DWARF line tables, inline chains, types and variable locations, for
// vmlinux and for relocatable .ko modules.
//
// Everything is indexed once (symbols sorted by address and by name, compilation-unit
// address ranges from .debug_aranges or the units' own ranges) and per-unit data (line
// tables, scope trees) is loaded lazily and cached, so a lookup never scans all units.
// vmlinux is memory-mapped: the 600 MB of a distribution kernel's debug info costs
// address space, and only the pages a lookup touches become resident.
package symbolize

import (
	"bytes"
	"cmp"
	"debug/dwarf"
	"debug/elf"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"syscall"
)

// ErrNoDebugInfo is returned (wrapped) when a binary has symbols but no DWARF.
var ErrNoDebugInfo = errors.New("no DWARF debug info (install the -dbg package or build with CONFIG_DEBUG_INFO)")

// Symbol is an ELF function or object symbol.
type Symbol struct {
	Name    string
	Addr    uint64 // link-time address (for a .ko: in the layout this package gives its sections)
	Size    uint64
	Section int // ELF section index
	order   int // position in the symbol table
}

// Binary is one ELF file with its symbols and debug info.
type Binary struct {
	Path        string
	Relocatable bool   // a .ko (ET_REL): sections are laid out by this package
	BuildID     string // hex NT_GNU_BUILD_ID, or ""
	Machine     elf.Machine

	file     *os.File
	mapped   []byte
	elf      *elf.File
	syms     []Symbol            // sorted by Addr
	byName   map[string][]Symbol // built after scanLookups lookups
	nameOnce sync.Once
	lookups  atomic.Int64
	secBase  map[int]uint64 // .ko: address given to each SHF_ALLOC section
	secByNam map[string]int

	secs    map[string][]byte
	secErr  error
	secOnce sync.Once
	dw      *dwarf.Data // the whole DWARF, loaded only when asked for (Dwarf)
	dwErr   error
	dwOnce  sync.Once
	cuIndex []cuRange // sorted by lo
	perUnit bool      // cuIndex holds unit header offsets from .debug_aranges
	idxOnce sync.Once
	idxErr  error

	mu  sync.Mutex
	cus map[dwarf.Offset]*unit
}

// Open opens an ELF file and indexes its symbols. DWARF is indexed on first use.
func Open(path string) (b *Binary, err error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	bin := &Binary{Path: path, file: f, cus: map[dwarf.Offset]*unit{}}
	b = bin
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%s: malformed ELF: %v", path, r)
		}
		if err != nil {
			bin.Close()
			b = nil
		}
	}()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if st.Size() > 0 && st.Size() < 1<<40 {
		if m, err := syscall.Mmap(int(f.Fd()), 0, int(st.Size()), syscall.PROT_READ, syscall.MAP_SHARED); err == nil {
			b.mapped = m
		}
	}
	if b.mapped != nil {
		b.elf, err = elf.NewFile(bytes.NewReader(b.mapped))
	} else {
		b.elf, err = elf.NewFile(f)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	b.Machine = b.elf.Machine
	b.Relocatable = b.elf.Type == elf.ET_REL
	b.BuildID = buildID(b.elf)
	if b.Relocatable {
		b.layout()
	}
	if err := b.loadSymbols(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return b, nil
}

// Close releases the file and its mapping.
func (b *Binary) Close() error {
	if b.mapped != nil {
		syscall.Munmap(b.mapped)
		b.mapped = nil
	}
	if b.file != nil {
		return b.file.Close()
	}
	return nil
}

func buildID(f *elf.File) string {
	for _, s := range f.Sections {
		if s.Type != elf.SHT_NOTE {
			continue
		}
		data, err := s.Data()
		if err != nil {
			continue
		}
		for len(data) >= 12 {
			nsz := f.ByteOrder.Uint32(data)
			dsz := f.ByteOrder.Uint32(data[4:])
			typ := f.ByteOrder.Uint32(data[8:])
			name := (uint64(nsz) + 3) &^ 3
			desc := (uint64(dsz) + 3) &^ 3
			if 12+name+desc > uint64(len(data)) {
				break
			}
			if typ == 3 && nsz == 4 && string(data[12:15]) == "GNU" { // NT_GNU_BUILD_ID
				return hex.EncodeToString(data[12+name : 12+name+uint64(dsz)])
			}
			data = data[12+name+desc:]
		}
	}
	return ""
}

// layout gives every SHF_ALLOC section of a relocatable file its own address range,
// as the module loader would, so that .text, .text.unlikely and .init.text do not all
// start at 0. Addresses start at 0x1000 and are page aligned per section.
func (b *Binary) layout() {
	b.secBase = map[int]uint64{}
	b.secByNam = map[string]int{}
	next := uint64(0x1000)
	for i, s := range b.elf.Sections {
		if s.Flags&elf.SHF_ALLOC == 0 || s.Size == 0 && s.Type != elf.SHT_PROGBITS {
			continue
		}
		align := max(s.Addralign, 1)
		next = (next + align - 1) &^ (align - 1)
		b.secBase[i] = next
		b.secByNam[s.Name] = i
		next += s.Size + 0x1000
		next &^= 0xfff
	}
}

// SectionAddr returns the address this package gave a section of a relocatable file
// (0 for other files), and whether the section exists.
func (b *Binary) SectionAddr(name string) (uint64, bool) {
	if !b.Relocatable {
		for _, s := range b.elf.Sections {
			if s.Name == name {
				return s.Addr, true
			}
		}
		return 0, false
	}
	i, ok := b.secByNam[name]
	return b.secBase[i], ok
}

func (b *Binary) loadSymbols() error {
	syms, err := b.elf.Symbols()
	if err != nil && !errors.Is(err, elf.ErrNoSymbols) {
		return err
	}
	for _, s := range syms {
		t := elf.ST_TYPE(s.Info)
		if t != elf.STT_FUNC && t != elf.STT_OBJECT && t != elf.STT_NOTYPE || s.Name == "" {
			continue
		}
		if s.Section == elf.SHN_UNDEF || s.Section >= elf.SHN_LORESERVE {
			continue
		}
		addr := s.Value
		if b.Relocatable {
			base, ok := b.secBase[int(s.Section)]
			if !ok {
				continue
			}
			addr += base
		}
		b.syms = append(b.syms, Symbol{Name: s.Name, Addr: addr, Size: s.Size, Section: int(s.Section), order: len(b.syms)})
	}
	// Ties stay in symbol-table order (pdqsort with the index as tiebreak is several
	// times faster than a stable sort on 100k+ symbols).
	slices.SortFunc(b.syms, func(x, y Symbol) int {
		if c := cmp.Compare(x.Addr, y.Addr); c != 0 {
			return c
		}
		return cmp.Compare(x.order, y.order)
	})
	return nil
}

// Resolve turns func+off/size into an address. When several symbols share the name
// (static functions), the one whose size matches wins; with no size or no match, the
// first function symbol.
func (b *Binary) Resolve(name string, off, size uint64) (uint64, Symbol, error) {
	cands := b.lookupName(name)
	if len(cands) == 0 {
		return 0, Symbol{}, fmt.Errorf("%s: no symbol %q", b.Path, name)
	}
	s := cands[0]
	for _, c := range cands {
		if size != 0 && c.Size == size {
			s = c
			break
		}
	}
	return s.Addr + off, s, nil
}

// scanLookups is how many name lookups are answered by scanning the symbols before
// the name index is built: a one-shot decode of a few dozen frames never pays for
// indexing 100k+ names, a long-running process gets the index.
const scanLookups = 64

func (b *Binary) lookupName(name string) []Symbol {
	if b.lookups.Add(1) <= scanLookups {
		var out []Symbol
		for _, s := range b.syms {
			if s.Name == name {
				out = append(out, s)
			}
		}
		slices.SortFunc(out, func(x, y Symbol) int { return cmp.Compare(x.order, y.order) })
		return out
	}
	b.nameOnce.Do(func() {
		m := make(map[string][]Symbol, len(b.syms))
		byOrder := slices.Clone(b.syms)
		slices.SortFunc(byOrder, func(x, y Symbol) int { return cmp.Compare(x.order, y.order) })
		for _, s := range byOrder {
			m[s.Name] = append(m[s.Name], s)
		}
		b.byName = m
	})
	return b.byName[name]
}

// SymbolAt returns the symbol containing addr.
func (b *Binary) SymbolAt(addr uint64) (Symbol, bool) {
	i := sort.Search(len(b.syms), func(i int) bool { return b.syms[i].Addr > addr }) - 1
	for ; i >= 0; i-- {
		s := b.syms[i]
		if addr < s.Addr+max(s.Size, 1) {
			return s, true
		}
		if s.Size != 0 && addr >= s.Addr+s.Size && i > 0 && b.syms[i-1].Addr != s.Addr {
			break
		}
	}
	return Symbol{}, false
}

// Nearest returns the symbol with the highest address at or below addr in the same
// section, as addr2line names code that has no DWARF function (assembly, padding).
func (b *Binary) Nearest(addr uint64) (Symbol, bool) {
	i := sort.Search(len(b.syms), func(i int) bool { return b.syms[i].Addr > addr }) - 1
	if i < 0 {
		return Symbol{}, false
	}
	// Several symbols may share the address: prefer the last one in the table order
	// with a size, as the one covering the address.
	return b.syms[i], true
}

// Symbols returns all symbols sorted by address (not a copy: do not modify).
func (b *Binary) Symbols() []Symbol { return b.syms }

// Text returns size bytes of the file's contents at a link-time address (for a .ko, an
// address in this package's layout), for disassembling functions.
func (b *Binary) Text(addr, size uint64) ([]byte, error) {
	for i, s := range b.elf.Sections {
		if s.Type != elf.SHT_PROGBITS || s.Flags&elf.SHF_ALLOC == 0 {
			continue
		}
		base := s.Addr
		if b.Relocatable {
			var ok bool
			if base, ok = b.secBase[i]; !ok {
				continue
			}
		}
		if addr < base || addr >= base+s.Size {
			continue
		}
		end := min(addr+size, base+s.Size)
		buf := make([]byte, end-addr)
		if _, err := s.ReadAt(buf, int64(addr-base)); err != nil {
			return nil, err
		}
		return buf, nil
	}
	return nil, fmt.Errorf("%s: address %#x is in no section", b.Path, addr)
}

// SectionFor returns the name and start address of the allocated section holding addr
// (for a .ko, in this package's layout), for tools that take section-relative offsets
// (addr2line -j).
func (b *Binary) SectionFor(addr uint64) (name string, base uint64, ok bool) {
	for i, s := range b.elf.Sections {
		if s.Flags&elf.SHF_ALLOC == 0 {
			continue
		}
		base := s.Addr
		if b.Relocatable {
			var in bool
			if base, in = b.secBase[i]; !in {
				continue
			}
		}
		if addr >= base && addr < base+s.Size {
			return s.Name, base, true
		}
	}
	return "", 0, false
}
