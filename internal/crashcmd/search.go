package crashcmd

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
)

func init() {
	register(&Command{Name: "search", Synopsis: "find a 64-bit value in kernel memory (the direct map of every page in the dump): search [-c MAX] VALUE", Run: runSearch})
}

// SearchHit is one place search found the value.
type SearchHit struct {
	Addr uint64 `json:"addr"` // direct-map virtual address
	Phys uint64 `json:"phys"`
}

// defaultSearchMax bounds the hits search reports unless -c says otherwise.
const defaultSearchMax = 1000

// Search scans every physical page of the dump's memory ranges (pages the
// dump excludes are skipped) for the 8-byte-aligned little-endian value,
// and reports each hit at its direct-map address (page_offset_base + phys).
// It stops after max hits and says whether it did.
func (s *Session) Search(value uint64, max int) ([]SearchHit, bool, error) {
	k := s.K
	base, err := k.SymU64("page_offset_base")
	if err != nil {
		return nil, false, err
	}
	var hits []SearchHit
	page := make([]byte, 4096)
	for _, r := range k.Dump.Ranges() {
		for pa := r[0] &^ 4095; pa < r[1]; pa += 4096 {
			if _, err := k.Dump.ReadAt(page, pa); err != nil {
				continue
			}
			for off := 0; off+8 <= len(page); off += 8 {
				if binary.LittleEndian.Uint64(page[off:]) == value {
					hits = append(hits, SearchHit{Addr: base + pa + uint64(off), Phys: pa + uint64(off)})
					if len(hits) >= max {
						return hits, true, nil
					}
				}
			}
		}
	}
	return hits, false, nil
}

func runSearch(s *Session, w io.Writer, args []string) error {
	max := defaultSearchMax
	if len(args) == 3 && args[0] == "-c" {
		n, err := strconv.Atoi(args[1])
		if err != nil || n <= 0 {
			return fmt.Errorf("search: -c %q: not a positive count", args[1])
		}
		max, args = n, args[2:]
	}
	if len(args) != 1 {
		return errors.New("search: usage: search [-c MAX] VALUE")
	}
	v, err := s.addrOrSymbol(args[0])
	if err != nil {
		return err
	}
	hits, capped, err := s.Search(v, max)
	if err != nil {
		return err
	}
	if s.JSON {
		return json.NewEncoder(w).Encode(struct {
			Hits   []SearchHit `json:"hits"`
			Capped bool        `json:"capped"`
		}{hits, capped})
	}
	for _, h := range hits {
		fmt.Fprintf(w, "%x: %x\n", h.Addr, v)
	}
	if capped {
		fmt.Fprintf(w, "search: stopped after %d hits (-c MAX for more)\n", max)
	}
	return nil
}
