package symbolize

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func need(t *testing.T, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("%s not installed", tool)
			}
			t.Skipf("%s not installed", tool)
		}
	}
}

// build compiles testdata/prog.c with the given flags.
func build(t *testing.T, out string, flags ...string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), out)
	args := append([]string{"-O2", "-o", p, "testdata/prog.c"}, flags...)
	if b, err := exec.Command("gcc", args...).CombinedOutput(); err != nil {
		t.Fatalf("gcc %v: %v\n%s", args, err, b)
	}
	return p
}

func addr2line(t *testing.T, bin, section string, addr uint64) []Location {
	t.Helper()
	args := []string{"-f", "-i", "-e", bin}
	if section != "" {
		args = append(args, "-j", section)
	}
	out, err := exec.Command("addr2line", append(args, fmt.Sprintf("%#x", addr))...).Output()
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	var locs []Location
	for i := 0; i+1 < len(lines); i += 2 {
		fl := lines[i+1]
		if j := strings.Index(fl, " (discriminator"); j > 0 {
			fl = fl[:j]
		}
		f, l, _ := strings.Cut(fl, ":")
		n := 0
		fmt.Sscan(l, &n)
		locs = append(locs, Location{Function: lines[i], File: f, Line: n})
	}
	return locs
}

// TestLocateAgainstAddr2line compiles a program with inline chains as an executable and
// as a relocatable object (the shape of a .ko), in DWARF 4 and 5, with and without
// compressed debug sections, and compares every instruction address of every function
// with addr2line -fi.
func TestLocateAgainstAddr2line(t *testing.T) {
	need(t, "gcc", "addr2line")
	for _, tc := range []struct {
		name  string
		flags []string
	}{
		{"exec-dwarf5", []string{"-g", "-gdwarf-5"}},
		{"exec-dwarf4", []string{"-g", "-gdwarf-4"}},
		{"exec-compressed", []string{"-g", "-gz"}},
		{"reloc-dwarf5", []string{"-g", "-c"}},
		{"reloc-dwarf4", []string{"-g", "-gdwarf-4", "-c"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bin := build(t, "prog", tc.flags...)
			b, err := Open(bin)
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			checked, inlined := 0, 0
			for _, s := range b.Symbols() {
				if s.Size == 0 || !strings.Contains("walk cold_path main", s.Name) {
					continue
				}
				sec, base, _ := b.SectionFor(s.Addr)
				for a := s.Addr; a < s.Addr+s.Size; a += 3 {
					got, err := b.Locate(a)
					if err != nil {
						t.Fatalf("%s+%#x: %v", s.Name, a-s.Addr, err)
					}
					var want []Location
					if b.Relocatable {
						want = addr2line(t, bin, sec, a-base)
					} else {
						want = addr2line(t, bin, "", a)
					}
					if len(got) != len(want) {
						t.Fatalf("%s+%#x: %v, addr2line %v", s.Name, a-s.Addr, got, want)
					}
					for i := range want {
						if got[i].Function != want[i].Function || got[i].Line != want[i].Line ||
							filepath.Base(got[i].File) != filepath.Base(want[i].File) {
							t.Fatalf("%s+%#x: %v, addr2line %v", s.Name, a-s.Addr, got, want)
						}
					}
					checked++
					if len(got) > 1 {
						inlined++
					}
				}
			}
			if checked < 20 || inlined == 0 {
				t.Errorf("checked %d addresses, %d with inline frames", checked, inlined)
			}
		})
	}
}

func TestNoDebugInfo(t *testing.T) {
	need(t, "gcc")
	bin := build(t, "prog", "-s")
	b, err := Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if _, err := b.Locate(0x1000); !errors.Is(err, ErrNoDebugInfo) {
		t.Errorf("Locate on a stripped binary: %v, want ErrNoDebugInfo", err)
	}
}

// TestTypesAndVars checks struct members by offset and the variables live at a PC.
func TestTypesAndVars(t *testing.T) {
	need(t, "gcc")
	bin := build(t, "prog", "-g")
	b, err := Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	addr, _, err := b.Resolve("walk", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	vars, err := b.VarsAt(addr)
	if err != nil {
		t.Fatal(err)
	}
	var o *Var
	for i := range vars {
		if vars[i].Name == "o" {
			o = &vars[i]
		}
	}
	if o == nil || !o.Param || o.Kind != LocReg || o.Reg != 5 { // System V: first argument in %rdi (DWARF 5)
		t.Fatalf("parameter o at walk's entry: %+v (all: %+v)", o, vars)
	}
	pt, ok := Pointee(o.Type)
	if !ok {
		t.Fatalf("o's type %v is not a pointer", o.Type)
	}
	for off, want := range map[int64]string{0: "flags", 8: "in", 16: "pad", 40: "embedded.a", 48: "embedded.next"} {
		m, _, exact, ok := MemberAt(pt, off)
		if !ok || m != want || !exact {
			t.Errorf("member at %d of %s: %q exact=%v, want %q", off, TypeName(pt), m, exact, want)
		}
	}
}

// FuzzOpen: hostile ELF files never panic Open, Locate or VarsAt.
func FuzzOpen(f *testing.F) {
	f.Add([]byte("\x7fELF\x02\x01\x01"))
	f.Fuzz(func(t *testing.T, data []byte) {
		p := filepath.Join(t.TempDir(), "f")
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		b, err := Open(p)
		if err != nil {
			return
		}
		defer b.Close()
		for _, s := range b.Symbols() {
			b.Locate(s.Addr)
			b.VarsAt(s.Addr)
		}
	})
}

// FuzzAranges: .debug_aranges parsing on arbitrary bytes.
func FuzzAranges(f *testing.F) {
	f.Add([]byte{0x2c, 0, 0, 0, 2, 0, 0, 0, 0, 0, 8, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		parseAranges(data, binary.LittleEndian)
	})
}
