package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kcrash/kcrash/internal/lab"
)

// disStructDumps are the dumps dis and struct are compared with crash on: one
// per trigger kind of panic stack (page fault, BUG, exception, list corruption),
// each in a different format.
var disStructDumps = []struct{ name, format string }{
	{"ACCESS_NULL", "elf"},
	{"BUG", "kdump-lzo"},
	{"EXCEPTION", "elf-paging"},
	{"CORRUPT_LIST_ADD", "kdump-zlib-flat"},
}

// runCrashCmds runs crash -s in batch mode on cmds, returning each command's output.
func runCrashCmds(vmlinux, dump string, cmds []string) ([]byte, error) {
	var in strings.Builder
	for _, c := range cmds {
		fmt.Fprintf(&in, "%s\n!echo %s\n", c, crashSep)
	}
	in.WriteString("q\n")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "crash", "-s", vmlinux, dump)
	cmd.Stdin = strings.NewReader(in.String())
	out, err := cmd.CombinedOutput()
	if err != nil || strings.Count(string(out), crashSep) < len(cmds) {
		return out, fmt.Errorf("crash failed: %v: %s", err, lastLines(out, 5))
	}
	return out, nil
}

// crashLines drops what is not the command's answer: crash's WARNING lines
// (about this kernel's PID hash, printed once per session) and blank lines.
func crashLines(s string) []string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.TrimSpace(l) == "" || strings.HasPrefix(l, "WARNING:") {
			continue
		}
		out = append(out, l)
	}
	return out
}

var (
	disInst = regexp.MustCompile(`^0x([0-9a-f]+) <[^>]*>:\t`)
	disLine = regexp.MustCompile(`^(\S+): (\d+)$`)
	objLine = regexp.MustCompile(`^(\S+):(\d+)(?: \(discriminator \d+\))?$`)
	objInst = regexp.MustCompile(`^([0-9a-f]+):\t`)
)

// disAttribution maps each instruction address of `dis -l` output to its
// text and the source line in effect ("file: line").
func disAttribution(lines []string) (order []uint64, text, src map[uint64]string) {
	text, src = map[uint64]string{}, map[uint64]string{}
	cur := ""
	for _, l := range lines {
		if g := disLine.FindStringSubmatch(l); g != nil {
			cur = g[1] + ": " + g[2]
			continue
		}
		if g := disInst.FindStringSubmatch(l); g != nil {
			a, _ := strconv.ParseUint(g[1], 16, 64)
			order = append(order, a)
			text[a] = strings.TrimRight(l, " ")
			src[a] = cur
		}
	}
	return
}

// objdumpLines is binutils' source line per instruction (objdump -dl) over
// [lo, hi) at link addresses: addr2line's choice among rows at one address.
func objdumpLines(t *testing.T, vmlinux, cacheDir string, lo, hi uint64) map[uint64]string {
	out, err := oracle(t, cacheDir, cacheKey("objdump-dl-v1", vmlinux, fmt.Sprint(lo, hi)), func() ([]byte, error) {
		return exec.Command("objdump", "-dl", "--no-show-raw-insn", fmt.Sprintf("--start-address=%#x", lo), fmt.Sprintf("--stop-address=%#x", hi), vmlinux).Output()
	})
	if err != nil {
		t.Fatalf("objdump: %v", err)
	}
	m := map[uint64]string{}
	cur := ""
	for _, l := range strings.Split(string(out), "\n") {
		if g := objLine.FindStringSubmatch(l); g != nil {
			cur = g[1] + ": " + g[2]
		} else if g := objInst.FindStringSubmatch(l); g != nil {
			a, _ := strconv.ParseUint(g[1], 16, 64)
			m[a] = cur
		}
	}
	return m
}

// TestVmcoreDisStructAgainstCrash compares `dis -rl` at the panic task's
// return addresses, `dis -l` of the first caller's function, and `struct` of
// the panic task and two kernel lists, with crash on the same dumps.
//
// Normalisation: crash's WARNING lines and blank lines are dropped, and
// trailing blanks of instruction lines (gdb pads "ret" to "ret    ").
// Instruction lines must be equal. Source lines are compared per instruction
// (the line in effect there); where they differ, kcrash's must be binutils'
// (objdump -dl, the same as addr2line): when several line-table rows share an
// address, gdb takes the last one marked is_stmt, binutils and
// internal/symbolize the last one. struct output must be equal.
func TestVmcoreDisStructAgainstCrash(t *testing.T) {
	m := manifest(t)
	if _, err := exec.LookPath("crash"); err != nil {
		needLab(t, "crash is not installed (apt-get install crash)")
	}
	vmlinux := m.Path(m.Kernel.Vmlinux)
	cacheDir := filepath.Join(m.Dir(), "oracle")
	var rows []string
	var insts, instEq, srcEq, srcBinutils, structs, structEq int
	for _, dd := range disStructDumps {
		e := m.Entry(dd.name)
		if e == nil {
			continue
		}
		a := e.Artifact(lab.ArtVmcore, dd.format)
		if a == nil || a.Path == "" || a.Error != "" {
			continue
		}
		path := m.Path(a.Path)
		var bts []struct {
			Task struct {
				Addr uint64 `json:"Addr"`
			} `json:"task"`
			Frames []struct {
				IP     uint64 `json:"ip"`
				Func   string `json:"func"`
				Module string `json:"module"`
			} `json:"frames"`
		}
		out, err := exec.Command(kcrashBin, "vmcore", "--json", vmlinux, path, "bt").Output()
		if err != nil || json.Unmarshal(out, &bts) != nil || len(bts) != 1 {
			t.Fatalf("%s: kcrash bt --json: %v", dd.name, err)
		}
		task := bts[0].Task.Addr
		var cmds []string
		firstFunc := ""
		for _, f := range bts[0].Frames {
			if f.Module != "" || f.Func == "" || len(cmds) >= 3 {
				continue
			}
			cmds = append(cmds, fmt.Sprintf("dis -rl %x", f.IP))
			if firstFunc == "" && f.Func != "panic" {
				firstFunc = f.Func
			}
		}
		if firstFunc != "" {
			cmds = append(cmds, "dis -l "+firstFunc)
		}
		nDis := len(cmds)
		sym := func(name string) string {
			f := strings.Fields(kcrashVmcore(t, vmlinux, path, "sym "+name))
			return f[0]
		}
		cmds = append(cmds,
			fmt.Sprintf("struct task_struct.pid,comm %x", task),
			fmt.Sprintf("struct task_struct.tasks,stack,thread_info %x", task),
			"struct list_head "+sym("modules"),
			"struct list_head "+sym("init_task"),
		)
		cout, err := oracle(t, cacheDir, cacheKey("crash-dis-struct-v1", path, strings.Join(cmds, ";")), func() ([]byte, error) {
			return runCrashCmds(vmlinux, path, cmds)
		})
		if err != nil {
			t.Errorf("%s %s: %v", dd.name, dd.format, err)
			continue
		}
		parts := strings.Split(string(cout), crashSep)
		offset := uint64(0)
		if s, err := strconv.ParseUint(sym("_text"), 16, 64); err == nil {
			offset = s - 0xffffffff81000000
		}
		var di, de, ds, db, sn, se int
		for i, c := range cmds {
			want := crashLines(parts[i])
			got := crashLines(kcrashVmcore(t, vmlinux, path, c))
			if i >= nDis {
				sn++
				if strings.Join(want, "\n") == strings.Join(got, "\n") {
					se++
				} else {
					t.Errorf("%s: %s:\nkcrash:\n%s\ncrash:\n%s", dd.name, c, strings.Join(got, "\n"), strings.Join(want, "\n"))
				}
				continue
			}
			corder, ctext, csrc := disAttribution(want)
			_, ktext, ksrc := disAttribution(got)
			if len(corder) == 0 {
				t.Errorf("%s: %s: crash printed no instructions: %q", dd.name, c, want)
				continue
			}
			var bin map[uint64]string
			for _, addr := range corder {
				di++
				if ktext[addr] == ctext[addr] {
					de++
				} else {
					t.Errorf("%s: %s: instruction at %x:\n kcrash %q\n crash  %q", dd.name, c, addr, ktext[addr], ctext[addr])
				}
				if ksrc[addr] == csrc[addr] {
					ds++
					continue
				}
				if bin == nil {
					bin = objdumpLines(t, vmlinux, cacheDir, corder[0]-offset, corder[len(corder)-1]-offset+16)
				}
				if b := bin[addr-offset]; b == ksrc[addr] {
					db++
				} else {
					t.Errorf("%s: %s: source line at %x: kcrash %q, crash %q, objdump %q", dd.name, c, addr, ksrc[addr], csrc[addr], b)
				}
			}
		}
		insts, instEq, srcEq, srcBinutils, structs, structEq = insts+di, instEq+de, srcEq+ds, srcBinutils+db, structs+sn, structEq+se
		rows = append(rows, fmt.Sprintf("%-18s %-16s dis: %d insts, text %d equal, line %d equal + %d binutils' row | struct %d/%d equal", dd.name, dd.format, di, de, ds, db, se, sn))
	}
	if insts == 0 {
		needLab(t, "no dump for dis/struct")
	}
	t.Logf("dis/struct agreement with crash:\n%s\ntotal: dis %d/%d instruction lines equal, source line %d/%d equal (%d others are binutils' choice among rows at one address), struct %d/%d equal",
		strings.Join(rows, "\n"), instEq, insts, srcEq, insts, srcBinutils, structEq, structs)
}
