package e2e

import (
	"bytes"
	"debug/elf"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kcrash/kcrash/internal/disasm"
	"github.com/kcrash/kcrash/internal/lab"
	"github.com/kcrash/kcrash/internal/oops"
)

// The arm64 guest's matrix (kcrash lab run --kernel arm64): parse, decode and
// vmcore sys/log/ps/bt on its consoles and dumps. Debian's amd64 crash cannot
// open arm64 dumps ("machine type mismatch") and drgn 0.0.22 fails on QEMU's
// arm64 dumps ("recursive address translation"), so the oracles are the guest's
// own console (the same oops, printed by the kernel as it happened), VMCOREINFO
// and the manifest.

func arm64Manifest(t *testing.T) *lab.Manifest {
	t.Helper()
	path, err := lab.FindArm64Manifest(lab.DefaultDir())
	if err != nil {
		needLab(t, "%v", err)
	}
	m, err := lab.LoadManifest(path)
	if err != nil {
		needLab(t, "%v (build it with: go run ./cmd/kcrash lab run --kernel arm64)", err)
	}
	if want := lab.Arm64RecipeHash("128M"); m.RecipeHash != want && os.Getenv("KCRASH_LAB_ARM64_MANIFEST") == "" {
		needLab(t, "%s is stale (recipe %s, this lab's is %s): go run ./cmd/kcrash lab run --kernel arm64", path, m.RecipeHash, want)
	}
	if !m.Complete || len(m.Entries) == 0 {
		needLab(t, "%s is incomplete: go run ./cmd/kcrash lab run --kernel arm64", path)
	}
	return m
}

// a64PC is the console's "pc : func+off/size [mod]" line (arch/arm64/kernel/process.c: __show_regs).
var a64PC = regexp.MustCompile(`(?m)\] pc : ([^\s+]+)\+0x[0-9a-f]+/0x[0-9a-f]+(?: \[(\S+)\])?`)

// a64Comm is the "CPU: 0 PID: 126 Comm: init …" line of the oops.
var a64Comm = regexp.MustCompile(`(?m)\] CPU: (\d+) PID: (\d+) Comm: (\S+)`)

// TestArm64Parse: kcrash parse finds the oops of every arm64 console with the
// kind of the trigger table, the pc's function, and the panic.
func TestArm64Parse(t *testing.T) {
	m := arm64Manifest(t)
	for _, e := range m.Entries {
		serial := m.Path(e.Artifact(lab.ArtSerial, "").Path)
		data, err := os.ReadFile(serial)
		if err != nil {
			t.Fatal(err)
		}
		pc := a64PC.FindSubmatch(data)
		if pc == nil {
			t.Fatalf("%s: no pc : line on the console", e.Name)
		}
		reports := parse(t, serial)
		r := find(reports, lab.Facts{Kind: e.Trigger.Kind, RIPFunc: string(pc[1])})
		if r == nil {
			t.Errorf("%s: no %s report at %s:%s", e.Name, e.Trigger.Kind, pc[1], summary(reports))
			continue
		}
		if !r.Panicked || r.PanicMessage != e.Facts.PanicMessage {
			t.Errorf("%s: panicked=%v message %q, want the console's %q", e.Name, r.Panicked, r.PanicMessage, e.Facts.PanicMessage)
		}
		if string(pc[2]) != r.IP.Module {
			t.Errorf("%s: ip module %q, console %q", e.Name, r.IP.Module, pc[2])
		}
	}
}

// TestArm64DecodeAgainstObjdump: kcrash decode --json disassembles every arm64
// console's Code: line exactly as aarch64-linux-gnu-objdump does the same words.
func TestArm64DecodeAgainstObjdump(t *testing.T) {
	m := arm64Manifest(t)
	tool, err := exec.LookPath("aarch64-linux-gnu-objdump")
	if err != nil {
		needLab(t, "aarch64-linux-gnu-objdump missing (binutils-aarch64-linux-gnu, installed by kcrash lab setup --kernel arm64)")
	}
	for _, e := range m.Entries {
		serial := m.Path(e.Artifact(lab.ArtSerial, "").Path)
		data, _ := os.ReadFile(serial)
		var code []byte
		for _, r := range oops.Parse(data) {
			if r.Code != nil && r.Arch == "arm64" {
				code = r.Code.Bytes
				break
			}
		}
		if len(code) == 0 {
			t.Fatalf("%s: no arm64 Code: line", e.Name)
		}
		out, err := exec.Command(kcrashBin, "decode", "--json", serial).Output()
		if err != nil {
			t.Fatalf("kcrash decode --json %s: %v", e.Name, err)
		}
		texts := regexp.MustCompile(`"text":\s*"((?:[^"\\]|\\.)*)"`).FindAllSubmatch(out, -1)
		f := filepath.Join(t.TempDir(), "code.bin")
		os.WriteFile(f, code, 0o644)
		ref, err := exec.Command(tool, "-D", "-z", "-b", "binary", "-m", "aarch64", f).Output()
		if err != nil {
			t.Fatal(err)
		}
		var want []string
		for _, l := range strings.Split(string(ref), "\n") {
			if g := regexp.MustCompile(`^\s*[0-9a-f]+:\t[0-9a-f]+ \t(.*)$`).FindStringSubmatch(l); g != nil {
				want = append(want, strings.Join(strings.Fields(g[1]), " "))
			}
		}
		if len(texts) < len(want) {
			t.Fatalf("%s: decode printed %d instructions, objdump %d (code %s)", e.Name, len(texts), len(want), hex.EncodeToString(code))
		}
		for i, w := range want {
			got, _ := strconv.Unquote(`"` + string(texts[i][1]) + `"`)
			// Relative targets: decode has no address for the words (arm64 prints
			// the pc symbolized), objdump counts from 0 here; compare the rest.
			if strings.Contains(got, ".+") || strings.Contains(got, ".-") {
				continue
			}
			if strings.Join(strings.Fields(got), " ") != w {
				t.Errorf("%s: instruction %d: kcrash %q, objdump %q", e.Name, i, got, w)
			}
		}
	}
}

// TestArm64Vmcore: kcrash vmcore sys, log, ps and bt on every dump (ELF and
// QEMU's kdump-zlib) of the arm64 matrix, against the console and VMCOREINFO:
// sys names the release, aarch64, the CPUs and the panic; log holds every line
// the console printed from the oops to the panic's end; ps marks the oops's task
// (the console's PID and Comm) as running; bt's frames after the exception frame
// are the console's Call trace, with the exception's PC in the oops's function.
func TestArm64Vmcore(t *testing.T) {
	m := arm64Manifest(t)
	vmlinux := m.Path(m.Kernel.Vmlinux)
	var rows []string
	for _, e := range m.Entries {
		serial, err := os.ReadFile(m.Path(e.Artifact(lab.ArtSerial, "").Path))
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range e.Artifacts {
			if a.Kind != lab.ArtVmcore || a.Path == "" {
				continue
			}
			dump := m.Path(a.Path)
			t.Run(e.Name+"/"+a.Format, func(t *testing.T) {
				times := map[string]time.Duration{}
				run := func(cmd string) string {
					t0 := time.Now()
					out := kcrashVmcore(t, vmlinux, dump, cmd)
					times[cmd] = time.Since(t0)
					return out
				}
				sys, logText, ps, bt := run("sys"), run("log"), run("ps"), run("bt")
				checkA64Sys(t, sys, serial, m, e)
				checkA64Log(t, logText, serial)
				checkA64Ps(t, ps, serial)
				checkA64Bt(t, bt, logText)
				checkA64Dis(t, vmlinux, dump, bt, serial)
				// explain: the decoder on the dump's log, the Code words placed
				// at the pc the dump resolves (absolute targets), the ESR read.
				ex := kcrashVmcore(t, vmlinux, dump, "explain")
				if !strings.Contains(ex, "<-- trapping instruction") || strings.Contains(ex, " .+0x") || strings.Contains(ex, " .-0x") {
					t.Errorf("explain's disassembly has no trap or relative targets:\n%s", ex)
				}
				if e.Trigger.Kind == "null-ptr-deref" && !(strings.Contains(ex, "ESR 0x") && strings.Contains(ex, "a NULL pointer was dereferenced")) {
					t.Errorf("explain of %s:\n%s", e.Name, ex)
				}
				rows = append(rows, fmt.Sprintf("%-12s %-16s sys %4.0f ms  log %4.0f ms  ps %4.0f ms  bt %4.0f ms", e.Name, a.Format,
					ms(times["sys"]), ms(times["log"]), ms(times["ps"]), ms(times["bt"])))
			})
		}
	}
	t.Logf("arm64 %s, kcrash vmcore wall times (process start to exit):\n%s", m.Kernel.Release, strings.Join(rows, "\n"))
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func sysField(sys, key string) string {
	for _, l := range strings.Split(sys, "\n") {
		if k, v, ok := strings.Cut(l, ": "); ok && strings.TrimSpace(k) == key {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// checkA64Sys: the fields the manifest knows, and a PANIC that is a line the
// console printed (crash's choice of which, as for x86-64: a "kernel BUG at"
// line before the "Kernel panic" one).
func checkA64Sys(t *testing.T, sys string, serial []byte, m *lab.Manifest, e *lab.Entry) {
	t.Helper()
	want := map[string]string{
		"RELEASE": m.Kernel.Release,
		"MACHINE": "aarch64",
		"CPUS":    strconv.Itoa(e.VCPUs),
		"MEMORY":  "128 MB",
	}
	for k, v := range want {
		if got := sysField(sys, k); got != v {
			t.Errorf("sys %s = %q, want %q", k, got, v)
		}
	}
	panicMsg, err := strconv.Unquote(sysField(sys, "PANIC"))
	found := false
	for _, l := range strings.Split(string(serial), "\n") {
		found = found || strings.HasSuffix(strings.TrimRight(l, "\r "), "] "+panicMsg)
	}
	if err != nil || panicMsg == "" || !found {
		t.Errorf("sys PANIC %q is not a line of the console", sysField(sys, "PANIC"))
	}
}

// consoleLines are the console's kernel log lines ("[ time] text") from the
// first line of the oops to the end of the panic.
func consoleLines(serial []byte) []string {
	var out []string
	started := false
	for _, l := range strings.Split(string(serial), "\n") {
		l = strings.TrimRight(l, "\r ")
		if !strings.HasPrefix(l, "[") {
			continue
		}
		if !started && (strings.Contains(l, "] Unable to handle kernel") || strings.Contains(l, "] kernel BUG at") || strings.Contains(l, "] Internal error:")) {
			started = true
		}
		if started {
			out = append(out, l)
		}
	}
	return out
}

func checkA64Log(t *testing.T, logText string, serial []byte) {
	t.Helper()
	lines := consoleLines(serial)
	if len(lines) < 10 {
		t.Fatalf("the console has %d oops lines", len(lines))
	}
	have := map[string]bool{}
	for _, l := range strings.Split(logText, "\n") {
		have[strings.TrimRight(l, " ")] = true
	}
	missing := 0
	for _, l := range lines {
		if !have[l] {
			missing++
			if missing <= 5 {
				t.Errorf("log lacks the console's %q", l)
			}
		}
	}
	if missing > 0 {
		t.Errorf("log lacks %d of the console's %d oops lines", missing, len(lines))
	}
}

func checkA64Ps(t *testing.T, ps string, serial []byte) {
	t.Helper()
	g := a64Comm.FindSubmatch(serial)
	if g == nil {
		t.Fatal("no CPU: … PID: … Comm: line on the console")
	}
	pid, comm := string(g[2]), string(g[3])
	for _, l := range strings.Split(ps, "\n") {
		f := strings.Fields(l)
		if len(f) > 0 && f[0] == ">" {
			if f[1] != pid || f[len(f)-1] != comm || f[5] != "RU" {
				t.Errorf("ps marks %q as running; the console's oops is PID %s %s", l, pid, comm)
			}
			return
		}
	}
	t.Errorf("ps marks no running task; the console's oops is PID %s %s", pid, comm)
}

var a64PCLine = regexp.MustCompile(`^\s+PC: [0-9a-f]{16}\s+\[([^+\]]+)\+\d+\]`)

func checkA64Bt(t *testing.T, bt, logText string) {
	t.Helper()
	var frames []string
	exc := -1
	excFunc := ""
	for _, l := range strings.Split(bt, "\n") {
		if g := btFrame.FindStringSubmatch(l); g != nil {
			frames = append(frames, g[3])
		} else if g := a64PCLine.FindStringSubmatch(l); g != nil && exc < 0 {
			exc, excFunc = len(frames), g[1]
		}
	}
	var main *oops.Report
	for _, r := range oops.Parse([]byte(logText)) {
		if r.Panicked {
			main = r
			break
		}
	}
	if main == nil || main.IP == nil {
		t.Fatalf("no report that panicked in kcrash's log")
	}
	var want []string
	for _, f := range main.Frames {
		if f.Reliable && f.Func != "" {
			want = append(want, f.Func)
		}
	}
	if exc < 0 {
		t.Fatalf("bt has no arm64 exception frame (PC: line):\n%s", bt)
	}
	if excFunc != main.IP.Func {
		t.Errorf("bt's exception PC is in %s, the log's pc in %s", excFunc, main.IP.Func)
	}
	got := frames[exc:]
	if !slicesEqual(got, want) {
		t.Errorf("bt after the exception frame:\n  %v\nthe log's Call trace:\n  %v", got, want)
	}
	if !bytes.Contains([]byte(bt), []byte("] panic at ")) {
		t.Errorf("bt does not start in panic:\n%s", bt)
	}
}

func slicesEqual(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

var a64PCAddr = regexp.MustCompile(`(?m)^\s+PC: ([0-9a-f]{16})`)

// checkA64Dis: dis of the exception's PC, read from the dump, is the text
// aarch64-linux-gnu-objdump gives the trapping word of the console's Code: line
// at that address.
func checkA64Dis(t *testing.T, vmlinux, dump, bt string, serial []byte) {
	t.Helper()
	g := a64PCAddr.FindStringSubmatch(bt)
	if g == nil {
		t.Fatal("bt has no PC: line")
	}
	var word []byte
	for _, r := range oops.Parse(serial) {
		if r.Code != nil && r.Code.Trap >= 0 && r.Code.Trap+4 <= len(r.Code.Bytes) {
			word = r.Code.Bytes[r.Code.Trap : r.Code.Trap+4]
			break
		}
	}
	if word == nil {
		t.Fatal("no Code: line with a trapping word on the console")
	}
	out := kcrashVmcore(t, vmlinux, dump, "dis 0x"+g[1]+" 1")
	_, got, ok := strings.Cut(strings.TrimSpace(out), ">:")
	if !ok {
		t.Fatalf("dis 0x%s 1: %q", g[1], out)
	}
	tool, err := exec.LookPath("aarch64-linux-gnu-objdump")
	if err != nil {
		needLab(t, "aarch64-linux-gnu-objdump missing")
	}
	f := filepath.Join(t.TempDir(), "w.bin")
	os.WriteFile(f, word, 0o644)
	ref, err := exec.Command(tool, "-D", "-z", "-b", "binary", "-m", "aarch64", "--adjust-vma=0x"+g[1], f).Output()
	if err != nil {
		t.Fatal(err)
	}
	want := ""
	for _, l := range strings.Split(string(ref), "\n") {
		if m := regexp.MustCompile(`^\s*[0-9a-f]+:\t[0-9a-f]+ \t(.*)$`).FindStringSubmatch(l); m != nil {
			want = m[1]
		}
	}
	strip := func(s string) string {
		if i := strings.Index(s, " <"); i >= 0 {
			s = s[:i]
		}
		return strings.Join(strings.Fields(s), " ")
	}
	if strip(got) != strip(want) {
		t.Errorf("dis at the exception PC %s: kcrash %q, objdump of the console's trapping word %q", g[1], got, want)
	}
}

// TestArm64VmlinuxAgainstObjdump disassembles four windows of 25,000 words of
// the arm64 vmlinux's .text (at 0, 1/4, 1/2 and 3/4 of it) with kcrash's
// decoder (internal/disasm, what decode and vmcore dis print) and with
// aarch64-linux-gnu-objdump, and requires every word equal. The whole .text
// (3,082,856 words) was compared once the same way: all equal.
func TestArm64VmlinuxAgainstObjdump(t *testing.T) {
	m := arm64Manifest(t)
	tool, err := exec.LookPath("aarch64-linux-gnu-objdump")
	if err != nil {
		needLab(t, "aarch64-linux-gnu-objdump missing")
	}
	vmlinux := m.Path(m.Kernel.Vmlinux)
	f, err := elf.Open(vmlinux)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	text := f.Section(".text")
	if text == nil {
		t.Fatal("no .text")
	}
	const window = 25000
	total, equal := 0, 0
	for q := uint64(0); q < 4; q++ {
		start := text.Addr + (text.Size*q/4)&^3
		n := min(uint64(window), (text.Addr+text.Size-start)/4)
		code := make([]byte, n*4)
		if _, err := text.ReadAt(code, int64(start-text.Addr)); err != nil {
			t.Fatal(err)
		}
		bin := filepath.Join(t.TempDir(), "w.bin")
		os.WriteFile(bin, code, 0o644)
		ref, err := exec.Command(tool, "-D", "-z", "-b", "binary", "-m", "aarch64", fmt.Sprintf("--adjust-vma=%#x", start), bin).Output()
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]string{}
		line := regexp.MustCompile(`^\s*([0-9a-f]+):\t[0-9a-f]+ \t(.*)$`)
		for _, l := range strings.Split(string(ref), "\n") {
			if g := line.FindStringSubmatch(l); g != nil {
				want[g[1]] = strings.Join(strings.Fields(g[2]), " ")
			}
		}
		got := decodeWords(t, code, start)
		for i := uint64(0); i < n; i++ {
			a := fmt.Sprintf("%x", start+4*i)
			total++
			if got[i] == want[a] {
				equal++
			} else if total-equal <= 10 {
				t.Errorf("%s: kcrash %q, objdump %q", a, got[i], want[a])
			}
		}
	}
	t.Logf("arm64 vmlinux .text, 4 windows: %d/%d words equal objdump's text", equal, total)
	if equal != total {
		t.Errorf("%d words differ", total-equal)
	}
}

// decodeWords disassembles words at addr with internal/disasm (the decoder
// kcrash decode and vmcore dis use), in objdump's whitespace-normalized text.
func decodeWords(t *testing.T, code []byte, addr uint64) []string {
	t.Helper()
	insts, err := disasm.ARM64(code, 0, addr)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]string, len(insts))
	for i, in := range insts {
		out[i] = strings.Join(strings.Fields(in.Text), " ")
	}
	return out
}
