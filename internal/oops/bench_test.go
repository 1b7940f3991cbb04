package oops

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// cleanConsole returns crash-free console text: the lab's real boot logs up to the
// moment LKDTM fires, repeated to size bytes.
func cleanConsole(tb testing.TB, size int) []byte {
	files, _ := filepath.Glob("testdata/lab/*.serial")
	var base []byte
	for _, f := range files {
		d, err := os.ReadFile(f)
		if err != nil {
			tb.Fatal(err)
		}
		for _, trigger := range []string{"lkdtm: Performing", "sysrq: Trigger"} {
			if i := bytes.Index(d, []byte(trigger)); i > 0 {
				d = d[:bytes.LastIndexByte(d[:i], '\n')+1]
			}
		}
		base = append(base, d...)
	}
	if len(base) == 0 {
		tb.Fatal("no lab samples")
	}
	out := make([]byte, 0, size+len(base))
	for len(out) < size {
		out = append(out, base...)
	}
	return out
}

// TestCleanConsoleHasNoReport guards the benchmark input: boot logs hold no report.
func TestCleanConsoleHasNoReport(t *testing.T) {
	if reps := Parse(cleanConsole(t, 1)); len(reps) != 0 {
		t.Fatalf("crash-free text gave %d reports, first %q", len(reps), reps[0].Title)
	}
}

// BenchmarkCleanConsole: Parse on 32 MB of crash-free console text (issue bar: 500 MB/s
// on one core; run with -cpu 1).
func BenchmarkCleanConsole(b *testing.B) {
	data := cleanConsole(b, 32<<20)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if len(Parse(data)) != 0 {
			b.Fatal("report in clean text")
		}
	}
}

// BenchmarkCorpus: every corpus log found and parsed in full, as one pass (issue bar:
// 50 MB/s on one core; syzkaller's Parse does 2.4 MB/s and allocates 325 MB per pass).
func BenchmarkCorpus(b *testing.B) {
	cases := loadCorpus(b)
	total := 0
	for _, c := range cases {
		total += len(c.log)
	}
	b.SetBytes(int64(total))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for _, c := range cases {
			Parse(c.log)
		}
	}
}

// BenchmarkManyReports: 1 MiB made only of report headers, the worst case for the
// per-report work (it must stay linear in the input).
func BenchmarkManyReports(b *testing.B) {
	line := "BUG: KASAN: use-after-free in f+0x1/0x2\n"
	in := bytes.Repeat([]byte(line), (1<<20)/len(line))
	b.SetBytes(int64(len(in)))
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		Parse(in)
	}
}
