package kernel

import (
	"debug/dwarf"
	"encoding/binary"
	"fmt"

	"github.com/kcrash/kcrash/internal/symbolize"
)

// MemInfo is the memory summary crash's kmem -i prints, in pages.
type MemInfo struct {
	Total, Free, Shared, Buffers, Cached, Slab uint64
	HugeTotal, HugeFree                        uint64
	SwapTotal, SwapFree                        uint64
	CommitLimit, Committed                     uint64
	// SharedFrom says how Shared was counted.
	SharedFrom string `json:",omitempty"`
}

// EnumValue returns the value of enumerator name in enum typ ("enum node_stat_item").
func (v *Vmlinux) EnumValue(typ, name string) (int64, error) {
	t, err := v.Type(typ)
	if err != nil {
		return 0, err
	}
	e, ok := symbolize.Strip(t).(*dwarf.EnumType)
	if !ok {
		return 0, fmt.Errorf("%s is not an enum", typ)
	}
	for _, x := range e.Val {
		if x.Name == name {
			return x.Val, nil
		}
	}
	return 0, fmt.Errorf("%s has no %s", typ, name)
}

// statItem reads array[enum value of item] (an atomic_long_t array such as vm_node_stat).
func (k *Kernel) statItem(array, enum, item string) (uint64, error) {
	i, err := k.Vmlinux.EnumValue(enum, item)
	if err != nil {
		return 0, err
	}
	a, err := k.Addr(array)
	if err != nil {
		return 0, err
	}
	v, err := k.U64(a + uint64(i)*8)
	if int64(v) < 0 {
		v = 0
	}
	return v, err
}

// MemInfo computes kmem -i's figures as crash does: totalram_pages; free
// pages from vm_zone_stat[NR_FREE_PAGES]; page cache from
// vm_node_stat[NR_FILE_PAGES] less swap cache and buffers; slab from
// NR_SLAB_RECLAIMABLE_B + NR_SLAB_UNRECLAIMABLE_B; shared by counting the
// pages of mem_map whose _refcount is above 1 (with withShared); huge pages
// from hstates; swap from total_swap_pages and nr_swap_pages; the commit
// limit from sysctl_overcommit_ratio (or _kbytes) and vm_committed_as.
func (k *Kernel) MemInfo(withShared bool) (*MemInfo, error) {
	m := &MemInfo{}
	var err error
	if m.Total, err = k.SymU64("_totalram_pages"); err != nil {
		return nil, err
	}
	if m.Free, err = k.statItem("vm_zone_stat", "enum zone_stat_item", "NR_FREE_PAGES"); err != nil {
		return nil, err
	}
	file, err := k.statItem("vm_node_stat", "enum node_stat_item", "NR_FILE_PAGES")
	if err != nil {
		return nil, err
	}
	swapCache, _ := k.statItem("vm_node_stat", "enum node_stat_item", "NR_SWAPCACHE")
	m.Cached = file - min(file, swapCache)
	for _, item := range []string{"NR_SLAB_RECLAIMABLE_B", "NR_SLAB_UNRECLAIMABLE_B"} {
		n, err := k.statItem("vm_node_stat", "enum node_stat_item", item)
		if err != nil {
			return nil, err
		}
		m.Slab += n
	}
	// Huge pages: struct hstate hstates[HUGE_MAX_HSTATE], hugetlb_max_hstate in use.
	if a, err := k.Addr("hstates"); err == nil {
		n, _ := k.U32Sym("hugetlb_max_hstate")
		if o, err := k.Vmlinux.Offsets("hstate", "order", "nr_huge_pages", "free_huge_pages"); err == nil {
			size, _ := k.Vmlinux.Sizeof("hstate")
			for i := uint64(0); i < uint64(min(n, 4)); i++ {
				h := a + i*uint64(size)
				order, _ := k.U32(h + uint64(o[0]))
				nr, _ := k.U64(h + uint64(o[1]))
				free, _ := k.U64(h + uint64(o[2]))
				m.HugeTotal += nr << min(order, 30)
				m.HugeFree += free << min(order, 30)
			}
		}
	}
	m.SwapTotal, _ = k.SymU64("total_swap_pages")
	m.SwapFree, _ = k.SymU64("nr_swap_pages")
	// mm/util.c vm_commit_limit().
	if kb, err := k.SymU64("sysctl_overcommit_kbytes"); err == nil && kb != 0 {
		m.CommitLimit = kb/4 + m.SwapTotal
	} else if ratio, err := k.U32Sym("sysctl_overcommit_ratio"); err == nil {
		m.CommitLimit = (m.Total-min(m.Total, m.HugeTotal))*uint64(ratio)/100 + m.SwapTotal
	}
	if a, err := k.Addr("vm_committed_as"); err == nil {
		if c, _, err := k.Vmlinux.MemberOffset("percpu_counter", "count"); err == nil {
			if v, err := k.U64(a + uint64(c)); err == nil && int64(v) > 0 {
				m.Committed = v
			}
		}
	}
	if withShared {
		m.Shared, m.SharedFrom, _ = k.sharedPages()
	}
	return m, nil
}

// U32Sym reads the 32-bit variable a symbol names.
func (k *Kernel) U32Sym(name string) (uint32, error) {
	a, err := k.Addr(name)
	if err != nil {
		return 0, err
	}
	return k.U32(a)
}

// sharedPages counts the struct pages of vmemmap (vmemmap_base, max_pfn
// entries) whose _refcount is above 1 and that are not PG_reserved, as
// crash's dump_mem_map does for kmem -i; pages whose struct page is not in
// the dump are skipped.
func (k *Kernel) sharedPages() (uint64, string, error) {
	base, err := k.SymU64("vmemmap_base")
	if err != nil {
		return 0, "", err
	}
	maxPFN, err := k.SymU64("max_pfn")
	if err != nil {
		return 0, "", err
	}
	size, err := k.Vmlinux.Sizeof("page")
	if err != nil {
		return 0, "", err
	}
	ref, _, err := k.Vmlinux.MemberOffset("page", "_refcount")
	if err != nil {
		return 0, "", err
	}
	reserved, err := k.Vmlinux.EnumValue("enum pageflags", "PG_reserved")
	if err != nil || reserved < 0 || reserved > 63 {
		return 0, "", fmt.Errorf("PG_reserved: %v", err)
	}
	if size <= 0 || size > 4096 || maxPFN > 1<<36 {
		return 0, "", fmt.Errorf("implausible struct page size %d or max_pfn %d", size, maxPFN)
	}
	var shared uint64
	buf := make([]byte, pageSize)
	perPage := uint64(pageSize / size)
	for pfn := uint64(0); pfn < maxPFN; pfn += perPage {
		a := base + pfn*uint64(size)
		n := min(perPage, maxPFN-pfn) * uint64(size)
		if _, err := k.ReadAt(buf[:n], a); err != nil {
			continue
		}
		for i := uint64(0); i*uint64(size) < n; i++ {
			p := buf[i*uint64(size):]
			flags := binary.LittleEndian.Uint64(p)
			c := int32(binary.LittleEndian.Uint32(p[ref:]))
			if c > 1 && flags>>reserved&1 == 0 {
				shared++
			}
		}
	}
	return shared, "struct pages with _refcount > 1, not PG_reserved", nil
}
