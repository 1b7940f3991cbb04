package symbolize

import (
	"debug/dwarf"
	"encoding/binary"
	"fmt"
	"sort"
	"strings"
)

type cuRange struct {
	lo, hi uint64
	off    dwarf.Offset
}

// Dwarf returns the binary's whole DWARF data (every unit header parsed), loading it
// on first use. Lookups by address do not need it: they open single units (see unit).
// Section data is taken from the mapping without copying (a .ko's sections are copied
// and relocated to this package's layout).
func (b *Binary) Dwarf() (*dwarf.Data, error) {
	b.dwOnce.Do(func() {
		defer func() {
			if r := recover(); r != nil {
				b.dwErr = fmt.Errorf("%s: malformed DWARF: %v", b.Path, r)
			}
		}()
		b.dw, b.dwErr = b.newData(nil)
	})
	return b.dw, b.dwErr
}

// sections returns the debug sections, read (and for a .ko relocated) once.
func (b *Binary) debugSections() (map[string][]byte, error) {
	b.secOnce.Do(func() {
		b.secs = map[string][]byte{}
		for _, n := range []string{".debug_info", ".debug_abbrev", ".debug_aranges", ".debug_line", ".debug_ranges",
			".debug_str", ".debug_addr", ".debug_line_str", ".debug_str_offsets", ".debug_rnglists", ".debug_loclists", ".debug_loc"} {
			d, err := b.section(n)
			if err != nil {
				b.secErr = err
				return
			}
			if len(d) > 0 {
				b.secs[n] = d
			}
		}
		if len(b.secs[".debug_info"]) == 0 {
			b.secErr = fmt.Errorf("%s: %w", b.Path, ErrNoDebugInfo)
		}
	})
	return b.secs, b.secErr
}

// newData builds a dwarf.Data over info (nil: the whole .debug_info).
func (b *Binary) newData(info []byte) (*dwarf.Data, error) {
	secs, err := b.debugSections()
	if err != nil {
		return nil, err
	}
	if info == nil {
		info = secs[".debug_info"]
	}
	d, err := dwarf.New(secs[".debug_abbrev"], nil, nil, info, secs[".debug_line"], nil, secs[".debug_ranges"], secs[".debug_str"])
	if err != nil {
		return nil, fmt.Errorf("%s: %w", b.Path, err)
	}
	for _, n := range []string{".debug_addr", ".debug_line_str", ".debug_str_offsets", ".debug_rnglists", ".debug_loclists"} {
		if s := secs[n]; len(s) > 0 {
			if err := d.AddSection(n, s); err != nil {
				return nil, fmt.Errorf("%s: %s: %w", b.Path, n, err)
			}
		}
	}
	return d, nil
}

// indexUnits builds the sorted address → unit-header index once: from .debug_aranges
// when present (no unit is read), else from every unit's ranges.
func (b *Binary) indexUnits() error {
	b.idxOnce.Do(func() {
		defer func() {
			if r := recover(); r != nil {
				b.idxErr = fmt.Errorf("%s: malformed DWARF: %v", b.Path, r)
			}
		}()
		secs, err := b.debugSections()
		if err != nil {
			b.idxErr = err
			return
		}
		if ar := secs[".debug_aranges"]; len(ar) > 0 && !b.Relocatable {
			if rs, err := parseAranges(ar, b.elf.ByteOrder); err == nil && len(rs) > 0 {
				b.cuIndex, b.perUnit = rs, true
			}
		}
		if b.cuIndex == nil {
			d, err := b.Dwarf()
			if err != nil {
				b.idxErr = err
				return
			}
			r := d.Reader()
			for {
				e, err := r.Next()
				if err != nil {
					b.idxErr = fmt.Errorf("%s: indexing units: %w", b.Path, err)
					return
				}
				if e == nil {
					break
				}
				if e.Tag == dwarf.TagCompileUnit || e.Tag == dwarf.TagPartialUnit {
					rs, _ := d.Ranges(e)
					for _, rg := range rs {
						if rg[1] > rg[0] {
							b.cuIndex = append(b.cuIndex, cuRange{rg[0], rg[1], e.Offset})
						}
					}
				}
				r.SkipChildren()
			}
		}
		sort.Slice(b.cuIndex, func(i, j int) bool { return b.cuIndex[i].lo < b.cuIndex[j].lo })
	})
	return b.idxErr
}

// unitSlice returns the bytes of the unit whose header is at off in .debug_info.
func unitSlice(info []byte, off dwarf.Offset, bo binary.ByteOrder) ([]byte, bool) {
	o := int(off)
	if o < 0 || o+4 > len(info) {
		return nil, false
	}
	n := uint64(bo.Uint32(info[o:])) + 4
	if n == 0xffffffff+4 {
		if o+12 > len(info) {
			return nil, false
		}
		n = bo.Uint64(info[o+4:]) + 12
	}
	if n > uint64(len(info)-o) {
		return nil, false
	}
	return info[o : o+int(n)], true
}

// firstEntry returns the offset of the first entry of the unit whose header is at off
// in .debug_info (DWARF 2-5, 32- and 64-bit headers).
func firstEntry(info []byte, off dwarf.Offset, bo binary.ByteOrder) (dwarf.Offset, bool) {
	o := int(off)
	if o < 0 || o+4 > len(info) {
		return 0, false
	}
	hdr, offSize := 4, 4
	if bo.Uint32(info[o:]) == 0xffffffff {
		hdr, offSize = 12, 8
	}
	if o+hdr+2 > len(info) {
		return 0, false
	}
	ver := bo.Uint16(info[o+hdr:])
	n := hdr + 2
	switch {
	case ver >= 2 && ver <= 4:
		n += offSize + 1 // abbrev offset, address size
	case ver == 5:
		if o+n >= len(info) {
			return 0, false
		}
		ut := info[o+n]
		n += 2 + offSize // unit type, address size, abbrev offset
		switch ut {
		case 0x02, 0x06: // DW_UT_type, DW_UT_split_type
			n += 8 + offSize
		case 0x04, 0x05: // DW_UT_skeleton, DW_UT_split_compile
			n += 8
		}
	default:
		return 0, false
	}
	if o+n > len(info) {
		return 0, false
	}
	return dwarf.Offset(o + n), true
}

// UnitRange is an address range of a compilation unit, from .debug_aranges.
type UnitRange struct {
	Lo, Hi uint64
	Unit   uint64 // offset of the unit's header in .debug_info
}

// ParseAranges reads a .debug_aranges section (little-endian): the address ranges of
// every unit, for callers that map addresses to units without this package's Binary.
func ParseAranges(data []byte) ([]UnitRange, error) {
	rs, err := parseAranges(data, binary.LittleEndian)
	out := make([]UnitRange, len(rs))
	for i, r := range rs {
		out[i] = UnitRange{r.lo, r.hi, uint64(r.off)}
	}
	return out, err
}

// parseAranges reads .debug_aranges (DWARF 2-5, 32- and 64-bit) into unit ranges.
func parseAranges(data []byte, bo binary.ByteOrder) ([]cuRange, error) {
	var out []cuRange
	for off := 0; off < len(data); {
		if len(data)-off < 4 {
			return out, fmt.Errorf("aranges at %#x: truncated header", off)
		}
		length := uint64(bo.Uint32(data[off:]))
		hdr := 4
		dwarf64 := false
		if length == 0xffffffff {
			if len(data)-off < 12 {
				return out, fmt.Errorf("aranges at %#x: truncated header", off)
			}
			length = bo.Uint64(data[off+4:])
			hdr, dwarf64 = 12, true
		}
		if length > uint64(len(data)-off-hdr) {
			return out, fmt.Errorf("aranges at %#x: length %d beyond section", off, length)
		}
		set := data[off+hdr : off+hdr+int(length)]
		next := off + hdr + int(length)
		p := 2 // version
		var cu uint64
		if dwarf64 {
			if len(set) < p+8+2 {
				return out, fmt.Errorf("aranges at %#x: truncated set", off)
			}
			cu = bo.Uint64(set[p:])
			p += 8
		} else {
			if len(set) < p+4+2 {
				return out, fmt.Errorf("aranges at %#x: truncated set", off)
			}
			cu = uint64(bo.Uint32(set[p:]))
			p += 4
		}
		asize := int(set[p])
		p += 2 // address size, segment selector size
		if asize != 8 && asize != 4 {
			return out, fmt.Errorf("aranges at %#x: address size %d", off, asize)
		}
		tuple := 2 * asize
		p = (p+hdr+tuple-1)/tuple*tuple - hdr // tuples are aligned from the set's start
		for ; p+tuple <= len(set); p += tuple {
			var a, l uint64
			if asize == 8 {
				a, l = bo.Uint64(set[p:]), bo.Uint64(set[p+8:])
			} else {
				a, l = uint64(bo.Uint32(set[p:])), uint64(bo.Uint32(set[p+4:]))
			}
			if a == 0 && l == 0 {
				break
			}
			if l > 0 {
				out = append(out, cuRange{a, a + l, dwarf.Offset(cu)})
			}
		}
		off = next
	}
	return out, nil
}

// unitFor returns the unit containing pc.
func (b *Binary) unitFor(pc uint64) (dwarf.Offset, bool) {
	i := sort.Search(len(b.cuIndex), func(i int) bool { return b.cuIndex[i].lo > pc }) - 1
	// Ranges are disjoint, but a few units may share a start (empty or COMDAT ranges).
	for k := 0; i >= 0 && k < 8; i, k = i-1, k+1 {
		r := b.cuIndex[i]
		if pc >= r.lo && pc < r.hi {
			return r.off, true
		}
	}
	return 0, false
}

// trimBuildPath shortens an absolute build path to the kernel-relative one a reader
// expects ("/build/…/linux-6.1.192/mm/slub.c" → "mm/slub.c") when it can tell.
func trimBuildPath(p string) string {
	for _, top := range []string{"/arch/", "/block/", "/certs/", "/crypto/", "/drivers/", "/fs/", "/include/",
		"/init/", "/io_uring/", "/ipc/", "/kernel/", "/lib/", "/mm/", "/net/", "/security/", "/sound/", "/virt/"} {
		if i := strings.Index(p, top); i > 0 && strings.Contains(p[:i], "linux") {
			return p[i+1:]
		}
	}
	return p
}
