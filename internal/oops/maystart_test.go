package oops

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// TestMayStart: on every line of the corpus and the testdata logs, Detect is never
// true where MayStart is false, and MayStart is false on most lines.
func TestMayStart(t *testing.T) {
	files, _ := filepath.Glob("testdata/*/*")
	more, _ := filepath.Glob("/work/shared/corpus/*/*")
	files = append(files, more...)
	lines, may := 0, 0
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil || len(data) > 4<<20 {
			continue
		}
		for _, l := range bytes.SplitAfter(data, []byte("\n")) {
			lines++
			m := MayStart(l)
			if m {
				may++
			}
			if !m && Detect(l) {
				t.Errorf("%s: Detect true, MayStart false: %q", f, l)
			}
		}
	}
	if lines < 1000 {
		t.Fatalf("only %d lines of test data", lines)
	}
	if may*4 > lines {
		t.Errorf("MayStart true on %d of %d lines: no filter", may, lines)
	}
	t.Logf("%d lines, MayStart on %d", lines, may)
}

func BenchmarkMayStart(b *testing.B) {
	l := []byte("[    5.123000] netdev: eth0: rx ring refilled, 512 buffers, queue 3 of 8 ok\n")
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		MayStart(l)
	}
}
