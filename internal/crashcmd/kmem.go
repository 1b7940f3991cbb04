package crashcmd

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/kcrash/kcrash/internal/kernel"
)

func init() {
	register(&Command{Name: "kmem", Synopsis: "memory: kmem -i (summary), kmem -s (slab caches)", Run: runKmem})
}

func runKmem(s *Session, w io.Writer, args []string) error {
	if len(args) != 1 {
		return errors.New("kmem: usage: kmem -i | -s")
	}
	switch args[0] {
	case "-i":
		m, err := s.K.MemInfo(true)
		if err != nil {
			return err
		}
		if s.JSON {
			return json.NewEncoder(w).Encode(m)
		}
		printMemInfo(w, m)
		return nil
	case "-s":
		return runKmemSlab(s, w)
	}
	return fmt.Errorf("kmem: unsupported option %s (kmem -i, kmem -s)", args[0])
}

// pagesSize renders a page count as crash does: 0, KB under 1 MB, MB under 1 GB, else GB.
func pagesSize(pages uint64) string {
	b := pages * 4096
	switch {
	case b == 0:
		return "0"
	case b < 1<<20:
		return fmt.Sprintf("%d KB", b>>10)
	case b < 1<<30:
		return fmt.Sprintf("%.1f MB", float64(b)/(1<<20))
	}
	return fmt.Sprintf("%.1f GB", float64(b)/(1<<30))
}

func printMemInfo(w io.Writer, m *kernel.MemInfo) {
	head := func(name string, n uint64) {
		fmt.Fprintf(w, "%13s  %7d  %11s  %11s\n", name, n, pagesSize(n), "----")
	}
	pct := func(name string, n, of uint64, ofName string) {
		p := uint64(0)
		if of != 0 {
			p = n * 100 / of
		}
		fmt.Fprintf(w, "%13s  %7d  %11s  %3d%% of %s\n", name, n, pagesSize(n), p, ofName)
	}
	fmt.Fprintln(w, "                 PAGES        TOTAL      PERCENTAGE")
	head("TOTAL MEM", m.Total)
	pct("FREE", m.Free, m.Total, "TOTAL MEM")
	pct("USED", m.Total-min(m.Free, m.Total), m.Total, "TOTAL MEM")
	pct("SHARED", m.Shared, m.Total, "TOTAL MEM")
	pct("BUFFERS", m.Buffers, m.Total, "TOTAL MEM")
	pct("CACHED", m.Cached, m.Total, "TOTAL MEM")
	pct("SLAB", m.Slab, m.Total, "TOTAL MEM")
	fmt.Fprintln(w)
	head("TOTAL HUGE", m.HugeTotal)
	pct("HUGE FREE", m.HugeFree, m.HugeTotal, "TOTAL HUGE")
	fmt.Fprintln(w)
	head("TOTAL SWAP", m.SwapTotal)
	pct("SWAP USED", m.SwapTotal-min(m.SwapFree, m.SwapTotal), m.SwapTotal, "TOTAL SWAP")
	pct("SWAP FREE", m.SwapFree, m.SwapTotal, "TOTAL SWAP")
	fmt.Fprintln(w)
	head("COMMIT LIMIT", m.CommitLimit)
	pct("COMMITTED", m.Committed, m.CommitLimit, "TOTAL LIMIT")
}

func runKmemSlab(s *Session, w io.Writer) error {
	caches, err := s.K.SlabCaches()
	if err != nil && caches == nil {
		return err
	}
	if s.JSON {
		return json.NewEncoder(w).Encode(caches)
	}
	fmt.Fprintln(w, "CACHE             OBJSIZE  ALLOCATED     TOTAL  SLABS  SSIZE  NAME")
	for _, c := range caches {
		fmt.Fprintf(w, "%x %8d %10d %9d %6d %6s  %s\n", c.Addr, c.ObjSize, c.Allocated, c.Total, c.Slabs, fmt.Sprintf("%dk", c.SlabSize/1024), c.Name)
	}
	return err
}
