package dump

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"sort"
)

// Segment is one PT_LOAD program header of an ELF vmcore (include/uapi/linux/elf.h:
// Elf64_Phdr). QEMU's physical-only dumps leave Vaddr zero.
type Segment struct {
	Vaddr, Paddr  uint64
	Offset        uint64
	Filesz, Memsz uint64
}

// ELF constants (include/uapi/linux/elf.h).
const (
	ptLoad      = 1
	ptNote      = 4
	pnXNum      = 0xffff
	emX86_64    = 62
	emAArch64   = 183
	ehdrSize    = 64
	phdrSize    = 56
	shdrSize    = 64
	maxSegments = 1 << 20
	// elfIncomplete is makedumpfile's e_flags mark of an ELF dump cut short
	// (makedumpfile.h: DUMP_ELF_INCOMPLETE).
	elfIncomplete = 0x1
)

// elfPiece maps [start, end) of physical memory: file bytes up to fileEnd, then
// bytes excluded from the dump up to end.
type elfPiece struct {
	start, fileEnd, end uint64
	off                 uint64
}

type elfMem struct {
	r      io.ReaderAt
	pieces []elfPiece // sorted, non-overlapping
}

func openELF(r io.ReaderAt, size int64) (*Dump, error) {
	var eh [ehdrSize]byte
	if err := readFull(r, eh[:], 0); err != nil || !bytes.Equal(eh[:4], []byte("\x7fELF")) {
		return nil, errNotThis
	}
	if eh[4] != 2 || eh[5] != 1 {
		return nil, fmt.Errorf("ELF dump: only 64-bit little-endian dumps are supported (class %d, data %d)", eh[4], eh[5])
	}
	le := binary.LittleEndian
	machine := ""
	switch m := le.Uint16(eh[18:]); m {
	case emX86_64:
		machine = MachineX86_64
	case emAArch64:
		machine = MachineAArch64
	default:
		return nil, fmt.Errorf("ELF dump: machine %d, only x86-64 (62) and AArch64 (183) are supported", m)
	}
	phoff, shoff := le.Uint64(eh[32:]), le.Uint64(eh[40:])
	flags := le.Uint32(eh[48:])
	phentsize, phnum := le.Uint16(eh[54:]), uint64(le.Uint16(eh[56:]))
	if phentsize != phdrSize {
		return nil, fmt.Errorf("ELF dump: program header size %d, want %d", phentsize, phdrSize)
	}
	if phnum == pnXNum {
		// Too many segments for e_phnum: the count is section header 0's sh_info.
		var sh [shdrSize]byte
		if shoff == 0 || shoff > uint64(size) || readFull(r, sh[:], int64(shoff)) != nil {
			return nil, fmt.Errorf("ELF dump: PN_XNUM without a readable section header 0")
		}
		phnum = uint64(le.Uint32(sh[44:]))
	}
	if phnum > maxSegments || phoff > uint64(size) || phnum*phdrSize > uint64(size)-phoff {
		return nil, fmt.Errorf("ELF dump: %d program headers at %#x do not fit the %d-byte file", phnum, phoff, size)
	}
	ph := make([]byte, phnum*phdrSize)
	if err := readFull(r, ph, int64(phoff)); err != nil {
		return nil, fmt.Errorf("ELF dump: program headers: %w", err)
	}
	d := &Dump{format: FormatELF, incomplete: flags&elfIncomplete != 0, machine: machine}
	m := &elfMem{r: r}
	var notes []byte
	for i := uint64(0); i < phnum; i++ {
		p := ph[i*phdrSize:]
		typ := le.Uint32(p)
		s := Segment{Offset: le.Uint64(p[8:]), Vaddr: le.Uint64(p[16:]), Paddr: le.Uint64(p[24:]), Filesz: le.Uint64(p[32:]), Memsz: le.Uint64(p[40:])}
		if s.Offset > uint64(size) || s.Filesz > uint64(size)-s.Offset {
			if typ == ptLoad && d.incomplete {
				// Cut short: keep what the file holds, the rest reads as incomplete.
				s.Filesz = 0
				if s.Offset <= uint64(size) {
					s.Filesz = uint64(size) - s.Offset
				}
			} else if typ == ptLoad || typ == ptNote {
				return nil, fmt.Errorf("ELF dump: segment %d (%d bytes at %#x) overruns the %d-byte file", i, s.Filesz, s.Offset, size)
			}
		}
		switch typ {
		case ptNote:
			if uint64(len(notes))+s.Filesz > maxNotes {
				return nil, fmt.Errorf("ELF dump: notes larger than %d bytes", maxNotes)
			}
			b := make([]byte, s.Filesz)
			if err := readFull(r, b, int64(s.Offset)); err != nil {
				return nil, fmt.Errorf("ELF dump: note segment %d: %w", i, err)
			}
			notes = append(notes, b...)
		case ptLoad:
			if s.Memsz < s.Filesz {
				s.Memsz = s.Filesz
			}
			if s.Paddr+s.Memsz < s.Paddr {
				return nil, fmt.Errorf("ELF dump: segment %d wraps the address space", i)
			}
			d.Segments = append(d.Segments, s)
		}
	}
	if err := parseNotes(d, notes); err != nil {
		return nil, fmt.Errorf("ELF dump: %w", err)
	}
	m.pieces = elfPieces(d.Segments)
	d.mem = m
	return d, nil
}

// elfPieces builds the sorted, non-overlapping physical index. QEMU's paging
// dumps map one physical page at several virtual addresses; the first segment
// that covers a byte wins.
func elfPieces(segs []Segment) []elfPiece {
	ps := make([]elfPiece, 0, len(segs))
	for _, s := range segs {
		if s.Memsz == 0 {
			continue
		}
		ps = append(ps, elfPiece{start: s.Paddr, fileEnd: s.Paddr + s.Filesz, end: s.Paddr + s.Memsz, off: s.Offset})
	}
	sort.SliceStable(ps, func(i, j int) bool { return ps[i].start < ps[j].start })
	out := ps[:0]
	var covered uint64
	for i, p := range ps {
		if i > 0 && p.end <= covered {
			continue
		}
		if i > 0 && p.start < covered {
			cut := covered - p.start
			p.start = covered
			p.off += cut
			if p.fileEnd < p.start {
				p.fileEnd = p.start
			}
		}
		out = append(out, p)
		covered = p.end
	}
	return out
}

func (m *elfMem) find(addr uint64) int {
	i := sort.Search(len(m.pieces), func(i int) bool { return m.pieces[i].end > addr })
	if i < len(m.pieces) && m.pieces[i].start <= addr {
		return i
	}
	return -1
}

func (m *elfMem) readPhys(p []byte, addr uint64) error {
	for len(p) > 0 {
		i := m.find(addr)
		if i < 0 {
			return fmt.Errorf("physical address %#x: %w", addr, ErrNotInDump)
		}
		pc := m.pieces[i]
		if addr >= pc.fileEnd {
			return fmt.Errorf("physical address %#x: %w", addr, ErrExcluded)
		}
		n := min(uint64(len(p)), pc.fileEnd-addr)
		if err := readFull(m.r, p[:n], int64(pc.off+(addr-pc.start))); err != nil {
			return fmt.Errorf("physical address %#x: %w: %v", addr, ErrIncomplete, err)
		}
		p, addr = p[n:], addr+n
	}
	return nil
}

func (m *elfMem) ranges() [][2]uint64 {
	out := make([][2]uint64, 0, len(m.pieces))
	for _, p := range m.pieces {
		if n := len(out); n > 0 && out[n-1][1] == p.start {
			out[n-1][1] = p.end
			continue
		}
		out = append(out, [2]uint64{p.start, p.end})
	}
	return out
}
