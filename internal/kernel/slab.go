package kernel

import (
	"fmt"
	"math/bits"
)

// SlabCache is one SLUB struct kmem_cache with crash's kmem -s figures.
type SlabCache struct {
	Addr      uint64 `json:"addr"`
	Name      string `json:"name"`
	ObjSize   uint64 `json:"objsize"`
	Allocated uint64 `json:"allocated"`
	Total     uint64 `json:"total"`
	Slabs     uint64 `json:"slabs"`
	SlabSize  uint64 `json:"slab_size"` // bytes
	// Err says which part of the cache could not be read (its figures are partial).
	Err string `json:"error,omitempty"`
}

type slabLayout struct {
	list, name, objSize, oo, node, cpuSlab, offset, random int64
	nodeNrSlabs, nodeTotal, nodePartial                    int64
	cpuFreelist, cpuSlab2, cpuPartial                      int64
	slabList, slabFreelist, slabCounters, slabNext         int64
	hardened                                               bool
	nrNodes                                                int
}

func (k *Kernel) slabLayout() (*slabLayout, error) {
	v := k.Vmlinux
	l := &slabLayout{}
	var err error
	set := func(p *int64, typ, m string) {
		if err == nil {
			*p, _, err = v.MemberOffset(typ, m)
		}
	}
	set(&l.list, "kmem_cache", "list")
	set(&l.name, "kmem_cache", "name")
	set(&l.objSize, "kmem_cache", "object_size")
	set(&l.oo, "kmem_cache", "oo")
	set(&l.node, "kmem_cache", "node")
	set(&l.cpuSlab, "kmem_cache", "cpu_slab")
	set(&l.offset, "kmem_cache", "offset")
	set(&l.nodeNrSlabs, "kmem_cache_node", "nr_slabs")
	set(&l.nodeTotal, "kmem_cache_node", "total_objects")
	set(&l.nodePartial, "kmem_cache_node", "partial")
	set(&l.cpuFreelist, "kmem_cache_cpu", "freelist")
	set(&l.cpuSlab2, "kmem_cache_cpu", "slab")
	set(&l.slabList, "slab", "slab_list")
	set(&l.slabFreelist, "slab", "freelist")
	set(&l.slabCounters, "slab", "counters")
	set(&l.slabNext, "slab", "next")
	if err != nil {
		return nil, fmt.Errorf("SLUB layout: %w", err)
	}
	l.cpuPartial, _, _ = v.MemberOffset("kmem_cache_cpu", "partial")
	if r, _, err := v.MemberOffset("kmem_cache", "random"); err == nil {
		l.random, l.hardened = r, true
	}
	l.nrNodes = 1
	if n, err := k.U32Sym("nr_node_ids"); err == nil && n > 0 && n <= 1024 {
		l.nrNodes = int(n)
	}
	return l, nil
}

// SlabCaches lists slab_caches (newest first, as crash prints them) with
// their object counts: TOTAL and SLABS from each node's total_objects and
// nr_slabs; ALLOCATED is TOTAL less the free objects: of the slabs on the
// nodes' partial lists and the CPUs' partial lists (objects - inuse), and
// of the CPUs' active slabs (objects - inuse, which already counts remote
// frees to the slab's own freelist, plus the per-CPU freelist, followed
// with CONFIG_SLAB_FREELIST_HARDENED's decoding when the kernel has it).
// Every present CPU counts: panic takes the others offline, their slabs
// stay theirs.
func (k *Kernel) SlabCaches() ([]SlabCache, error) {
	l, err := k.slabLayout()
	if err != nil {
		return nil, err
	}
	head, err := k.Addr("slab_caches")
	if err != nil {
		return nil, err
	}
	nodes, werr := k.ListWalk(head, 0, 1<<16)
	cpus, err := k.PresentCPUs()
	if err != nil || len(cpus) == 0 {
		cpus = k.cpus()
	}
	var out []SlabCache
	for _, n := range nodes[1:] {
		out = append(out, k.slabCache(l, n-uint64(l.list), cpus))
	}
	return out, werr
}

func (k *Kernel) slabCache(l *slabLayout, s uint64, cpus []int) SlabCache {
	c := SlabCache{Addr: s}
	fail := func(err error) SlabCache {
		if c.Err == "" {
			c.Err = err.Error()
		}
		return c
	}
	if p, err := k.U64(s + uint64(l.name)); err == nil {
		c.Name, _ = k.CString(p, 64)
	}
	osz, err := k.U32(s + uint64(l.objSize))
	if err != nil {
		return fail(err)
	}
	c.ObjSize = uint64(osz)
	oo, _ := k.U32(s + uint64(l.oo))
	c.SlabSize = pageSize << min(oo>>16, 20)
	var free uint64
	for i := 0; i < l.nrNodes; i++ {
		node, err := k.U64(s + uint64(l.node) + uint64(8*i))
		if err != nil || node == 0 {
			continue
		}
		ns, _ := k.U64(node + uint64(l.nodeNrSlabs))
		nt, _ := k.U64(node + uint64(l.nodeTotal))
		c.Slabs += ns
		c.Total += nt
		ph := node + uint64(l.nodePartial)
		slabs, err := k.ListWalk(ph, 0, 1<<20)
		if err != nil {
			fail(fmt.Errorf("node %d partial list: %w", i, err))
		}
		for _, sl := range slabs[1:] {
			inuse, objects, err := k.slabCounts(l, sl-uint64(l.slabList))
			if err == nil && objects >= inuse {
				free += objects - inuse
			}
		}
	}
	cpuSlab, err := k.U64(s + uint64(l.cpuSlab))
	if err != nil {
		return fail(err)
	}
	offset, _ := k.U32(s + uint64(l.offset))
	var random uint64
	if l.hardened {
		random, _ = k.U64(s + uint64(l.random))
	}
	for _, cpu := range cpus {
		po, err := k.PerCPUOffset(cpu)
		if err != nil {
			continue
		}
		kc := cpuSlab + po
		if sl, err := k.U64(kc + uint64(l.cpuSlab2)); err == nil && sl != 0 {
			inuse, objects, err := k.slabCounts(l, sl)
			if err == nil {
				if objects >= inuse {
					free += objects - inuse
				}
				fl, _ := k.U64(kc + uint64(l.cpuFreelist))
				free += k.freelistLen(fl, uint64(offset), random, l.hardened, objects)
			}
		}
		if l.cpuPartial != 0 {
			p, _ := k.U64(kc + uint64(l.cpuPartial))
			for i := 0; p != 0 && i < 1<<16; i++ {
				inuse, objects, err := k.slabCounts(l, p)
				if err != nil {
					break
				}
				if objects >= inuse {
					free += objects - inuse
				}
				if p, err = k.U64(p + uint64(l.slabNext)); err != nil {
					break
				}
			}
		}
	}
	c.Allocated = c.Total - min(free, c.Total)
	return c
}

// slabCounts reads struct slab's counters: inuse:16, objects:15, frozen:1.
func (k *Kernel) slabCounts(l *slabLayout, slab uint64) (inuse, objects uint64, err error) {
	v, err := k.U64(slab + uint64(l.slabCounters))
	if err != nil {
		return 0, 0, err
	}
	return v & 0xffff, v >> 16 & 0x7fff, nil
}

// freelistLen follows a SLUB freelist (the next pointer at offset in each
// free object; with hardening stored as ptr ^ random ^ swab(address of the
// pointer)), at most max objects, stopping at an unreadable object.
func (k *Kernel) freelistLen(p, offset, random uint64, hardened bool, max uint64) uint64 {
	var n uint64
	for p != 0 && n < max {
		n++
		at := p + offset
		v, err := k.U64(at)
		if err != nil {
			break
		}
		if hardened {
			v ^= random ^ bits.ReverseBytes64(at)
		}
		p = v
	}
	return n
}
