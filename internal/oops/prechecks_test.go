package oops

import (
	"bytes"
	"math/rand"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// The hand-written prechecks and matchers that stand in for a regexp on hot paths must
// agree with the regexp exactly: on every corpus and wild line, and on random lines
// built from the bytes the patterns care about.
func TestPrechecksAgreeWithRegexps(t *testing.T) {
	lines := loadCorpusLines(t)
	rng := rand.New(rand.NewSource(1))
	pieces := []string{"[", "]", " ", "  ", ".", "0", "12", "3.4", "kernel:", " kernel: ", "\t", ":", " :",
		"RAX", "RCX", "EFLAGS", "ORIG_RAX", "x1", "x10", "knlGS", "CR2", "eax", "esp", "FS", "at 0x", "ffff",
		"[3.4]", "[  12.345678]", "[1.]", "[.5]", "[ .]", "[1.2.3]", "[a.1]", "[ .5]", "[ 5.]", "[  1 .2]",
		"[CT1]", "[C12]", "[ T3]", "[T]", "Nov 22 01:47:00", "2025-11-25T02:05:51.266920+00:00", "host", " * ",
		"[Mon Nov 22 01:47:00 2021]", "[Tue", "\r", "\f", "\v", "x1 ", "x123", "ES", "SS", "HS", "edx", "ebp", "eip", "Eax", "R1", "CR", "DR7", "ORIG_RA", "R1x", "executing program 0", "12:34:56", "<4>", "systemd[1]:",
		"Use-after-free", "Out-of-bounds", "Invalid", "Invalid free", "Corrupted memory", "read", "write", "a", "Z"}
	for i := 0; i < 200000; i++ {
		var b strings.Builder
		for n := rng.Intn(8); n >= 0; n-- {
			b.WriteString(pieces[rng.Intn(len(pieces))])
		}
		lines = append(lines, b.String())
	}
	for _, l := range lines {
		if got, want := isKFENCEAccess(l), kfenceAccess.MatchString(l); got != want {
			t.Fatalf("isKFENCEAccess(%q) = %v, regexp says %v", l, got, want)
		}
		if len(l) > 2 && l[len(l)-1] == ':' {
			if got, want := danglingRegAt([]byte(l)), danglingReg.MatchString(l); got != want {
				t.Fatalf("danglingRegAt(%q) = %v, regexp says %v", l, got, want)
			}
		}
		if m := tsGlued.FindStringSubmatchIndex(l); m != nil {
			if got, ok := tsGluedIndex(l); !ok || got != [4]int(m) {
				t.Fatalf("tsGluedIndex(%q) = %v %v, regexp says %v", l, got, ok, m)
			}
		} else if got, ok := tsGluedIndex(l); ok {
			t.Fatalf("tsGluedIndex(%q) = %v, regexp does not match", l, got)
		}
		if got, want := loosePrefixIndex(l), loosePrefix.FindStringIndex(l); !slices.Equal(got, want) {
			t.Fatalf("loosePrefixIndex(%q) = %v, regexp says %v", l, got, want)
		}
		// stripTransport's literal prechecks must hold wherever their regexp matches.
		if commentLeader.MatchString(l) && !strings.Contains(l, "* [") {
			t.Fatalf("commentLeader matches %q without \"* [\"", l)
		}
		if dmesgT.MatchString(l) && !(len(l) > 1 && l[0] == '[' && l[1] >= 'A' && l[1] <= 'Z') {
			t.Fatalf("dmesgT matches %q", l)
		}
		if monoKernel.MatchString(l) && !(len(l) > 0 && l[0] == '[' && strings.Contains(l, "] kernel:")) {
			t.Fatalf("monoKernel matches %q", l)
		}
		for _, text := range []string{l, "x\n" + l, l + "\nx"} {
			if got, want := kernelPrefixes([]byte(text)), monoKernelAny.MatchString(text) || kernelPrefixesLoose([]byte(text)); got != want {
				t.Fatalf("kernelPrefixes(%q) = %v, want %v", text, got, want)
			}
		}
	}
}

// kernelPrefixesLoose is the loosePrefix half of kernelPrefixes, as it was written.
func kernelPrefixesLoose(text []byte) bool {
	for from := 0; ; {
		i := bytes.Index(text[from:], []byte("kernel:"))
		if i < 0 {
			return false
		}
		at := from + i
		ls := bytes.LastIndexByte(text[:at], '\n') + 1
		if at-ls < 80 && loosePrefix.Match(text[ls:lineEnd(text, at)]) {
			if loc := loosePrefix.FindIndex(text[ls:lineEnd(text, at)]); loc != nil && ls+loc[1] > at {
				return true
			}
		}
		from = at + 7
	}
}

// loadCorpusLines returns the lines of the syzkaller corpus (when present) and of the
// test data.
func loadCorpusLines(t *testing.T) []string {
	var files []string
	for _, g := range []string{filepath.Join(corpusDir(), "*"), "testdata/*/*", "testdata/*"} {
		fs, _ := filepath.Glob(g)
		files = append(files, fs...)
	}
	var out []string
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			continue // a directory
		}
		out = append(out, strings.Split(string(data), "\n")...)
	}
	if len(out) == 0 {
		t.Fatal("no test data")
	}
	return out
}
