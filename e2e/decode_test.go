package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/kcrash/kcrash/internal/decode"
	"github.com/kcrash/kcrash/internal/disasm"
	"github.com/kcrash/kcrash/internal/lab"
	"github.com/kcrash/kcrash/internal/oops"
	"github.com/kcrash/kcrash/internal/symbolize"
)

// labDecoder opens the lab's vmlinux and module debug info: the Debian -dbg modules
// and the lab's own lkdtm.ko (linked into a directory both live under).
func labDecoder(t *testing.T, m *lab.Manifest) *decode.Decoder {
	t.Helper()
	mods := t.TempDir()
	if err := os.Symlink(m.Path(m.Kernel.DebugDir), filepath.Join(mods, "debug")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(m.Path(m.Kernel.LKDTM), filepath.Join(mods, "lkdtm.ko")); err != nil {
		t.Fatal(err)
	}
	d, err := decode.New(decode.Options{Vmlinux: m.Path(m.Kernel.Vmlinux), ModulesDir: mods})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

// addr2line runs binutils' addr2line -fi once on many addresses of a binary
// (section-relative for a .ko) and returns each address's locations, innermost first.
func addr2line(t *testing.T, b *symbolize.Binary, addrs []uint64) map[uint64][]symbolize.Location {
	t.Helper()
	out := map[uint64][]symbolize.Location{}

	groups := map[string][]uint64{}
	for _, a := range addrs {
		sec := ""
		if b.Relocatable {
			s, _, ok := b.SectionFor(a)
			if !ok {
				continue
			}
			sec = s
		}
		groups[sec] = append(groups[sec], a)
	}
	for sec, as := range groups {
		args := []string{"-a", "-f", "-i", "-e", b.Path}
		var base uint64
		if sec != "" {
			args = append(args, "-j", sec)
			_, base, _ = b.SectionFor(as[0])
		}
		for _, a := range as {
			args = append(args, fmt.Sprintf("%#x", a-base))
		}
		res, err := exec.Command("addr2line", args...).Output()
		if err != nil {
			t.Fatalf("addr2line: %v", err)
		}
		var cur uint64
		lines := strings.Split(strings.TrimRight(string(res), "\n"), "\n")
		for i := 0; i < len(lines); i++ {
			l := lines[i]
			if strings.HasPrefix(l, "0x") {
				var v uint64
				fmt.Sscanf(l, "0x%x", &v)
				cur = v + base
				out[cur] = nil
				continue
			}
			if i+1 >= len(lines) {
				break
			}
			fl := lines[i+1]
			i++
			if j := strings.Index(fl, " (discriminator"); j > 0 {
				fl = fl[:j]
			}
			file, line, _ := strings.Cut(fl, ":")
			n := 0
			fmt.Sscan(line, &n)
			out[cur] = append(out[cur], symbolize.Location{Function: l, File: file, Line: n})
		}
	}
	return out
}

// samePath compares source paths that one tool prints absolute and the other relative
// to the build directory: one must be a path suffix of the other.
func samePath(a, b string) bool {
	if a == b {
		return true
	}
	if len(a) < len(b) {
		a, b = b, a
	}
	return strings.HasSuffix(a, "/"+b)
}

// TestDecodeAgainstAddr2line symbolizes every frame of every lab report (IP and call
// trace, vmlinux and modules) and compares function, file and line of every inline
// level with binutils addr2line -fi on the same address.
func TestDecodeAgainstAddr2line(t *testing.T) {
	m := manifest(t)
	if _, err := exec.LookPath("addr2line"); err != nil {
		needLab(t, "addr2line (binutils) is not installed")
	}
	d := labDecoder(t, m)
	var frames, agree, levels int
	var diffs []string
	type query struct {
		entry string
		f     decode.Frame
		b     *symbolize.Binary
	}
	var qs []query
	for _, e := range m.Entries {
		a := e.Artifact(lab.ArtSerial, "")
		if a == nil {
			continue
		}
		data, err := os.ReadFile(m.Path(a.Path))
		if err != nil {
			t.Errorf("%s: %v", e.Name, err)
			continue
		}
		for _, r := range oops.Parse(data) {
			res := d.Decode(r)
			all := res.Frames
			if res.IP != nil {
				all = append([]decode.Frame{*res.IP}, all...)
			}
			for _, f := range all {
				frames++
				if f.Err != "" {
					diffs = append(diffs, fmt.Sprintf("%s: %s: %s", e.Name, f.Raw, f.Err))
					continue
				}
				b := d.Vmlinux()
				if f.Module != "" {
					if b, err = d.Module(f.Module); err != nil {
						t.Fatal(err)
					}
				}
				qs = append(qs, query{e.Name, f, b})
			}
		}
	}
	byBin := map[*symbolize.Binary][]uint64{}
	for _, q := range qs {
		byBin[q.b] = append(byBin[q.b], q.f.LookupAddr)
	}
	oracle := map[*symbolize.Binary]map[uint64][]symbolize.Location{}
	for b, as := range byBin {
		oracle[b] = addr2line(t, b, as)
	}
	for _, q := range qs {
		f := q.f
		want := oracle[q.b][f.LookupAddr]
		ok := len(want) == len(f.Locations)
		for i := 0; ok && i < len(want); i++ {
			g := f.Locations[i]
			ok = g.Function == want[i].Function && g.Line == want[i].Line && samePath(g.File, want[i].File)
		}
		levels += len(want)
		if ok {
			agree++
			continue
		}
		diffs = append(diffs, fmt.Sprintf("%s: %s @%#x: kcrash %v, addr2line %v", q.entry, f.Raw, f.LookupAddr, f.Locations, want))
	}
	for _, s := range diffs {
		t.Log(s)
	}
	t.Logf("decode: %d/%d frames (%d inline levels) equal addr2line -fi", agree, frames, levels)
	fmt.Printf("decode vs addr2line: %d/%d frames agree (%d inline levels)\n", agree, frames, levels)
	if frames < 100 || agree != frames {
		t.Errorf("%d of %d frames differ from addr2line", frames-agree, frames)
	}
}

// TestExplainPointerChain builds an oops in a real function of the Debian vmlinux:
// skb_find_text() starts with `config->ops->get_pattern_len(config)` (net/core/skbuff.c):
// it loads config->ops (`mov (%rcx),%rax`), then the function pointer
// ops->get_pattern_len (`mov 0x28(%rax),%rax`).
// With config->ops NULL the second load faults at 0x28. The layout was checked with gdb
// (`ptype /o struct ts_config`: ops at 0; `ptype /o struct ts_ops`: get_pattern_len at
// 40) and the code with objdump. The explanation must name the chain and the member.
func TestExplainPointerChain(t *testing.T) {
	m := manifest(t)
	d := labDecoder(t, m)
	vm := d.Vmlinux()
	fn, sym, err := vm.Resolve("skb_find_text", 0x32, 0)
	if err != nil {
		t.Fatal(err)
	}
	before, err := vm.Text(fn-42, 42)
	if err != nil {
		t.Fatal(err)
	}
	after, err := vm.Text(fn, 21)
	if err != nil {
		t.Fatal(err)
	}
	if after[0] != 0x48 || after[1] != 0x8b || after[2] != 0x40 || after[3] != 0x28 {
		t.Fatalf("skb_find_text+0x32 is % x, not mov 0x28(%%rax),%%rax: the kernel changed; pick another function", after[:4])
	}
	var code strings.Builder
	for _, c := range before {
		fmt.Fprintf(&code, "%02x ", c)
	}
	fmt.Fprintf(&code, "<%02x>", after[0])
	for _, c := range after[1:] {
		fmt.Fprintf(&code, " %02x", c)
	}
	log := fmt.Sprintf(`[  100.000000] BUG: kernel NULL pointer dereference, address: 0000000000000028
[  100.000001] #PF: supervisor read access in kernel mode
[  100.000002] #PF: error_code(0x0000) - not-present page
[  100.000003] Oops: 0000 [#1] PREEMPT SMP NOPTI
[  100.000004] CPU: 1 PID: 4242 Comm: test Not tainted %s #1
[  100.000005] RIP: 0010:skb_find_text+0x32/%#x
[  100.000006] Code: %s
[  100.000007] RSP: 0018:ffffc90000a3bd40 EFLAGS: 00010246
[  100.000008] RAX: 0000000000000000 RBX: ffff888004a0c000 RCX: ffff888004a0c000
[  100.000009] RDX: 0000000000000003 RSI: 0000000000000000 RDI: ffff888004a0c000
[  100.000010] RBP: 0000000000000003 R08: 0000000000000000 R09: 0000000000000000
[  100.000011] R10: 0000000000000000 R11: 0000000000000000 R12: ffff888003b1e200
[  100.000012] R13: 0000000000000000 R14: ffff888003b1e200 R15: 0000000000000000
[  100.000013] FS:  0000000000000000(0000) GS:ffff888007b00000(0000) knlGS:0000000000000000
[  100.000014] CS:  0010 DS: 0000 ES: 0000 CR0: 0000000080050033
[  100.000015] CR2: 0000000000000028 CR3: 0000000002c28000 CR4: 0000000000750ee0
[  100.000016] Call Trace:
[  100.000017]  <TASK>
[  100.000018]  xt_string_mt+0x50/0x80
[  100.000019]  </TASK>
`, m.Kernel.Release, sym.Size, code.String())
	reps := oops.Parse([]byte(log))
	if len(reps) != 1 {
		t.Fatalf("%d reports", len(reps))
	}
	e := d.Decode(reps[0]).Explanation
	var steps []string
	for _, s := range e.Steps {
		steps = append(steps, s.Text)
	}
	all := strings.Join(steps, "\n")
	if e.Chain != "config->ops" || !strings.Contains(e.Member, "config->ops->get_pattern_len") {
		t.Errorf("chain %q, member %q, want config->ops and &config->ops->get_pattern_len\n%s", e.Chain, e.Member, all)
	}
	if e.Access != "read" || e.Address == nil || *e.Address != 0x28 || e.MatchesCR2 == nil || !*e.MatchesCR2 || e.Cause != "near-null" {
		t.Errorf("access %q address %v matches %v cause %q\n%s", e.Access, e.Address, e.MatchesCR2, e.Cause, all)
	}
	if !strings.HasPrefix(e.Source, "skb_find_text (net/core/skbuff.c:") {
		t.Errorf("source %q, want skb_find_text in net/core/skbuff.c", e.Source)
	}
	t.Logf("explanation: %s\n%s", e.Summary, all)
}

// BenchmarkWarmDecode decodes every lab report again and again with one Decoder (the
// long-running collector's case) and reports frames per second.
func BenchmarkWarmDecode(b *testing.B) {
	path, err := lab.FindManifest(lab.DefaultDir())
	if err != nil {
		b.Skip(err)
	}
	m, err := lab.LoadManifest(path)
	if err != nil {
		b.Skip(err)
	}
	mods := b.TempDir()
	os.Symlink(m.Path(m.Kernel.DebugDir), filepath.Join(mods, "debug"))
	os.Symlink(m.Path(m.Kernel.LKDTM), filepath.Join(mods, "lkdtm.ko"))
	d, err := decode.New(decode.Options{Vmlinux: m.Path(m.Kernel.Vmlinux), ModulesDir: mods})
	if err != nil {
		b.Fatal(err)
	}
	defer d.Close()
	var reports []*oops.Report
	frames := 0
	for _, e := range m.Entries {
		if a := e.Artifact(lab.ArtSerial, ""); a != nil {
			data, _ := os.ReadFile(m.Path(a.Path))
			for _, r := range oops.Parse(data) {
				reports = append(reports, r)
				frames += len(r.Frames) + 1
			}
		}
	}
	for _, r := range reports { // warm the indexes
		d.Decode(r)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for _, r := range reports {
			d.Decode(r)
		}
	}
	b.ReportMetric(float64(frames*b.N)/b.Elapsed().Seconds(), "frames/s")
}

// TestDecodeModuleByBuildID: a frame printed with CONFIG_STACKTRACE_BUILD_ID's
// "[module buildid]" is resolved by the build ID even when the name does not match.
func TestDecodeModuleByBuildID(t *testing.T) {
	m := manifest(t)
	d := labDecoder(t, m)
	b, err := d.Module("lkdtm")
	if err != nil || b.BuildID == "" {
		t.Fatalf("lkdtm: %v (build ID %q)", err, b.BuildID)
	}
	log := "[    1.0] BUG: kernel NULL pointer dereference, address: 0000000000000000\n" +
		"[    1.0] RIP: 0010:lkdtm_ACCESS_NULL+0x14/0x53 [renamed_lkdtm " + b.BuildID + "]\n" +
		"[    1.0] Call Trace:\n[    1.0]  <TASK>\n[    1.0]  direct_entry.cold+0x18/0x24 [renamed_lkdtm " + b.BuildID + "]\n[    1.0]  </TASK>\n"
	reps := oops.Parse([]byte(log))
	if len(reps) != 1 {
		t.Fatalf("%d reports", len(reps))
	}
	res := d.Decode(reps[0])
	if res.IP == nil || res.IP.Err != "" || len(res.IP.Locations) == 0 || res.IP.Locations[0].Function != "lkdtm_ACCESS_NULL" {
		t.Fatalf("IP %+v", res.IP)
	}
	if len(res.Frames) != 1 || res.Frames[0].Err != "" || res.Frames[0].Locations[0].Function != "direct_entry" {
		t.Fatalf("frames %+v", res.Frames)
	}
}

var objdumpTarget = regexp.MustCompile(`(?:0x)?([0-9a-f]{16})|# (?:0x)?([0-9a-f]+)`)

// TestDisasmVmlinuxAgainstObjdump disassembles whole functions of the Debian vmlinux
// (every 500th function symbol, from its start) and compares every instruction with
// objdump -d on the same bytes at the same addresses.
func TestDisasmVmlinuxAgainstObjdump(t *testing.T) {
	m := manifest(t)
	vm, err := symbolize.Open(m.Path(m.Kernel.Vmlinux))
	if err != nil {
		t.Fatal(err)
	}
	defer vm.Close()
	var total, agree, funcs int
	var diffs []string
	for i, s := range vm.Symbols() {
		if i%500 != 0 || s.Size == 0 || s.Size > 4096 {
			continue
		}
		code, err := vm.Text(s.Addr, s.Size)
		if err != nil || len(code) == 0 || code[0] == 0 {
			continue
		}
		ours, err := disasm.X86(code, 0, s.Addr, nil)
		if err != nil {
			continue
		}
		out, err := exec.Command("objdump", "-d", "-z", fmt.Sprintf("--start-address=%#x", s.Addr),
			fmt.Sprintf("--stop-address=%#x", s.Addr+s.Size), m.Path(m.Kernel.Vmlinux)).Output()
		if err != nil {
			t.Fatalf("objdump: %v", err)
		}
		ref := map[uint64]string{}
		for _, l := range strings.Split(string(out), "\n") {
			var a uint64
			if _, err := fmt.Sscanf(strings.TrimSpace(l), "%x:", &a); err != nil {
				continue
			}
			parts := strings.SplitN(l, "\t", 3)
			if len(parts) == 3 {
				ref[a] = parts[2]
			}
		}
		funcs++
		for _, in := range ours {
			want, ok := ref[in.Addr]
			if !ok {
				continue // objdump continued an instruction's bytes on a second line
			}
			total++
			// With symbols objdump prints branch targets and RIP-relative comments as
			// "ffffffff81000000 <sym+off>"; on raw bytes (and in kcrash) as "0xffffffff81000000".
			w := objdumpTarget.ReplaceAllString(strings.Join(strings.Fields(want), " "), "$1$2")
			if j := strings.Index(w, " <"); j > 0 {
				w = w[:j]
			}
			g := objdumpTarget.ReplaceAllString(strings.Join(strings.Fields(in.Text), " "), "$1$2")
			if w == g {
				agree++
			} else if len(diffs) < 40 {
				diffs = append(diffs, fmt.Sprintf("%s+%#x % x: kcrash %q, objdump %q", s.Name, in.Addr-s.Addr, in.Bytes, in.Text, want))
			}
		}
	}
	for _, d := range diffs {
		t.Log(d)
	}
	t.Logf("vmlinux: %d functions, %d/%d instructions equal objdump's", funcs, agree, total)
	fmt.Printf("disasm vs objdump on vmlinux: %d/%d instructions in %d functions\n", agree, total, funcs)
	if funcs < 50 || agree != total {
		t.Errorf("%d of %d instructions differ from objdump", total-agree, total)
	}
}
