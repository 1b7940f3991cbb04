package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kcrash/kcrash/internal/lab"
	"github.com/kcrash/kcrash/internal/oops"
)

// The vmcore tests run `kcrash vmcore` on the lab's dumps and compare it with
// Debian's crash (sys, log, bt) and drgn (ps, on the dumps drgn can read).
// Oracle outputs are cached per dump under <matrix>/oracle/ so warm runs are fast.

// crashFormats are tested against crash for every dump in fullDumps; every
// other dump is tested in one format, rotating through them.
var (
	crashFormats = []string{"elf", "elf-paging", "kdump-zlib-flat", "kdump-lzo", "kdump-zlib-d31", "kdump-snappy", "kdump-zstd"}
	fullDumps    = map[string]bool{"EXCEPTION": true, "WRITE_AFTER_FREE_nonc": true}
)

// crashSep separates the outputs of the commands of one crash run.
const crashSep = "=====KCRASH-SEPARATOR====="

var crashCmds = []string{"sys", "log", "bt"}

// oracle runs (or reads from the cache) an oracle command for one dump.
func oracle(t *testing.T, cacheDir, key string, run func() ([]byte, error)) ([]byte, error) {
	t.Helper()
	path := filepath.Join(cacheDir, key)
	if b, err := os.ReadFile(path); err == nil {
		return b, nil
	}
	out, err := run()
	if err != nil {
		return out, err
	}
	os.MkdirAll(cacheDir, 0o755)
	if err := os.WriteFile(path+".tmp", out, 0o644); err == nil {
		os.Rename(path+".tmp", path)
	}
	return out, nil
}

func cacheKey(parts ...string) string {
	h := sha256.Sum256([]byte(strings.Join(parts, "\x00")))
	return fmt.Sprintf("%x", h[:8])
}

// runCrash runs crash -s in batch mode with the commands separated by a shell echo.
func runCrash(vmlinux, dump string) ([]byte, error) {
	var in strings.Builder
	for _, c := range crashCmds {
		fmt.Fprintf(&in, "%s\n!echo %s\n", c, crashSep)
	}
	in.WriteString("q\n")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "crash", "-s", vmlinux, dump)
	cmd.Stdin = strings.NewReader(in.String())
	out, err := cmd.CombinedOutput()
	if err != nil || !bytes.Contains(out, []byte(crashSep)) {
		return out, fmt.Errorf("crash failed: %v: %s", err, lastLines(out, 5))
	}
	return out, nil
}

const drgnScript = `
from drgn.helpers.linux.pid import for_each_task
for t in for_each_task(prog):
    print(t.pid.value_(), t.comm.string_().decode())
`

func runDrgn(vmlinux, dump string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	script := filepath.Join(os.TempDir(), "kcrash-e2e-drgn-ps.py")
	if err := os.WriteFile(script, []byte(drgnScript), 0o644); err != nil {
		return nil, err
	}
	out, err := exec.CommandContext(ctx, "drgn", "-q", "-c", dump, "-s", vmlinux, script).CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("drgn failed: %v: %s", err, lastLines(out, 3))
	}
	return out, nil
}

func lastLines(b []byte, n int) string {
	ls := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(ls) > n {
		ls = ls[len(ls)-n:]
	}
	return strings.Join(ls, " | ")
}

func kcrashVmcore(t *testing.T, vmlinux, dump, cmd string) string {
	t.Helper()
	out, err := exec.Command(kcrashBin, "vmcore", vmlinux, dump, cmd).CombinedOutput()
	if err != nil {
		t.Fatalf("kcrash vmcore %s %s: %v\n%s", filepath.Base(dump), cmd, err, lastLines(out, 5))
	}
	return string(out)
}

type vmcoreCase struct {
	entry  *lab.Entry
	format string
	path   string
}

// agreement collects one row per dump and format for the summary table.
type agreement struct {
	mu   sync.Mutex
	rows []string
}

func (a *agreement) add(format string, args ...any) {
	a.mu.Lock()
	a.rows = append(a.rows, fmt.Sprintf(format, args...))
	a.mu.Unlock()
}

func TestVmcoreAgainstCrash(t *testing.T) {
	m := manifest(t)
	if _, err := exec.LookPath("crash"); err != nil {
		needLab(t, "crash is not installed (apt-get install crash)")
	}
	vmlinux := m.Path(m.Kernel.Vmlinux)
	cacheDir := filepath.Join(m.Dir(), "oracle")
	var cases []vmcoreCase
	rot := 0
	for _, e := range m.Entries {
		if e.Outcome != lab.OutcomePanic {
			continue
		}
		avail := map[string]string{}
		for _, a := range e.Artifacts {
			if a.Kind == lab.ArtVmcore && a.Path != "" && a.Error == "" {
				avail[a.Format] = m.Path(a.Path)
			}
		}
		if fullDumps[e.Name] {
			for _, f := range crashFormats {
				if p, ok := avail[f]; ok {
					cases = append(cases, vmcoreCase{e, f, p})
				}
			}
			continue
		}
		for i := range crashFormats {
			f := crashFormats[(rot+i)%len(crashFormats)]
			if p, ok := avail[f]; ok {
				cases = append(cases, vmcoreCase{e, f, p})
				rot = (rot + i + 1) % len(crashFormats)
				break
			}
		}
	}
	if len(cases) == 0 {
		needLab(t, "the lab has no vmcores")
	}
	var table agreement
	sem := make(chan struct{}, 2) // crash is heavy: two at once on 2 cores
	t.Run("dumps", func(t *testing.T) {
		for _, c := range cases {
			t.Run(c.entry.Name+"/"+c.format, func(t *testing.T) {
				t.Parallel()
				sem <- struct{}{}
				defer func() { <-sem }()
				checkAgainstCrash(t, vmlinux, cacheDir, c, &table)
			})
		}
	})
	sort.Strings(table.rows)
	t.Logf("agreement (dump format: sys log bt):\n%s", strings.Join(table.rows, "\n"))
}

func checkAgainstCrash(t *testing.T, vmlinux, cacheDir string, c vmcoreCase, table *agreement) {
	name := c.entry.Name + " " + c.format
	out, err := oracle(t, cacheDir, cacheKey("crash-v1", c.path, strings.Join(crashCmds, ";")), func() ([]byte, error) {
		return runCrash(vmlinux, c.path)
	})
	// kcrash must answer on every dump, whatever crash does.
	ksys := kcrashVmcore(t, vmlinux, c.path, "sys")
	klog := kcrashVmcore(t, vmlinux, c.path, "log")
	kbt := kcrashVmcore(t, vmlinux, c.path, "bt")
	if !strings.Contains(kbt, " panic at ") && !strings.Contains(kbt, "PID:") {
		t.Errorf("kcrash bt has no frames:\n%s", kbt)
	}
	if err != nil {
		t.Logf("%s: crash fails here and kcrash still answers (%d log lines, bt %d frames): %v", name, strings.Count(klog, "\n"), strings.Count(kbt, " at "), err)
		table.add("%-28s %-16s crash FAILED (%s); kcrash sys/log/bt answered", c.entry.Name, c.format, firstErrLine(out))
		return
	}
	parts := strings.Split(string(out), crashSep)
	if len(parts) < len(crashCmds) {
		t.Fatalf("crash output has %d parts", len(parts))
	}
	csys, clog, cbt := parts[0], parts[1], parts[2]
	sysRes := compareSys(t, csys, ksys)
	logRes := compareLog(t, clog, klog)
	btRes := compareBt(t, cbt, kbt)
	table.add("%-28s %-16s sys %s | log %s | bt %s", c.entry.Name, c.format, sysRes, logRes, btRes)
}

func firstErrLine(b []byte) string {
	for _, l := range strings.Split(string(b), "\n") {
		if strings.Contains(l, "crash:") || strings.Contains(l, "invalid") {
			return strings.TrimSpace(l)
		}
	}
	return lastLines(b, 1)
}

var sysLine = regexp.MustCompile(`^\s*([A-Z][A-Z ]+): (.*)$`)

func sysFields(s string) map[string]string {
	m := map[string]string{}
	for _, l := range strings.Split(s, "\n") {
		if g := sysLine.FindStringSubmatch(l); g != nil {
			m[g[1]] = strings.TrimSpace(g[2])
		}
	}
	return m
}

// compareSys requires every sys field to equal crash's, except TASKS: crash
// 8.0.2 counts only the running tasks on this kernel (checked against drgn in
// TestVmcorePsAgainstDrgn instead).
func compareSys(t *testing.T, crashOut, kcrashOut string) string {
	c, k := sysFields(crashOut), sysFields(kcrashOut)
	n := 0
	for _, f := range []string{"KERNEL", "DUMPFILE", "CPUS", "DATE", "UPTIME", "LOAD AVERAGE", "NODENAME", "RELEASE", "VERSION", "MACHINE", "MEMORY", "PANIC"} {
		if c[f] != k[f] {
			t.Errorf("sys %s: kcrash %q, crash %q", f, k[f], c[f])
			continue
		}
		n++
	}
	return fmt.Sprintf("%d/12 equal", n)
}

func logLines(s string) []string {
	var out []string
	sc := bufio.NewScanner(strings.NewReader(s))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		l := strings.TrimRight(sc.Text(), " ")
		if strings.HasPrefix(l, "[") || strings.HasPrefix(l, " ") || l == "" {
			out = append(out, l)
		}
	}
	for len(out) > 0 && out[len(out)-1] == "" {
		out = out[:len(out)-1]
	}
	for len(out) > 0 && out[0] == "" {
		out = out[1:]
	}
	return out
}

func compareLog(t *testing.T, crashOut, kcrashOut string) string {
	c, k := logLines(crashOut), logLines(kcrashOut)
	if len(c) < 100 {
		t.Fatalf("crash log has %d lines", len(c))
	}
	diff := 0
	for i := 0; i < max(len(c), len(k)); i++ {
		var cl, kl string
		if i < len(c) {
			cl = c[i]
		}
		if i < len(k) {
			kl = k[i]
		}
		if cl != kl {
			if diff < 3 {
				t.Errorf("log line %d:\n kcrash %q\n crash  %q", i+1, kl, cl)
			}
			diff++
		}
	}
	if diff > 0 {
		return fmt.Sprintf("%d/%d lines differ", diff, len(c))
	}
	return fmt.Sprintf("%d lines equal", len(c))
}

var btFrame = regexp.MustCompile(`^\s*#(\d+) \[([0-9a-f]+)\] (\S+) at ([0-9a-f]+)`)

type frame struct{ sp, fn, ip string }

func btFrames(s string) (frames []frame, exc []string) {
	for _, l := range strings.Split(s, "\n") {
		if g := btFrame.FindStringSubmatch(l); g != nil {
			frames = append(frames, frame{g[2], g[3], g[4]})
		}
		if strings.Contains(l, "[exception RIP:") || strings.HasPrefix(strings.TrimSpace(l), "RIP:") {
			exc = append(exc, strings.TrimSpace(l))
		}
	}
	return
}

var excRegsRE = regexp.MustCompile(`^RIP: ([0-9a-f]{16})  RSP: ([0-9a-f]{16})  RFLAGS: ([0-9a-f]{8})`)

// inventedExceptionFrame reports an exception frame crash made up from stack
// words: a user-half RIP with a kernel stack pointer (a kernel-mode pt_regs has a
// kernel RIP; a user-mode one a user RSP), as in a HARDLOCKUP dump where crash
// printed "RIP: 00000000313b09c4  RSP: ffff8a6301bb2ea0  RFLAGS: 0001ad40".
func inventedExceptionFrame(lines []string) bool {
	for _, l := range lines {
		m := excRegsRE.FindStringSubmatch(strings.TrimSpace(l))
		if m != nil && m[1] < "ffff800000000000" && m[2] >= "ffff800000000000" {
			return true
		}
	}
	return false
}

// compareBt checks the panic task's stack against crash's: the same first
// frame (panic), the same last frame when kcrash reaches the user-mode entry,
// and the same kernel exception frames. crash 8.0.2 does not unwind by ORC on
// this kernel: it adds stale return addresses found by scanning (the kernel's
// own trace marks them "?"), skips some real frames, and invents exception
// frames where no pt_regs are ("unknown or invalid address", "no symbolic
// reference"); those are reported, not compared. The count of crash's frames
// that kcrash shows with the same stack slot and address is reported.
func compareBt(t *testing.T, crashOut, kcrashOut string) string {
	c, cexc := btFrames(crashOut)
	k, kexc := btFrames(kcrashOut)
	if len(c) == 0 || len(k) == 0 {
		t.Errorf("bt: crash %d frames, kcrash %d", len(c), len(k))
		return "no frames"
	}
	if c[0] != k[0] {
		t.Errorf("bt first frame: kcrash %+v, crash %+v", k[0], c[0])
	}
	const entry = "entry_SYSCALL_64_after_hwframe"
	if k[len(k)-1].fn == entry && c[len(c)-1] != k[len(k)-1] {
		t.Errorf("bt last frame: kcrash %+v, crash %+v", k[len(k)-1], c[len(c)-1])
	}
	note := ""
	bogus := strings.Contains(crashOut, "[exception RIP: unknown or invalid address]") || strings.Contains(crashOut, "[exception RIP: no symbolic reference]") ||
		inventedExceptionFrame(cexc)
	switch {
	case bogus:
		note = ", crash's exception frame is bogus"
	case k[len(k)-1].fn != entry:
		// A kernel thread (ends at ret_from_fork), or kcrash stopped at a
		// corrupted return address: compare the exception lines it has.
		for i, l := range kexc {
			if i >= len(cexc) || cexc[i] != l {
				t.Errorf("bt exception line %d: kcrash %q, crash %q", i, l, cexc)
			}
		}
		if k[len(k)-1].fn != "ret_from_fork" {
			note = ", kcrash stops at the corrupted return address"
		}
	case strings.Join(cexc, "\n") != strings.Join(kexc, "\n"):
		t.Errorf("bt exception frames differ:\nkcrash %q\ncrash  %q", kexc, cexc)
	}
	have := map[frame]bool{}
	for _, f := range k {
		have[f] = true
	}
	n := 0
	for _, f := range c {
		if have[f] {
			n++
		}
	}
	return fmt.Sprintf("%d of crash's %d frames (kcrash %d)%s", n, len(c), len(k), note)
}

// TestVmcorePsAgainstDrgn compares ps with drgn's for_each_task on the ELF
// dumps taken with paging (the only ones drgn 0.0.22 reads), and checks that
// kcrash answers ps on the formats drgn cannot read.
func TestVmcorePsAgainstDrgn(t *testing.T) {
	if _, err := exec.LookPath("drgn"); err != nil {
		needLab(t, "drgn is not installed (apt-get install python3-drgn)")
	}
	for i, m := range manifests(t) {
		t.Run(m.Kernel.Release, func(t *testing.T) { psAgainstDrgn(t, m, i == 0) })
	}
}

func psAgainstDrgn(t *testing.T, m *lab.Manifest, defaultKernel bool) {
	vmlinux := m.Path(m.Kernel.Vmlinux)
	cacheDir := filepath.Join(m.Dir(), "oracle")
	var rows []string
	for _, e := range m.Entries {
		if e.Outcome != lab.OutcomePanic {
			continue
		}
		for _, a := range e.Artifacts {
			if a.Kind != lab.ArtVmcore || a.Path == "" || (a.Format != "elf-paging" && a.Format != "kdump-lzo" && a.Format != "elf") {
				continue
			}
			if a.Format == "elf" && !defaultKernel {
				// drgn 0.0.22 cannot read physical-only ELF dumps (shown on the
				// default kernel's matrix): not run again for the other kernels.
				continue
			}
			path := m.Path(a.Path)
			var tasks []struct {
				PID     int    `json:"PID"`
				Comm    string `json:"Comm"`
				Kthread bool   `json:"Kthread"`
			}
			out, err := exec.Command(kcrashBin, "vmcore", "--json", vmlinux, path, "ps").Output()
			if err != nil || json.Unmarshal(out, &tasks) != nil || len(tasks) < 10 {
				t.Errorf("%s %s: kcrash ps: %v (%d tasks)", e.Name, a.Format, err, len(tasks))
				continue
			}
			dout, derr := oracle(t, cacheDir, cacheKey("drgn-ps-v1", path), func() ([]byte, error) { return runDrgn(vmlinux, path) })
			if derr != nil && a.Format != "elf-paging" {
				// drgn 0.0.22 cannot translate addresses in physical-only ELF
				// dumps, and reads kdump files only through libkdumpfile: where
				// it fails, kcrash must answer, and the test says so.
				rows = append(rows, fmt.Sprintf("%-28s %-11s drgn FAILED (%s); kcrash ps: %d tasks", e.Name, a.Format, firstErrLine(dout), len(tasks)))
				continue
			}
			if derr != nil {
				t.Errorf("%s: drgn: %v", e.Name, derr)
				continue
			}
			want := map[string]bool{}
			for _, l := range strings.Split(strings.TrimSpace(string(dout)), "\n") {
				want[l] = true
			}
			got := map[string]bool{}
			for _, tk := range tasks {
				if tk.PID != 0 { // drgn's for_each_task walks PIDs: no idle tasks
					got[fmt.Sprintf("%d %s", tk.PID, tk.Comm)] = true
				}
			}
			for w := range want {
				if !got[w] {
					t.Errorf("%s: drgn task %q missing from kcrash ps", e.Name, w)
				}
			}
			for g := range got {
				if !want[g] {
					t.Errorf("%s: kcrash task %q not in drgn's for_each_task", e.Name, g)
				}
			}
			rows = append(rows, fmt.Sprintf("%-28s %-11s drgn %d tasks, kcrash %d (+%d idle)", e.Name, a.Format, len(want), len(got), len(tasks)-len(got)))
		}
	}
	sort.Strings(rows)
	t.Logf("ps agreement:\n%s", strings.Join(rows, "\n"))
}

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

// TestVmcoreBtAgainstLogTrace compares kcrash's bt of the panic task with the
// kernel's own Call Trace of the panic in the dump's log: the kernel printed
// it with its ORC unwinder, and its reliable frames (those without "?") are
// the real call chain. Traces are taken from oops.Parse of kcrash's log.
// panic() prints its own trace (dump_stack) unless an oops is in progress:
// the last trace with a reliable panic frame, from panic on, must equal
// kcrash's frames, which start at panic. Otherwise the panic came from an
// oops (panic_on_oops: "Fatal exception"): the trace of the report that
// panicked starts at the caller of the function its RIP names, and must
// equal kcrash's frames after the exception frame with that RIP. Function
// names only; every dump of every format.
func TestVmcoreBtAgainstLogTrace(t *testing.T) {
	for _, m := range manifests(t) {
		vmlinux := m.Path(m.Kernel.Vmlinux)
		var mu sync.Mutex
		var rows []string
		equal, total := 0, 0
		t.Run(m.Kernel.Release, func(t *testing.T) {
			for _, e := range m.Entries {
				for _, a := range e.Artifacts {
					if a.Kind != lab.ArtVmcore || a.Path == "" || a.Error != "" {
						continue
					}
					e, a := e, a
					t.Run(e.Name+"/"+a.Format, func(t *testing.T) {
						t.Parallel()
						path := m.Path(a.Path)
						res, ok := compareBtWithLog(t, vmlinux, path)
						mu.Lock()
						defer mu.Unlock()
						rows = append(rows, fmt.Sprintf("%-28s %-16s %s", e.Name, a.Format, res))
						if ok >= 0 {
							total++
							equal += ok
						}
					})
				}
			}
		})
		sort.Strings(rows)
		t.Logf("%s: bt against the log's Call Trace of the panic: %d/%d dumps equal\n%s", m.Kernel.Release, equal, total, strings.Join(rows, "\n"))
	}
}

// compareBtWithLog returns a summary and 1 (equal), 0 (differs: an error is
// reported) or -1 (the log has no trace of the panic to compare with).
func compareBtWithLog(t *testing.T, vmlinux, path string) (string, int) {
	logText := kcrashVmcore(t, vmlinux, path, "log")
	btOut, err := exec.Command(kcrashBin, "vmcore", vmlinux, path, "bt").CombinedOutput()
	if err != nil {
		// makedumpfile 1.7.2 -d 31 drops the slab pages of 6.10+ kernels (it
		// reads their page_type as a free buddy page), task_structs with them:
		// that is the dump's loss, and kcrash must say so in its error.
		if strings.HasSuffix(path, ".kdump-zlib-d31") && strings.Contains(string(btOut), "page excluded from the dump") {
			return "the panic task's page is excluded from the dump (makedumpfile -d 31)", -1
		}
		t.Fatalf("kcrash vmcore %s bt: %v\n%s", filepath.Base(path), err, lastLines(btOut, 5))
	}
	// kcrash's frames in order, and after which frame each kernel-mode
	// exception ("[exception RIP: name+off]") was printed.
	var frames []string
	excAfter := map[int]string{}
	for _, l := range strings.Split(string(btOut), "\n") {
		if g := btFrame.FindStringSubmatch(l); g != nil {
			frames = append(frames, g[3])
		} else if _, rest, ok := strings.Cut(l, "[exception RIP: "); ok {
			name, _, _ := strings.Cut(strings.TrimSuffix(rest, "]"), "+")
			excAfter[len(frames)] = name
		}
	}
	reports := oops.Parse([]byte(logText))
	reliable := func(r *oops.Report) []string {
		var fs []string
		for _, f := range r.Frames {
			if f.Reliable && f.Func != "" {
				fs = append(fs, f.Func)
			}
		}
		return fs
	}
	// The panic's own trace: panic() prints one (dump_stack) unless an oops
	// is in progress; it is the last trace with a reliable panic frame.
	// oops.Parse keeps that trace with the report the panic ended, if any,
	// so the log from the panic message on is parsed alone for it.
	var main *oops.Report
	if i := strings.LastIndex(logText, "] Kernel panic - not syncing"); i >= 0 {
		i = strings.LastIndex(logText[:i], "\n") + 1
		for _, r := range oops.Parse([]byte(logText[i:])) {
			if slices.Contains(reliable(r), "panic") {
				main = r
			}
		}
	}
	if main == nil {
		// Panicking from an oops: the trace of the report that panicked.
		for _, r := range reports {
			if r.Panicked {
				main = r
				break
			}
		}
	}
	if main == nil {
		return "no report that panicked in the log", -1
	}
	want := reliable(main)
	if len(want) == 0 {
		return fmt.Sprintf("the panic's report (%s) has no call trace in the log", main.Title), -1
	}
	var got []string
	if !slices.Contains(want, "panic") && main.IP != nil && main.IP.Func != "" {
		start := -1
		for i := range frames {
			if excAfter[i+1] == main.IP.Func && start < 0 {
				start = i + 1
			}
		}
		if start < 0 {
			t.Errorf("kcrash bt has no exception frame in %s (the report's RIP); exceptions: %v", main.IP.Func, excAfter)
			return "no exception frame at the report's RIP", 0
		}
		got = frames[start:]
	} else {
		i := 0
		for i < len(want) && want[i] != "panic" {
			i++
		}
		if i == len(want) {
			return "the panic's trace has no panic frame", -1
		}
		want = want[i:]
		got = frames
	}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("bt frames differ from the log's Call Trace of %q:\nkcrash: %s\nkernel: %s", main.Title, strings.Join(got, " "), strings.Join(want, " "))
		return fmt.Sprintf("DIFFER (%d kcrash frames, %d in the log)", len(got), len(want)), 0
	}
	return fmt.Sprintf("%d frames equal", len(want)), 1
}

// TestVmcoreExplainModules checks that explain symbolizes the lkdtm frames of
// the ACCESS_NULL dump, with lkdtm.ko found either in a --modules directory
// holding both the Debian module debug files and the lab's lkdtm.ko (linked,
// as labDecoder does), or registered with `mod -s`.
func TestVmcoreExplainModules(t *testing.T) {
	m := manifest(t)
	e := m.Entry("ACCESS_NULL")
	if e == nil {
		needLab(t, "no ACCESS_NULL entry")
	}
	var dump string
	for _, a := range e.Artifacts {
		if a.Kind == lab.ArtVmcore && a.Path != "" && a.Error == "" {
			dump = m.Path(a.Path)
			break
		}
	}
	if dump == "" {
		needLab(t, "no ACCESS_NULL vmcore")
	}
	vmlinux, debug, lkdtm := m.Path(m.Kernel.Vmlinux), m.Path(m.Kernel.DebugDir), m.Path(m.Kernel.LKDTM)
	mods := t.TempDir()
	if err := os.Symlink(debug, filepath.Join(mods, "debug")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(lkdtm, filepath.Join(mods, "lkdtm.ko")); err != nil {
		t.Fatal(err)
	}
	perms := regexp.MustCompile(`=> lkdtm_ACCESS_NULL \([^)]*perms\.c:\d+\)`)
	for _, run := range []struct{ name, modules, cmd string }{
		{"modules dir", mods, "explain"},
		{"mod -s", debug, "mod -s lkdtm " + lkdtm + "; explain"},
	} {
		out, err := exec.Command(kcrashBin, "vmcore", "--modules", run.modules, vmlinux, dump, run.cmd).CombinedOutput()
		if err != nil {
			t.Fatalf("%s: %v\n%s", run.name, err, lastLines(out, 5))
		}
		s := string(out)
		if !perms.MatchString(s) {
			t.Errorf("%s: explain does not place lkdtm_ACCESS_NULL in perms.c:\n%s", run.name, s)
		}
		if !strings.Contains(s, "EXPLANATION: NULL pointer dereference") {
			t.Errorf("%s: explain gives no NULL dereference explanation:\n%s", run.name, s)
		}
	}
}
