package fleet

import (
	"fmt"
	"sort"
	"strings"
)

// Region is a part of the x86-64 virtual address space (4-level paging) a kernel
// pointer can plausibly point into. With KASLR the direct map, vmalloc and vmemmap
// bases move within the kernel half and the kernel image within its 1 GiB window, so
// the ranges below are the envelopes KASLR can place them in, not exact mappings;
// a narrow envelope (kernel text, modules) makes a one-bit match more telling than a
// wide one (the randomised region), and the score says so.
type Region struct {
	Name     string
	Lo, Hi   uint64 // [Lo, Hi)
	Strength float64
}

// Regions are checked in order; the first match names an address.
var Regions = []Region{
	{"null", 0, 0x10000, 0.6}, // below mmap_min_addr: NULL plus a field offset
	{"user", 0x10000, 0x0000_8000_0000_0000, 0.3},
	// page_offset_base, vmalloc_base and vmemmap_base are randomised, in that order,
	// from 0xffff888000000000 up to the cpu_entry_area; without KASLR they are
	// 0xffff888000000000, 0xffffc90000000000 and 0xffffea0000000000.
	{"direct-map", 0xffff_8880_0000_0000, 0xffff_c900_0000_0000, 0.5},
	{"vmalloc", 0xffff_c900_0000_0000, 0xffff_ea00_0000_0000, 0.45},
	{"vmemmap", 0xffff_ea00_0000_0000, 0xffff_fe00_0000_0000, 0.4},
	{"kernel-text", 0xffff_ffff_8000_0000, 0xffff_ffff_c000_0000, 0.8},
	{"modules", 0xffff_ffff_c000_0000, 0xffff_ffff_ff00_0000, 0.7},
}

// RegionOf names the region of a canonical address ("" when none fits, or when the
// address is non-canonical).
func RegionOf(a uint64) string {
	if !Canonical(a) {
		return ""
	}
	for _, r := range Regions {
		if a >= r.Lo && a < r.Hi {
			return r.Name
		}
	}
	return ""
}

func regionStrength(name string) float64 {
	for _, r := range Regions {
		if r.Name == name {
			return r.Strength
		}
	}
	return 0
}

// Canonical says whether bits 63..47 of a are all equal (x86-64, 48-bit virtual).
func Canonical(a uint64) bool {
	top := a >> 47
	return top == 0 || top == 0x1ffff
}

// Flip is a bit-flip explanation of a bad address: Addr with Bit inverted is
// Flipped, a plausible pointer (in Region, or near the pointer a register holds).
type Flip struct {
	Source  string  `json:"source"` // where Addr came from: "CR2", "RAX", "RIP" …
	Addr    uint64  `json:"addr"`
	Flipped uint64  `json:"flipped"`
	Bit     int     `json:"bit"`
	Region  string  `json:"region"`
	Near    string  `json:"near,omitempty"` // the register whose value Flipped is close to
	Score   float64 `json:"score"`          // 0..1
}

func (f Flip) String() string {
	s := fmt.Sprintf("%s %#016x is %#016x with bit %d flipped (%s", f.Source, f.Addr, f.Flipped, f.Bit, f.Region)
	if f.Near != "" {
		s += ", next to " + f.Near
	}
	return s + fmt.Sprintf("; score %.2f)", f.Score)
}

// Distances between pointers: a register within sameWindow of the bad address
// holds (a field of) the same bad pointer; two pointers within nearWindow are in
// the same neighbourhood of memory (the kernel's heap on one machine spans a few
// GiB of the direct map, wherever KASLR put it).
const (
	sameWindow = 64 << 10
	nearWindow = 4 << 30
)

func dist(a, b uint64) uint64 {
	if a < b {
		return b - a
	}
	return a - b
}

// kernelPointer says whether v looks like a kernel-half pointer worth comparing to.
func kernelPointer(v uint64) bool {
	r := RegionOf(v)
	return r == "direct-map" || r == "vmalloc" || r == "vmemmap" || r == "kernel-text" || r == "modules"
}

// BitFlip scores the hypothesis that addr, a bad address the kernel faulted on (or
// a register a general protection fault used), is a good pointer with one bit
// flipped, after rust-minidump's heuristic: every single-bit neighbour of addr is
// tried, and the best one scores by what it becomes:
//
//   - a value in the neighbourhood of the other pointers the registers hold while
//     addr is far from all of them (0.9; 0.95 when it is within one object of one):
//     the dump pins the flip down whatever KASLR did;
//   - a canonical address when addr is non-canonical: the region's strength (a
//     narrow region such as kernel text scores more than the randomised direct map);
//   - NULL plus a small offset when addr is far from NULL: 0.6.
//
// An address in the neighbourhood of the registers' other pointers, or NULL with a
// small offset (an ordinary NULL dereference), is no evidence: ok is false. Flips of
// low bits leave a pointer plausible and cannot be told from a software bug.
func BitFlip(src string, addr uint64, regs map[string]uint64) (Flip, bool) {
	if addr < 0x10000 {
		return Flip{}, false
	}
	names := make([]string, 0, len(regs))
	for n, v := range regs {
		if n == src || n == "RIP" || n == "RSP" || !kernelPointer(v) || dist(v, addr) < sameWindow {
			continue // the bad pointer itself, or not a data pointer
		}
		if dist(v, addr) < nearWindow {
			return Flip{}, false // among the other pointers: plausible as it is
		}
		names = append(names, n)
	}
	sort.Strings(names)
	best := Flip{Source: src, Addr: addr}
	for bit := 0; bit < 64; bit++ {
		f := addr ^ 1<<bit
		region := RegionOf(f)
		if region == "" {
			continue
		}
		cand := Flip{Source: src, Addr: addr, Flipped: f, Bit: bit, Region: region}
		for _, n := range names {
			if d := dist(f, regs[n]); d < nearWindow {
				cand.Near, cand.Score = n, 0.9
				if d < sameWindow {
					cand.Score = 0.95
					break
				}
			}
		}
		if cand.Score == 0 {
			switch {
			case region == "null":
				cand.Score = regionStrength("null")
			case !Canonical(addr):
				cand.Score = regionStrength(region)
			}
		}
		if cand.Score > best.Score {
			best = cand
		}
	}
	return best, best.Score > 0
}

// NonCanonical lists the registers holding a non-canonical value: what a general
// protection fault on x86-64 most often dereferenced.
func NonCanonical(regs map[string]uint64) []string {
	var out []string
	for n, v := range regs {
		// LIST_POISON and friends (0xdead…) are a software marker, not a flip.
		if !Canonical(v) && v>>48 != 0xdead && n != "EFLAGS" && n != "ORIG_RAX" && !strings.HasPrefix(n, "CR") {
			out = append(out, n)
		}
	}
	sort.Strings(out)
	return out
}
