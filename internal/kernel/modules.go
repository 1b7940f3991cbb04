package kernel

import (
	"encoding/binary"
	"fmt"
	"sort"
)

// Module is one loaded module (include/linux/module.h: struct module).
type Module struct {
	Addr uint64 // the struct module
	Name string
	Base uint64 // core_layout.base (6.1) or mem[MOD_TEXT].base (6.4+)
	Size uint64
	// TextSize is the length of the text at Base (core_layout.text_size, or
	// mem[MOD_TEXT].size on 6.4+), 0 when unknown.
	TextSize uint64
	// Mem are the module's other memory regions on 6.4+ (mem[MOD_DATA],
	// mem[MOD_RODATA], …: struct module_memory), empty before.
	Mem []ModuleMem
	// ORC tables (mod_arch_specific), read when the unwinder needs them.
	numORC          uint64
	orcIP, orcTable uint64
	kallsyms        uint64
	syms            []Symbol // runtime addresses, sorted; loaded lazily
	symsLoaded      bool
	orc             *orcTable
}

// ModuleMem is one region of a module's memory (6.4+: enum mod_mem_type).
type ModuleMem struct {
	Type       int // MOD_TEXT 0, MOD_DATA 1, MOD_RODATA 2, MOD_RO_AFTER_INIT 3, MOD_INIT_* 4-6
	Base, Size uint64
}

// maxModuleSyms bounds a module's kallsyms table.
const maxModuleSyms = 1 << 20

// Modules lists the loaded modules in the order of the `modules` list,
// oldest last as crash prints them reversed. Cost: DWARF lookups once, then a
// few reads per module; cached.
func (k *Kernel) Modules() ([]*Module, error) {
	if k.modules != nil {
		return k.modules, nil
	}
	v := k.Vmlinux
	o, err := v.Offsets("module", "list", "name", "arch.num_orcs", "arch.orc_unwind_ip", "arch.orc_unwind", "kallsyms")
	if err != nil {
		// arm64 (no ORC): the same offsets with the ORC ones left at -1.
		var o2 []int64
		if o2, err = v.Offsets("module", "list", "name", "kallsyms"); err != nil {
			return nil, err
		}
		o = []int64{o2[0], o2[1], -1, -1, -1, o2[2]}
	}
	baseOff, _, err := v.MemberOffset("module", "core_layout.base")
	var sizeOff int64
	var textOff int64
	if err == nil {
		sizeOff, _, err = v.MemberOffset("module", "core_layout.size")
		textOff, _, _ = v.MemberOffset("module", "core_layout.text_size")
	} else if baseOff, _, err = v.MemberOffset("module", "mem"); err == nil {
		// 6.4+: struct module_memory mem[MOD_MEM_NUM_TYPES], MOD_TEXT first: {base, size, …}.
		sizeOff = baseOff + 8
	}
	if err != nil {
		return nil, err
	}
	// 6.4+: every region of mem[], its count from the array's size.
	var memStride, memCount int64
	if textOff == 0 {
		es, err1 := v.Sizeof("module_memory")
		_, mt, err2 := v.Member("module", "mem")
		if err1 == nil && err2 == nil && es > 0 && mt.Size() > 0 {
			memStride, memCount = es, min(mt.Size()/es, 16)
		}
	}
	head, err := k.Addr("modules")
	if err != nil {
		return nil, err
	}
	var mods []*Module
	err = k.listEach(head, func(n uint64) error {
		a := n - uint64(o[0])
		m := &Module{Addr: a}
		m.Name, _ = k.CString(a+uint64(o[1]), 56)
		m.Base, _ = k.U64(a + uint64(baseOff))
		sz, _ := k.U32(a + uint64(sizeOff))
		m.Size = uint64(sz)
		if textOff != 0 {
			ts, _ := k.U32(a + uint64(textOff))
			m.TextSize = uint64(ts)
		} else if memCount > 0 {
			m.TextSize = m.Size
			for i := int64(1); i < memCount; i++ {
				r := a + uint64(baseOff+i*memStride)
				b, err1 := k.U64(r)
				sz, err2 := k.U32(r + 8)
				if err1 == nil && err2 == nil && b != 0 && sz != 0 {
					m.Mem = append(m.Mem, ModuleMem{Type: int(i), Base: b, Size: uint64(sz)})
				}
			}
		}
		if o[2] >= 0 {
			n32, _ := k.U32(a + uint64(o[2]))
			m.numORC = uint64(n32)
			m.orcIP, _ = k.U64(a + uint64(o[3]))
			m.orcTable, _ = k.U64(a + uint64(o[4]))
		}
		m.kallsyms, _ = k.U64(a + uint64(o[5]))
		mods = append(mods, m)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("module list: %w", err)
	}
	k.modules = mods
	return mods, nil
}

// ModuleAt returns the module whose core image contains addr.
func (k *Kernel) ModuleAt(addr uint64) *Module {
	mods, _ := k.Modules()
	for _, m := range mods {
		if addr >= m.Base && addr < m.Base+m.Size {
			return m
		}
	}
	for _, m := range mods {
		for _, r := range m.Mem {
			if addr >= r.Base && addr < r.Base+r.Size {
				return m
			}
		}
	}
	return nil
}

// contains reports whether addr is in any of m's regions.
func (m *Module) contains(addr uint64) bool {
	if addr >= m.Base && addr < m.Base+m.Size {
		return true
	}
	for _, r := range m.Mem {
		if addr >= r.Base && addr < r.Base+r.Size {
			return true
		}
	}
	return false
}

// moduleSymbols reads a module's kallsyms (struct mod_kallsyms: Elf64_Sym
// *symtab; unsigned int num_symtab; char *strtab; char *typetab).
func (k *Kernel) moduleSymbols(m *Module) []Symbol {
	if m.symsLoaded {
		return m.syms
	}
	m.symsLoaded = true
	if m.kallsyms == 0 {
		return nil
	}
	symtab, err1 := k.U64(m.kallsyms)
	num, err2 := k.U32(m.kallsyms + 8)
	strtab, err3 := k.U64(m.kallsyms + 16)
	if err1 != nil || err2 != nil || err3 != nil || num > maxModuleSyms {
		return nil
	}
	b := make([]byte, uint64(num)*24)
	if _, err := k.ReadAt(b, symtab); err != nil {
		return nil
	}
	le := binary.LittleEndian
	for i := uint32(1); i < num; i++ {
		e := b[i*24:]
		val, size := le.Uint64(e[8:]), le.Uint64(e[16:])
		if !m.contains(val) {
			continue
		}
		name, err := k.CString(strtab+uint64(le.Uint32(e)), 128)
		if err != nil || name == "" {
			continue
		}
		m.syms = append(m.syms, Symbol{Name: name, Addr: val, Size: size, Type: 2})
	}
	sort.SliceStable(m.syms, func(i, j int) bool { return m.syms[i].Addr < m.syms[j].Addr })
	return m.syms
}

// Lookup names any kernel text or data address: the vmlinux's symbols, then
// the loaded modules' kallsyms. It returns the symbol, the offset into it and
// the module name ("" for the vmlinux).
func (k *Kernel) Lookup(addr uint64) (Symbol, uint64, string, bool) {
	if s, off, ok := k.SymbolAt(addr); ok {
		return s, off, "", true
	}
	m := k.ModuleAt(addr)
	if m == nil {
		return Symbol{}, 0, "", false
	}
	syms := k.moduleSymbols(m)
	i := sort.Search(len(syms), func(i int) bool { return syms[i].Addr > addr }) - 1
	if i < 0 {
		return Symbol{}, 0, m.Name, false
	}
	return syms[i], addr - syms[i].Addr, m.Name, true
}

// LookupName returns the runtime address of a vmlinux or module symbol.
func (k *Kernel) LookupName(name string) (uint64, error) {
	if a, err := k.Addr(name); err == nil {
		return a, nil
	}
	mods, _ := k.Modules()
	for _, m := range mods {
		for _, s := range k.moduleSymbols(m) {
			if s.Name == name {
				return s.Addr, nil
			}
		}
	}
	return 0, fmt.Errorf("%s: %w", name, ErrNoSymbol)
}
