package oops

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// corpusDir holds syzkaller's real console logs with their expected results
// (Apache-2.0, testdata/syzkaller/LICENSE). KCRASH_CORPUS overrides it; the workplace's
// shared corpus, when present, is preferred to the copy in testdata.
func corpusDir() string {
	if d := os.Getenv("KCRASH_CORPUS"); d != "" {
		return d
	}
	if _, err := os.Stat("../../../shared/corpus/syzkaller/report"); err == nil {
		return "../../../shared/corpus/syzkaller/report"
	}
	return "testdata/syzkaller/report"
}

var verbose = flag.Bool("corpus.v", false, "print every corpus disagreement")

type corpusCase struct {
	name      string
	title     string
	alts      []string
	typ       string
	corrupted bool
	log       []byte
}

func loadCorpus(t testing.TB) []corpusCase {
	dir := corpusDir()
	files, err := filepath.Glob(filepath.Join(dir, "*"))
	if err != nil || len(files) == 0 {
		if os.Getenv("CI") == "true" {
			t.Fatalf("corpus not found in %s", dir)
		}
		t.Skipf("corpus not found in %s (set KCRASH_CORPUS)", dir)
	}
	var cases []corpusCase
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		data = bytes.ReplaceAll(data, []byte{'\r'}, nil)
		c := corpusCase{name: filepath.Base(f)}
		s := bufio.NewScanner(bytes.NewReader(data))
		s.Buffer(nil, 1<<24)
		header := true
		prevEmpty := false
		var log bytes.Buffer
		for s.Scan() {
			ln := s.Text()
			if header {
				switch {
				case ln == "":
					header = false
				case strings.HasPrefix(ln, "TITLE: "):
					c.title = ln[len("TITLE: "):]
				case strings.HasPrefix(ln, "ALT: "):
					c.alts = append(c.alts, ln[len("ALT: "):])
				case strings.HasPrefix(ln, "TYPE: "):
					c.typ = ln[len("TYPE: "):]
				case ln == "CORRUPTED: Y":
					c.corrupted = true
				}
				continue
			}
			if prevEmpty && ln == "REPORT:" {
				break
			}
			prevEmpty = ln == ""
			log.WriteString(ln)
			log.WriteByte('\n')
		}
		c.log = log.Bytes()
		cases = append(cases, c)
	}
	return cases
}

// fuzzerSpecific are corpus cases about syzkaller's own executor and tooling rather than
// the kernel; kcrash need not title them like syzkaller.
func fuzzerSpecific(c corpusCase) bool {
	return strings.HasPrefix(c.title, "SYZFAIL") || strings.HasPrefix(c.title, "SYZFATAL") ||
		strings.Contains(c.title, "syz-executor") && strings.HasPrefix(c.title, "panic:")
}

// TestCorpus compares the first report of every corpus log with syzkaller's expected
// title, alternative titles, type and corrupted flag, prints the agreement, and fails
// below the bars: 95% of titles on crash-bearing cases, and no report at all on the
// crash-free ones.
func TestCorpus(t *testing.T) {
	cases := loadCorpus(t)
	var crashes, titleOK, altOK, typeOK, corrOK, clean, falsePos, missed int
	var excepted []string
	var diffs []string
	for _, c := range cases {
		reps := Parse(c.log)
		if c.title == "" {
			clean++
			if len(reps) > 0 {
				falsePos++
				diffs = append(diffs, fmt.Sprintf("%s: false positive %q", c.name, reps[0].Title))
			}
			continue
		}
		if fuzzerSpecific(c) {
			excepted = append(excepted, c.name+" ("+c.title+")")
			continue
		}
		crashes++
		if len(reps) == 0 {
			missed++
			diffs = append(diffs, fmt.Sprintf("%s: missed %q", c.name, c.title))
			continue
		}
		r := reps[0]
		if r.Title == c.title {
			titleOK++
		} else {
			diffs = append(diffs, fmt.Sprintf("%s: title %q, want %q", c.name, r.Title, c.title))
		}
		if sameSet(r.AltTitles, c.alts) {
			altOK++
		} else if *verbose {
			diffs = append(diffs, fmt.Sprintf("%s: alts %q, want %q", c.name, r.AltTitles, c.alts))
		}
		if r.Type == c.typ {
			typeOK++
		} else if *verbose {
			diffs = append(diffs, fmt.Sprintf("%s: type %q, want %q", c.name, r.Type, c.typ))
		}
		if r.Corrupted == c.corrupted {
			corrOK++
		} else if *verbose {
			diffs = append(diffs, fmt.Sprintf("%s: corrupted %v (%s), want %v", c.name, r.Corrupted, r.CorruptedReason, c.corrupted))
		}
	}
	sort.Strings(diffs)
	for _, d := range diffs {
		t.Log(d)
	}
	pct := func(n int) float64 { return 100 * float64(n) / float64(crashes) }
	t.Logf("corpus: %d logs, %d crash-bearing (%d fuzzer-specific excepted: %s), %d crash-free",
		len(cases), crashes, len(excepted), strings.Join(excepted, ", "), clean)
	t.Logf("agreement with syzkaller: title %.1f%% (%d/%d), alt titles %.1f%%, type %.1f%%, corrupted %.1f%%; missed %d; false positives %d/%d",
		pct(titleOK), titleOK, crashes, pct(altOK), pct(typeOK), pct(corrOK), missed, falsePos, clean)
	fmt.Printf("corpus agreement: title %.1f%% (%d/%d) alt %.1f%% type %.1f%% corrupted %.1f%% missed %d false-positives %d/%d\n",
		pct(titleOK), titleOK, crashes, pct(altOK), pct(typeOK), pct(corrOK), missed, falsePos, clean)
	if pct(titleOK) < 95 {
		t.Errorf("title agreement %.1f%% is below the 95%% bar", pct(titleOK))
	}
	if falsePos > 0 {
		t.Errorf("%d false positives on crash-free logs", falsePos)
	}
}

func sameSet(a, b []string) bool {
	m := map[string]bool{}
	for _, s := range a {
		m[s] = true
	}
	n := map[string]bool{}
	for _, s := range b {
		n[s] = true
		if !m[s] {
			return false
		}
	}
	return len(m) == len(n)
}
