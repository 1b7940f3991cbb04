package dump

import (
	"encoding/binary"
	"fmt"
	"io"
	"sort"
)

// The flattened format (makedumpfile/makedumpfile.h: struct makedumpfile_header,
// struct makedumpfile_data_header; written by `makedumpfile -F` and by QEMU's
// kdump-* dump-guest-memory formats): a 4096-byte header, then records of a
// big-endian {int64 offset, int64 size} followed by size bytes meant for that
// offset of the seekable file; offset = size = -1 ends the stream.
const (
	flatHeaderSize = 4096
	flatRecordHdr  = 16
)

// flatRecord maps [off, off+size) of the seekable file to data at pos in the flattened one.
type flatRecord struct {
	off, size, pos int64
}

// flatReader reads the flattened file as the seekable file it stands for,
// in place, through an index of its records built once.
type flatReader struct {
	r    io.ReaderAt
	recs []flatRecord // sorted by off, non-overlapping
	size int64        // the seekable file's size
	data int64        // the bytes records carry (the rest of size reads as zero)
}

// backed is how many bytes of the seekable file the stream really holds: what a
// header may make a reader allocate. A few records far apart make size as large
// as 2^50 from a file of kilobytes.
func (f *flatReader) backed() int64 { return f.data }

func openFlat(r io.ReaderAt, size int64) (*Dump, error) {
	var h [32]byte
	if readFull(r, h[:], 0) != nil || string(h[:12]) != "makedumpfile" || h[12] != 0 {
		return nil, errNotThis
	}
	be := binary.BigEndian
	if t, v := be.Uint64(h[16:]), be.Uint64(h[24:]); t != 1 || v != 1 {
		return nil, fmt.Errorf("flattened dump: type %d version %d, want 1 and 1", t, v)
	}
	fr, truncated, err := indexFlat(r, size)
	if err != nil {
		return nil, err
	}
	var sig [8]byte
	if readFull(fr, sig[:], 0) != nil || (string(sig[:]) != "KDUMP   " && string(sig[:]) != "DISKDUMP") {
		return nil, fmt.Errorf("flattened dump: the reassembled file is not kdump-compressed")
	}
	d, err := newKdump(fr, fr.size, truncated)
	if err != nil {
		return nil, fmt.Errorf("flattened %w", err)
	}
	d.format = FormatKdumpFlat
	return d, nil
}

// indexFlat reads every record header once. Later records overwrite earlier ones
// where they overlap, as writing them to a seekable file would. A stream without
// its end marker is indexed up to the last whole record and reported truncated.
func indexFlat(r io.ReaderAt, size int64) (*flatReader, bool, error) {
	be := binary.BigEndian
	var recs []flatRecord
	pos := int64(flatHeaderSize)
	overlap, truncated := false, false
	var end, data int64
	for {
		var hb [flatRecordHdr]byte
		if readFull(r, hb[:], pos) != nil {
			truncated = true
			break
		}
		off, n := int64(be.Uint64(hb[:])), int64(be.Uint64(hb[8:]))
		if off == -1 && n == -1 {
			break
		}
		pos += flatRecordHdr
		if off < 0 || n < 0 || n > size-pos || off > 1<<50 {
			if n > size-pos && off >= 0 && n >= 0 {
				truncated = true
				break
			}
			return nil, false, fmt.Errorf("flattened dump: record at %#x: offset %d size %d", pos-flatRecordHdr, off, n)
		}
		if n > 0 {
			if len(recs) > 0 && off < end {
				overlap = true
			}
			recs = append(recs, flatRecord{off: off, size: n, pos: pos})
			end = max(end, off+n)
			data += n
		}
		pos += n
	}
	fr := &flatReader{r: r, size: end, data: data}
	if overlap {
		fr.recs = resolveOverlaps(recs)
	} else {
		fr.recs = recs
	}
	return fr, truncated, nil
}

// resolveOverlaps keeps, for each byte, the last record that wrote it. Cost:
// O(n log n) plus the pieces split off.
func resolveOverlaps(recs []flatRecord) []flatRecord {
	type ev struct {
		flatRecord
		seq int
	}
	es := make([]ev, len(recs))
	for i, r := range recs {
		es[i] = ev{r, i}
	}
	sort.SliceStable(es, func(i, j int) bool { return es[i].off < es[j].off })
	// Sweep by offset, keeping the active records; the newest active one wins.
	var out []flatRecord
	var active []ev
	cur := int64(0)
	emit := func(to int64) {
		if to <= cur || len(active) == 0 {
			return
		}
		best := active[0]
		for _, a := range active[1:] {
			if a.seq > best.seq {
				best = a
			}
		}
		out = append(out, flatRecord{off: cur, size: to - cur, pos: best.pos + (cur - best.off)})
	}
	i := 0
	for i < len(es) || len(active) > 0 {
		next := int64(1 << 62)
		if i < len(es) {
			next = es[i].off
		}
		for _, a := range active {
			next = min(next, a.off+a.size)
		}
		emit(next)
		cur = next
		kept := active[:0]
		for _, a := range active {
			if a.off+a.size > cur {
				kept = append(kept, a)
			}
		}
		active = kept
		for i < len(es) && es[i].off == cur {
			active = append(active, es[i])
			i++
		}
	}
	return out
}

// ReadAt reads the seekable file's bytes at off. Bytes no record wrote read as zero,
// as in the sparse file makedumpfile -R would make.
func (f *flatReader) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("flattened dump: negative offset")
	}
	if off >= f.size {
		return 0, io.EOF
	}
	want := len(p)
	if int64(want) > f.size-off {
		p = p[:f.size-off]
	}
	clear(p)
	i := sort.Search(len(f.recs), func(i int) bool { return f.recs[i].off+f.recs[i].size > off })
	for ; i < len(f.recs) && f.recs[i].off < off+int64(len(p)); i++ {
		rc := f.recs[i]
		lo, hi := max(off, rc.off), min(off+int64(len(p)), rc.off+rc.size)
		if err := readFull(f.r, p[lo-off:hi-off], rc.pos+(lo-rc.off)); err != nil {
			return 0, err
		}
	}
	if len(p) < want {
		return len(p), io.EOF
	}
	return len(p), nil
}
