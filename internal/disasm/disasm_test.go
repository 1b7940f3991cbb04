package disasm

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/kcrash/kcrash/internal/oops"
)

var objdumpLine = regexp.MustCompile(`^\s*([0-9a-f]+):\t([0-9a-f ]+?)\s*\t(.*)$`)

// objdump disassembles code from start at vma and returns text by offset.
func objdump(t *testing.T, code []byte, vma uint64) map[uint64]string {
	t.Helper()
	f := filepath.Join(t.TempDir(), "code.bin")
	if err := os.WriteFile(f, code, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("objdump", "-D", "-z", "-b", "binary", "-m", "i386:x86-64",
		fmt.Sprintf("--adjust-vma=%#x", vma), f).Output()
	if err != nil {
		t.Fatalf("objdump: %v", err)
	}
	res := map[uint64]string{}
	s := bufio.NewScanner(strings.NewReader(string(out)))
	for s.Scan() {
		m := objdumpLine.FindStringSubmatch(s.Text())
		if m == nil {
			continue
		}
		a, _ := strconv.ParseUint(m[1], 16, 64)
		res[a] = m[3]
	}
	return res
}

func norm(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if i := strings.Index(s, " <"); i > 0 { // objdump's symbolic target annotation
		s = s[:i]
	}
	return s
}

// TestX86AgainstObjdump disassembles the Code: bytes of every real x86 report in the
// lab samples and the syzkaller corpus, and compares every complete instruction with
// binutils objdump on the same bytes at the same address.
func TestX86AgainstObjdump(t *testing.T) {
	if _, err := exec.LookPath("objdump"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("objdump (binutils) not installed")
		}
		t.Skip("objdump (binutils) not installed")
	}
	files, _ := filepath.Glob("../oops/testdata/lab/*.serial")
	corpus, _ := filepath.Glob("../oops/testdata/syzkaller/report/*")
	files = append(files, corpus...)
	var total, agree, reports int
	var diffs []string
	for _, name := range files {
		data, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range oops.Parse(data) {
			if r.Code == nil || r.Code.Trap < 0 || r.Code.TrapLen == 4 || r.Arch != "x86_64" {
				continue
			}
			reports++
			base := uint64(0xffffffff81000000)
			trapAddr := base + uint64(r.Code.Trap)
			insts, err := X86(r.Code.Bytes, r.Code.Trap, trapAddr, nil)
			if err != nil {
				diffs = append(diffs, fmt.Sprintf("%s: %v", filepath.Base(name), err))
				continue
			}
			start := insts[0].Offset
			ref := objdump(t, r.Code.Bytes[start:], base+uint64(start))
			for k, in := range insts {
				if k == len(insts)-1 {
					break // may be cut by the end of the Code bytes
				}
				total++
				want, ok := ref[in.Addr]
				if ok && norm(want) == norm(in.Text) {
					agree++
					continue
				}
				diffs = append(diffs, fmt.Sprintf("%s: % x: kcrash %q, objdump %q", filepath.Base(name), in.Bytes, in.Text, want))
			}
		}
	}
	for _, d := range diffs {
		t.Log(d)
	}
	t.Logf("x86 Code bytes of %d reports: %d/%d instructions equal objdump's (%.2f%%)", reports, agree, total, 100*float64(agree)/float64(total))
	if reports < 20 || agree != total {
		t.Errorf("%d of %d instructions differ from objdump", total-agree, total)
	}
}
