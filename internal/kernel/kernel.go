package kernel

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/bits"
	"strings"
	"sync"

	"github.com/kcrash/kcrash/internal/dump"
)

// pageSize is the page size of the dumps read here (4 KiB).
const pageSize = 4096

// Kernel is a kernel found in a dump: where its image sits (KASLR), how to
// translate its virtual addresses, and its symbols and types.
type Kernel struct {
	Dump    *dump.Dump
	Vmlinux *Vmlinux
	// Arch is the architecture of the vmlinux (see arch.go).
	Arch Arch
	// Info is the VMCOREINFO note as KEY=value pairs (empty when absent).
	Info map[string]string
	// Offset is the KASLR offset added to every link-time kernel address.
	Offset uint64
	// PhysBase is the physical address the kernel image was loaded at minus its link offset.
	PhysBase uint64
	// PGD is the physical address of the kernel's top-level page table.
	PGD uint64
	// L5 is set when the kernel uses 5-level paging (x86-64).
	L5 bool
	// OffsetFrom says where Offset came from: "VMCOREINFO", "CR3 page-table walk" or "none".
	OffsetFrom string
	smeMask    uint64

	cacheMu sync.Mutex
	pages   map[uint64][]byte // physical page cache
	tlb     map[uint64]uint64 // virtual page -> physical page
	modules []*Module
	pathL   *pathLayout
	orcOnce sync.Once
	orc     *orcTable
	// OrcLayoutFrom says how the ORC entry encoding was chosen (see orcLayout).
	OrcLayoutFrom string
	orcLayoutOnce sync.Once
	orcLay        orcLayout
}

// Open opens a vmlinux and a dump and finds the kernel. Cost: the dump's
// headers, the vmlinux's ELF headers and a few page-table reads; no DWARF.
func Open(vmlinuxPath, dumpPath string) (*Kernel, error) {
	return OpenCached(vmlinuxPath, dumpPath, "")
}

// OpenCached is Open with a cache directory for the vmlinux's type index
// (see Vmlinux.CacheDir); "" disables it.
func OpenCached(vmlinuxPath, dumpPath, cacheDir string) (*Kernel, error) {
	return OpenWith(vmlinuxPath, dumpPath, Options{CacheDir: cacheDir})
}

// Options are OpenWith's choices.
type Options struct {
	// CacheDir keeps the vmlinux's type index (see Vmlinux.CacheDir); "" disables it.
	CacheDir string
	// Force opens a dump whose kernel is not the vmlinux's (build ID or
	// release mismatch), which is otherwise refused.
	Force bool
}

// MismatchError is returned when the dump's kernel is not the vmlinux's.
type MismatchError struct {
	What          string // "build ID" or "release"
	Dump, Vmlinux string
	VmlinuxPath   string
}

func (e *MismatchError) Error() string {
	return fmt.Sprintf("the dump's kernel has %s %s but %s has %s (use --force to read it anyway)", e.What, e.Dump, e.VmlinuxPath, e.Vmlinux)
}

// OpenWith opens a vmlinux and a dump with options.
func OpenWith(vmlinuxPath, dumpPath string, o Options) (*Kernel, error) {
	v, err := OpenVmlinux(vmlinuxPath)
	if err != nil {
		return nil, err
	}
	v.CacheDir = o.CacheDir
	d, err := dump.Open(dumpPath)
	if err != nil {
		v.Close()
		return nil, err
	}
	k, err := newKernel(v, d, o.Force)
	if err != nil {
		v.Close()
		d.Close()
		return nil, err
	}
	return k, nil
}

// Close releases the dump and the vmlinux.
func (k *Kernel) Close() error {
	err := k.Dump.Close()
	if e := k.Vmlinux.Close(); err == nil {
		err = e
	}
	return err
}

// ParseVMCOREINFO splits the note's KEY=value lines.
func ParseVMCOREINFO(b []byte) map[string]string {
	m := map[string]string{}
	for _, line := range bytes.Split(b, []byte("\n")) {
		if k, v, ok := bytes.Cut(line, []byte("=")); ok {
			m[string(k)] = string(v)
		}
	}
	return m
}

// New finds the kernel of vmlinux v in dump d: the architecture from the
// vmlinux, then the KASLR offset and page tables (Arch.Locate), and checks
// that the dump is of this vmlinux's kernel.
func New(v *Vmlinux, d *dump.Dump) (*Kernel, error) { return newKernel(v, d, false) }

func newKernel(v *Vmlinux, d *dump.Dump, force bool) (*Kernel, error) {
	a, err := archFor(v.f.Machine)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", v.Path, err)
	}
	k := &Kernel{Dump: d, Vmlinux: v, Arch: a, Info: ParseVMCOREINFO(d.VMCOREINFO()), pages: map[uint64][]byte{}, tlb: map[uint64]uint64{}}
	if err := a.Locate(k); err != nil {
		return nil, err
	}
	if err := k.CheckIdentity(); err != nil && !force {
		return nil, err
	}
	return k, nil
}

// CheckIdentity compares the dump's kernel with the vmlinux: VMCOREINFO's
// BUILD-ID with the vmlinux's GNU build ID, and VMCOREINFO's OSRELEASE with
// the release in the vmlinux's linux_banner. It returns a *MismatchError
// naming both identities, or nil (also when either side lacks one).
func (k *Kernel) CheckIdentity() error {
	v := k.Vmlinux
	if id := k.Info["BUILD-ID"]; id != "" {
		if vid := v.BuildID(); vid != "" && !strings.HasPrefix(vid, id) {
			return &MismatchError{What: "build ID", Dump: id, Vmlinux: vid, VmlinuxPath: v.Path}
		}
	}
	if rel := k.Info["OSRELEASE"]; rel != "" {
		if vrel := v.Release(); vrel != "" && vrel != rel {
			return &MismatchError{What: "release", Dump: rel, Vmlinux: vrel, VmlinuxPath: v.Path}
		}
	}
	return nil
}

func (k *Kernel) clearCaches() {
	k.cacheMu.Lock()
	clear(k.tlb)
	k.cacheMu.Unlock()
}

// Addr returns the runtime address of a vmlinux symbol.
func (k *Kernel) Addr(name string) (uint64, error) {
	s, err := k.Vmlinux.Symbol(name)
	if err != nil {
		return 0, err
	}
	if !k.Arch.Relocated(s.Addr) {
		return s.Addr, nil // per-CPU symbols are offsets, not relocated
	}
	return s.Addr + k.Offset, nil
}

// SymbolAt names the vmlinux symbol containing the runtime address addr.
func (k *Kernel) SymbolAt(addr uint64) (Symbol, uint64, bool) {
	if lo, hi := k.Arch.Image(k); addr < lo || addr >= hi {
		return Symbol{}, 0, false
	}
	s, ok := k.Vmlinux.SymbolAt(addr - k.Offset)
	if !ok {
		return Symbol{}, 0, false
	}
	s.Addr += k.Offset
	return s, addr - s.Addr, true
}

// maxCachedPages bounds the physical page cache (16 MiB).
const maxCachedPages = 4096

// physPage returns the cached physical page at pfn.
func (k *Kernel) physPage(pfn uint64) ([]byte, error) {
	k.cacheMu.Lock()
	p, ok := k.pages[pfn]
	k.cacheMu.Unlock()
	if ok {
		return p, nil
	}
	p = make([]byte, pageSize)
	if _, err := k.Dump.ReadAt(p, pfn*pageSize); err != nil {
		return nil, err
	}
	k.cacheMu.Lock()
	if len(k.pages) >= maxCachedPages {
		clear(k.pages)
	}
	k.pages[pfn] = p
	k.cacheMu.Unlock()
	return p, nil
}

// ReadPhys reads physical memory through the page cache.
func (k *Kernel) ReadPhys(p []byte, addr uint64) error {
	for len(p) > 0 {
		pg, err := k.physPage(addr / pageSize)
		if err != nil {
			return err
		}
		n := copy(p, pg[addr%pageSize:])
		p, addr = p[n:], addr+uint64(n)
	}
	return nil
}

// VirtToPhys translates a kernel virtual address.
func (k *Kernel) VirtToPhys(va uint64) (uint64, error) {
	if pa, ok := k.Arch.Linear(k, va); ok {
		return pa, nil
	}
	k.cacheMu.Lock()
	ppn, ok := k.tlb[va/pageSize]
	k.cacheMu.Unlock()
	if ok {
		return ppn*pageSize + va%pageSize, nil
	}
	pa, err := k.Arch.Walk(k, va)
	if err != nil {
		return 0, err
	}
	k.cacheMu.Lock()
	if len(k.tlb) >= 1<<16 {
		clear(k.tlb)
	}
	k.tlb[va/pageSize] = pa / pageSize
	k.cacheMu.Unlock()
	return pa, nil
}

// ReadAt reads kernel virtual memory (the Memory interface).
func (k *Kernel) ReadAt(p []byte, va uint64) (int, error) {
	total := len(p)
	for len(p) > 0 {
		pa, err := k.VirtToPhys(va)
		if err != nil {
			return total - len(p), fmt.Errorf("read %#x: %w", va, err)
		}
		n := min(uint64(len(p)), pageSize-va%pageSize)
		if err := k.ReadPhys(p[:n], pa); err != nil {
			return total - len(p), fmt.Errorf("read %#x (physical %#x): %w", va, pa, err)
		}
		p, va = p[n:], va+n
	}
	return total, nil
}

// U64 reads a little-endian 64-bit value at va.
func (k *Kernel) U64(va uint64) (uint64, error) {
	var b [8]byte
	if _, err := k.ReadAt(b[:], va); err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint64(b[:]), nil
}

// U32 reads a little-endian 32-bit value at va.
func (k *Kernel) U32(va uint64) (uint32, error) {
	var b [4]byte
	if _, err := k.ReadAt(b[:], va); err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint32(b[:]), nil
}

// CString reads a NUL-terminated string of at most max bytes at va.
func (k *Kernel) CString(va uint64, max int) (string, error) {
	b := make([]byte, max)
	if _, err := k.ReadAt(b, va); err != nil {
		return "", err
	}
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return string(b), nil
}

// SymU64 reads the 64-bit variable a symbol names.
func (k *Kernel) SymU64(name string) (uint64, error) {
	a, err := k.Addr(name)
	if err != nil {
		return 0, err
	}
	return k.U64(a)
}

// PerCPUOffset returns __per_cpu_offset[cpu].
func (k *Kernel) PerCPUOffset(cpu int) (uint64, error) {
	a, err := k.Addr("__per_cpu_offset")
	if err != nil {
		return 0, err
	}
	return k.U64(a + uint64(cpu)*8)
}

// PerCPU returns the address of CPU cpu's copy of the per-CPU variable name.
func (k *Kernel) PerCPU(name string, cpu int) (uint64, error) {
	a, err := k.Addr(name)
	if err != nil {
		return 0, err
	}
	off, err := k.PerCPUOffset(cpu)
	if err != nil {
		return 0, err
	}
	return a + off, nil
}

// cpumask reads a cpumask variable's set bits (NR_CPUS bits; at most 8192).
func (k *Kernel) cpumask(name string) ([]int, error) {
	a, err := k.Addr(name)
	if err != nil {
		return nil, err
	}
	nr := 64
	if n, err := k.Addr("nr_cpu_ids"); err == nil {
		if v, err := k.U32(n); err == nil && v > 0 && v <= 8192 {
			nr = int(v)
		}
	}
	var cpus []int
	for w := 0; w*64 < nr; w++ {
		x, err := k.U64(a + uint64(w)*8)
		if err != nil {
			return nil, err
		}
		for x != 0 {
			b := bits.TrailingZeros64(x)
			if w*64+b < nr {
				cpus = append(cpus, w*64+b)
			}
			x &^= 1 << b
		}
	}
	return cpus, nil
}

// PresentCPUs lists the present CPUs (__cpu_present_mask).
func (k *Kernel) PresentCPUs() ([]int, error) { return k.cpumask("__cpu_present_mask") }

// OnlineCPUs lists the online CPUs (__cpu_online_mask).
func (k *Kernel) OnlineCPUs() ([]int, error) { return k.cpumask("__cpu_online_mask") }

// BuildID returns the hex GNU build ID of the vmlinux, or "".
func (v *Vmlinux) BuildID() string {
	b := v.section(".notes")
	if b == nil {
		b = v.section(".note.gnu.build-id")
	}
	le := binary.LittleEndian
	for off := 0; off+12 <= len(b); {
		nsz, dsz, typ := int(le.Uint32(b[off:])), int(le.Uint32(b[off+4:])), le.Uint32(b[off+8:])
		name := off + 12
		desc := name + (nsz+3)&^3
		if nsz < 0 || dsz < 0 || desc+dsz > len(b) {
			break
		}
		if typ == 3 && string(b[name:name+nsz]) == "GNU\x00" {
			return fmt.Sprintf("%x", b[desc:desc+dsz])
		}
		off = desc + (dsz+3)&^3
	}
	return ""
}

// Release returns the vmlinux's release from its linux_banner, or "".
func (v *Vmlinux) Release() string {
	s, err := v.Symbol("linux_banner")
	if err != nil {
		return ""
	}
	b := v.bytesAt(s.Addr, 256)
	f := strings.Fields(string(b))
	if len(f) >= 3 && f[0] == "Linux" && f[1] == "version" {
		return f[2]
	}
	return ""
}

// bytesAt returns up to n bytes of initialised data at a link address, from the file.
func (v *Vmlinux) bytesAt(addr uint64, n int) []byte {
	for _, s := range v.f.Sections {
		if s.Addr <= addr && addr < s.Addr+s.Size && s.Type == 1 /* SHT_PROGBITS */ {
			b := v.section(s.Name)
			if b == nil {
				return nil
			}
			off := addr - s.Addr
			end := min(off+uint64(n), uint64(len(b)))
			return b[off:end]
		}
	}
	return nil
}
