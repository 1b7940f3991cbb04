package kernel

import (
	"debug/elf"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// The symbol table of a real ELF file (a Go program built with its symbol
// table: thousands of symbols) against debug/elf's reading of it: every name found
// by Symbol is the one debug/elf lists (before and after the by-name map is
// built), SymbolAt finds a symbol at each address, and missing names stay
// missing.
func TestSymbolTableAgainstDebugElf(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "main.go")
	if err := os.WriteFile(src, []byte("package main\n\nimport \"fmt\"\n\nfunc main() { fmt.Println(\"x\") }\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	exe := filepath.Join(dir, "x")
	build := exec.Command("go", "build", "-o", exe, src)
	build.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOFLAGS=")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	ef, err := elf.Open(exe)
	if err != nil {
		t.Fatal(err)
	}
	defer ef.Close()
	if _, ok := arches[ef.Machine]; !ok {
		t.Fatalf("test binary's machine %v has no Arch", ef.Machine)
	}
	all, err := ef.Symbols()
	if err != nil {
		t.Fatal(err)
	}
	// The reference: functions and objects over untyped symbols, else the first.
	want := map[string]elf.Symbol{}
	for _, s := range all {
		typ := elf.ST_TYPE(s.Info)
		if (typ != elf.STT_FUNC && typ != elf.STT_OBJECT && typ != elf.STT_NOTYPE) ||
			s.Section == elf.SHN_UNDEF || s.Section == elf.SHN_ABS || s.Name == "" || s.Name[0] == '$' {
			continue
		}
		if old, ok := want[s.Name]; !ok || (elf.ST_TYPE(old.Info) == elf.STT_NOTYPE && typ != elf.STT_NOTYPE) {
			want[s.Name] = s
		}
	}
	if len(want) < 3*scansBeforeIndex {
		t.Fatalf("only %d symbols in %s", len(want), exe)
	}
	v, err := OpenVmlinux(exe)
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()

	check := func(name string) {
		t.Helper()
		s, err := v.Symbol(name)
		w := want[name]
		if err != nil || s.Addr != w.Value || s.Size != w.Size || s.Type != elf.ST_TYPE(w.Info) {
			t.Errorf("Symbol(%s) = %+v, %v; want addr %#x size %d type %v", name, s, err, w.Value, w.Size, elf.ST_TYPE(w.Info))
		}
	}
	missing := func(name string) {
		t.Helper()
		if s, err := v.Symbol(name); !errors.Is(err, ErrNoSymbol) {
			t.Errorf("Symbol(%q) = %+v, %v; want ErrNoSymbol", name, s, err)
		}
	}
	n := 0
	for name := range want {
		check(name) // the first ones by scanning, later ones from the map
		if n++; n == 3*scansBeforeIndex {
			break
		}
	}
	missing("kcrash_no_such_symbol")
	missing("kcrash_no_such_symbol") // remembered
	missing("")
	if v.byNam == nil {
		t.Error("no by-name map after many lookups")
	}
	for name, w := range want {
		check(name)
		s, ok := v.SymbolAt(w.Value)
		if !ok || s.Addr != w.Value {
			t.Errorf("SymbolAt(%#x) = %+v, %v; want a symbol at that address (%s)", w.Value, s, ok, name)
		}
	}
	// SymbolAt by scanning .symtab (the first lookups) equals SymbolAt by the table.
	n = 0
	for _, w := range want {
		for _, a := range []uint64{w.Value, w.Value + 1, w.Value - 1, w.Value + w.Size} {
			got, gok := v.scanSymbolAt(a)
			tab, tok := v.symbolAt(a) // v's table is loaded by now
			if got != tab || gok != tok {
				t.Errorf("scanSymbolAt(%#x) = %+v, %v; the table says %+v, %v", a, got, gok, tab, tok)
			}
		}
		if n++; n == 2000 {
			break
		}
	}
	syms := v.Symbols()
	for i := 1; i < len(syms); i++ {
		if syms[i].Addr < syms[i-1].Addr {
			t.Fatalf("Symbols not sorted at %d: %#x after %#x", i, syms[i].Addr, syms[i-1].Addr)
		}
	}
}
