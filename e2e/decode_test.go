package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kcrash/kcrash/internal/decode"
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
