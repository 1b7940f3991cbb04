package oops

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// wildFacts is testdata/wild/NAME.json: facts a kernel engineer read by eye from a
// report as it was posted (see testdata/wild/README.md).
type wildFacts struct {
	Source  string  `json:"source"`
	Arch    *string `json:"arch"`
	Reports []struct {
		Kind        Kind     `json:"kind"`
		Function    *string  `json:"function"`
		Module      *string  `json:"module"`
		FirstFrames []string `json:"first_frames"`
		CodeTrap    *string  `json:"code_trap"`
	} `json:"reports"`
}

// wildFact is one checked fact of the wild corpus.
type wildFact struct {
	name     string
	ok, seen int
	misses   []string
}

func (f *wildFact) check(ok bool, where, got, want string) {
	f.seen++
	if ok {
		f.ok++
		return
	}
	f.misses = append(f.misses, fmt.Sprintf("%s: %s %s, want %s", where, f.name, got, want))
}

func (f *wildFact) pct() float64 {
	if f.seen == 0 {
		return 100
	}
	return 100 * float64(f.ok) / float64(f.seen)
}

// reliableFuncs returns the first n reliable frame functions of r.
func reliableFuncs(r *Report, n int) []string {
	var out []string
	for _, f := range r.Frames {
		if f.Reliable && f.Func != "" && len(out) < n {
			out = append(out, f.Func)
		}
	}
	return out
}

// trapHex prints the marked Code unit as the kernel printed it.
func trapHex(c *Code) string {
	if c == nil || c.Trap < 0 || c.Trap+c.TrapLen > len(c.Bytes) {
		return "null"
	}
	b := c.Bytes[c.Trap : c.Trap+c.TrapLen]
	if c.TrapLen == 4 { // arm64 words are stored little-endian
		return fmt.Sprintf("%02x%02x%02x%02x", b[3], b[2], b[1], b[0])
	}
	return fmt.Sprintf("%x", b)
}

func strOrNull(p *string) string {
	if p == nil {
		return "null"
	}
	return *p
}

// matchReports pairs expected reports with found ones, in order: each expected report
// takes the next found report of its kind within a short window, else the next found
// report when enough are left. It returns, per expected report, the index found (-1 if
// none) and the number of found reports left unpaired.
func matchReports(wantKinds []Kind, got []*Report) ([]int, int) {
	idx := make([]int, len(wantKinds))
	j := 0
	used := 0
	for i, k := range wantKinds {
		idx[i] = -1
		for m := j; m < len(got) && m < j+3; m++ {
			if sameKind(got[m].Kind, k) {
				idx[i], j = m, m+1
				break
			}
		}
		if idx[i] < 0 && len(got)-j >= len(wantKinds)-i && j < len(got) {
			idx[i], j = j, j+1
		}
		if idx[i] >= 0 {
			used++
		}
	}
	return idx, len(got) - used
}

// refines lists kinds kcrash splits finer than a reader by eye: a refcount_t WARNING
// is a warning (the lab's REFCOUNT_INC_OVERFLOW pins kcrash's finer kind).
var refines = map[Kind]Kind{KindRefcount: KindWarning}

func sameKind(got, want Kind) bool { return got == want || refines[got] == want }

// TestWild checks the parser against real reports as they were posted (mail, forums,
// bug trackers), fact by fact, prints the agreement per fact and fails below 95% on any.
func TestWild(t *testing.T) {
	files, _ := filepath.Glob("testdata/wild/*.json")
	if len(files) == 0 {
		t.Fatal("no wild corpus in testdata/wild")
	}
	facts := []*wildFact{{name: "found"}, {name: "kind"}, {name: "function"}, {name: "module"},
		{name: "first_frames"}, {name: "code_trap"}, {name: "arch"}}
	found, kind, function, module, frames, trap, arch := facts[0], facts[1], facts[2], facts[3], facts[4], facts[5], facts[6]
	for _, jf := range files {
		name := strings.TrimSuffix(filepath.Base(jf), ".json")
		var want wildFacts
		data, err := os.ReadFile(jf)
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(data, &want); err != nil {
			t.Fatalf("%s: %v", jf, err)
		}
		log, err := os.ReadFile(strings.TrimSuffix(jf, ".json") + ".log")
		if err != nil {
			t.Fatal(err)
		}
		got := Parse(log)
		var kinds []Kind
		for _, w := range want.Reports {
			kinds = append(kinds, w.Kind)
		}
		idx, extra := matchReports(kinds, got)
		for e := 0; e < extra; e++ {
			found.check(false, name, "extra report", "none")
		}
		folded := map[int]bool{}
		for i, w := range want.Reports {
			where := fmt.Sprintf("%s#%d", name, i+1)
			if idx[i] < 0 && w.Kind == KindPanic && w.Function == nil {
				// kcrash folds a panic that ends a report into that report (Panicked,
				// PanicMsg; the lab goldens pin this): the earlier report stands for it,
				// and the panic's own trace is not compared.
				k := i - 1
				for k >= 0 && (idx[k] < 0 || !got[idx[k]].Panicked || folded[idx[k]]) {
					k--
				}
				if k >= 0 {
					folded[idx[k]] = true
					for _, f := range facts {
						f.check(true, where, "", "")
					}
					continue
				}
			}
			if idx[i] < 0 {
				for _, f := range facts {
					f.check(false, where, "no report", "a report")
				}
				continue
			}
			r := got[idx[i]]
			found.check(true, where, "", "")
			kind.check(sameKind(r.Kind, w.Kind), where, string(r.Kind), string(w.Kind))
			fn, mod := "null", "null"
			if r.IP != nil && r.IP.Func != "" {
				fn = r.IP.Func
				if r.IP.Module != "" {
					mod = r.IP.Module
				}
			}
			function.check(fn == strOrNull(w.Function), where, fn, strOrNull(w.Function))
			module.check(mod == strOrNull(w.Module), where, mod, strOrNull(w.Module))
			ff := reliableFuncs(r, len(w.FirstFrames))
			if len(w.FirstFrames) == 0 {
				ff = reliableFuncs(r, 3)
				// Nothing reliable to read: the parser must not invent frames.
				frames.check(len(ff) == 0, where, fmt.Sprint(ff), "[]")
			} else {
				frames.check(strings.Join(ff, " ") == strings.Join(w.FirstFrames, " "), where, fmt.Sprint(ff), fmt.Sprint(w.FirstFrames))
			}
			th := trapHex(r.Code)
			trap.check(th == strOrNull(w.CodeTrap), where, th, strOrNull(w.CodeTrap))
			if want.Arch != nil && r.Arch != "" {
				// The architecture a reader names from the whole post; kcrash names it
				// only from the report's own register lines, and a wrong name picks the
				// wrong disassembler.
				arch.check(r.Arch == *want.Arch, where, r.Arch, *want.Arch)
			}
		}
	}
	var misses []string
	for _, f := range facts {
		misses = append(misses, f.misses...)
	}
	sort.Strings(misses)
	for _, m := range misses {
		t.Log(m)
	}
	var line []string
	for _, f := range facts {
		line = append(line, fmt.Sprintf("%s %.1f%% (%d/%d)", f.name, f.pct(), f.ok, f.seen))
	}
	fmt.Printf("wild agreement (%d logs): %s\n", len(files), strings.Join(line, ", "))
	for _, f := range facts {
		if f.pct() < 95 {
			t.Errorf("%s agreement %.1f%% is below the 95%% bar", f.name, f.pct())
		}
	}
}
