package kernel

import (
	"encoding/binary"
	"fmt"
	"strconv"
)

// Record is one kernel log record.
type Record struct {
	Seq      uint64
	TsNsec   uint64
	Level    uint8
	Facility uint8
	CallerID uint32
	Text     []byte
}

// maxLogRecords and maxRingBytes bound what a hostile dump can make us read.
const (
	maxLogRecords = 1 << 22
	maxRingBytes  = 1 << 30
)

// layout reads a VMCOREINFO OFFSET(...) or SIZE(...), falling back to DWARF.
func (k *Kernel) layout(kind, name string) (uint64, error) {
	if s, ok := k.Info[kind+"("+name+")"]; ok {
		return strconv.ParseUint(s, 10, 64)
	}
	if kind == "SIZE" {
		n, err := k.Vmlinux.Sizeof(name)
		return uint64(n), err
	}
	typ, member, _ := cut(name, ".")
	off, _, err := k.Vmlinux.MemberOffset(typ, member)
	return uint64(off), err
}

func cut(s, sep string) (string, string, bool) {
	for i := 0; i+len(sep) <= len(s); i++ {
		if s[i:i+len(sep)] == sep {
			return s[:i], s[i+len(sep):], true
		}
	}
	return s, "", false
}

// symbol reads a VMCOREINFO SYMBOL(...) (a runtime address), falling back to the vmlinux.
func (k *Kernel) symbol(name string) (uint64, error) {
	if s, ok := k.Info["SYMBOL("+name+")"]; ok {
		return strconv.ParseUint(s, 16, 64)
	}
	return k.Addr(name)
}

// Log returns the kernel log: the lockless ring buffer of 5.10+ when the
// kernel has `prb`, else the legacy log_buf. With VMCOREINFO it needs no
// DWARF. Cost: one pass over the ring (its size is the kernel's log_buf_len).
func (k *Kernel) Log() ([]Record, error) {
	if _, err := k.symbol("prb"); err == nil {
		return k.lockless()
	}
	return k.legacy()
}

// lockless walks kernel/printk/printk_ringbuffer.h's struct printk_ringbuffer:
// descriptors from tail_id to head_id, keeping committed and finalized ones
// whose id matches, and their text by get_data()'s rules.
func (k *Kernel) lockless() ([]Record, error) {
	var e error
	get := func(kind, name string) uint64 {
		v, err := k.layout(kind, name)
		if err != nil && e == nil {
			e = fmt.Errorf("printk layout %s(%s): %w", kind, name, err)
		}
		return v
	}
	prbPtr, err := k.symbol("prb")
	if err != nil {
		return nil, err
	}
	prb, err := k.U64(prbPtr)
	if err != nil {
		return nil, fmt.Errorf("prb: %w", err)
	}
	descRing := prb + get("OFFSET", "printk_ringbuffer.desc_ring")
	textRing := prb + get("OFFSET", "printk_ringbuffer.text_data_ring")
	countBitsOff := get("OFFSET", "prb_desc_ring.count_bits")
	descsOff := get("OFFSET", "prb_desc_ring.descs")
	infosOff := get("OFFSET", "prb_desc_ring.infos")
	headOff := get("OFFSET", "prb_desc_ring.head_id")
	tailOff := get("OFFSET", "prb_desc_ring.tail_id")
	descSize := get("SIZE", "prb_desc")
	stateOff := get("OFFSET", "prb_desc.state_var")
	lposOff := get("OFFSET", "prb_desc.text_blk_lpos")
	beginOff := get("OFFSET", "prb_data_blk_lpos.begin")
	nextOff := get("OFFSET", "prb_data_blk_lpos.next")
	infoSize := get("SIZE", "printk_info")
	seqOff := get("OFFSET", "printk_info.seq")
	tsOff := get("OFFSET", "printk_info.ts_nsec")
	lenOff := get("OFFSET", "printk_info.text_len")
	callerOff := get("OFFSET", "printk_info.caller_id")
	sizeBitsOff := get("OFFSET", "prb_data_ring.size_bits")
	dataOff := get("OFFSET", "prb_data_ring.data")
	if e != nil {
		return nil, e
	}
	countBits, err1 := k.U32(descRing + countBitsOff)
	descs, err2 := k.U64(descRing + descsOff)
	infos, err3 := k.U64(descRing + infosOff)
	head, err4 := k.U64(descRing + headOff)
	tail, err5 := k.U64(descRing + tailOff)
	sizeBits, err6 := k.U32(textRing + sizeBitsOff)
	data, err7 := k.U64(textRing + dataOff)
	for _, err := range []error{err1, err2, err3, err4, err5, err6, err7} {
		if err != nil {
			return nil, fmt.Errorf("printk ring buffer: %w", err)
		}
	}
	if countBits > 22 || sizeBits > 30 || descSize > 256 || infoSize > 256 || descSize == 0 || infoSize == 0 {
		return nil, fmt.Errorf("printk ring buffer: implausible count_bits %d size_bits %d", countBits, sizeBits)
	}
	ndesc := uint64(1) << countBits
	dataSize := uint64(1) << sizeBits
	// Read the three arrays whole: a few hundred KB for a 128 KB log.
	descBuf := make([]byte, ndesc*descSize)
	infoBuf := make([]byte, ndesc*infoSize)
	ring := make([]byte, dataSize)
	if _, err := k.ReadAt(descBuf, descs); err != nil {
		return nil, fmt.Errorf("printk descriptors: %w", err)
	}
	if _, err := k.ReadAt(infoBuf, infos); err != nil {
		return nil, fmt.Errorf("printk infos: %w", err)
	}
	if _, err := k.ReadAt(ring, data); err != nil {
		return nil, fmt.Errorf("printk text ring: %w", err)
	}
	le := binary.LittleEndian
	const (
		idMask     = ^uint64(0) >> 2 // DESC_ID_MASK: state in the top 2 bits
		committed  = 1
		finalized  = 2
		lposNoData = 0x1 // LPOS_DATALESS: the low bit of begin marks data-less blocks
	)
	var recs []Record
	for id := tail & idMask; len(recs) < maxLogRecords; id = (id + 1) & idMask {
		idx := id & (ndesc - 1)
		d := descBuf[idx*descSize:]
		sv := le.Uint64(d[stateOff:])
		state := sv >> 62
		if sv&idMask == id && (state == committed || state == finalized) {
			in := infoBuf[idx*infoSize:]
			r := Record{
				Seq:      le.Uint64(in[seqOff:]),
				TsNsec:   le.Uint64(in[tsOff:]),
				CallerID: le.Uint32(in[callerOff:]),
			}
			// struct printk_info: u8 facility; u8 flags:5; u8 level:3 follow text_len.
			r.Facility = in[lenOff+2]
			r.Level = in[lenOff+3] >> 5
			textLen := uint64(le.Uint16(in[lenOff:]))
			begin := le.Uint64(d[lposOff+beginOff:])
			next := le.Uint64(d[lposOff+nextOff:])
			if begin&lposNoData == 0 && next&lposNoData == 0 {
				var blk []byte
				bi, ni := begin&(dataSize-1), next&(dataSize-1)
				switch {
				case begin>>sizeBits == next>>sizeBits && next >= begin:
					blk = ring[bi : bi+(next-begin)]
				case begin>>sizeBits+1 == next>>sizeBits:
					blk = ring[:ni] // wrapped: the block restarts at the ring's start
				}
				if len(blk) >= 8 {
					blk = blk[8:] // the block's unsigned long id
					r.Text = blk[:min(textLen, uint64(len(blk)))]
				}
			}
			recs = append(recs, r)
		}
		if id == head&idMask {
			break
		}
	}
	return recs, nil
}

// legacy reads the log_buf of 3.5 to 5.9 (kernel/printk/printk.c: struct
// printk_log {u64 ts_nsec; u16 len, text_len, dict_len; u8 facility; u8
// flags:5, level:3; [u32 caller_id]}), from log_first_idx to log_next_idx; a
// record of len 0 means the writer wrapped to the buffer's start.
func (k *Kernel) legacy() ([]Record, error) {
	bufPtr, err := k.symbol("log_buf")
	if err != nil {
		return nil, fmt.Errorf("neither prb nor log_buf: %w", err)
	}
	buf, err := k.U64(bufPtr)
	if err != nil {
		return nil, err
	}
	lenAddr, err := k.symbol("log_buf_len")
	if err != nil {
		return nil, err
	}
	n, err := k.U32(lenAddr)
	if err != nil {
		return nil, err
	}
	if n == 0 || n > maxRingBytes {
		return nil, fmt.Errorf("log_buf_len %d", n)
	}
	first, err1 := k.symbol("log_first_idx")
	next, err2 := k.symbol("log_next_idx")
	if err1 != nil || err2 != nil {
		return nil, fmt.Errorf("log_first_idx/log_next_idx: %v %v", err1, err2)
	}
	fi, _ := k.U32(first)
	ni, _ := k.U32(next)
	ring := make([]byte, n)
	if _, err := k.ReadAt(ring, buf); err != nil {
		return nil, err
	}
	hdrSize, err := k.layout("SIZE", "printk_log")
	if err != nil {
		return nil, err
	}
	tsOff, _ := k.layout("OFFSET", "printk_log.ts_nsec")
	lenOff, _ := k.layout("OFFSET", "printk_log.len")
	textLenOff, err := k.layout("OFFSET", "printk_log.text_len")
	if err != nil {
		return nil, err
	}
	return parseLegacy(ring, fi, ni, hdrSize, tsOff, lenOff, textLenOff), nil
}

// parseLegacy decodes legacy printk_log records from ring, first to next.
func parseLegacy(ring []byte, first, next uint32, hdrSize, tsOff, lenOff, textLenOff uint64) []Record {
	le := binary.LittleEndian
	var recs []Record
	idx := uint64(first)
	for steps := 0; idx != uint64(next) && steps < maxLogRecords; steps++ {
		if idx+hdrSize > uint64(len(ring)) {
			idx = 0
			continue
		}
		h := ring[idx:]
		l := uint64(le.Uint16(h[lenOff:]))
		if l == 0 {
			idx = 0
			continue
		}
		tl := uint64(le.Uint16(h[textLenOff:]))
		r := Record{Seq: uint64(len(recs)), TsNsec: le.Uint64(h[tsOff:])}
		r.Facility = h[textLenOff+4]
		r.Level = h[textLenOff+5] >> 5
		if idx+hdrSize+tl <= uint64(len(ring)) {
			r.Text = ring[idx+hdrSize : idx+hdrSize+tl]
		}
		recs = append(recs, r)
		idx += l
		if l < hdrSize || idx > uint64(len(ring)) {
			break
		}
	}
	return recs
}
