package disasm

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"flag"
	"fmt"
	"go/format"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "regenerate testdata/arm64/objdump.golden with aarch64-linux-gnu-objdump")

// arm64Code is one Code: line of testdata/arm64/code.txt.
type arm64Code struct {
	source string
	trap   int // byte index of the marked word, -1 without a marker
	code   []byte
	base   uint64 // the address given to the first byte (objdump's --adjust-vma)
}

func loadArm64Codes(t *testing.T) []arm64Code {
	t.Helper()
	data, err := os.ReadFile("testdata/arm64/code.txt")
	if err != nil {
		t.Fatal(err)
	}
	var out []arm64Code
	for n, line := range strings.Split(string(data), "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Split(line, "\t")
		if len(f) != 3 {
			t.Fatalf("code.txt:%d: want 3 tab-separated fields", n+1)
		}
		trap, err := strconv.Atoi(f[1])
		if err != nil {
			t.Fatalf("code.txt:%d: %v", n+1, err)
		}
		code, err := hex.DecodeString(f[2])
		if err != nil || len(code)%4 != 0 {
			t.Fatalf("code.txt:%d: bad hex (%v)", n+1, err)
		}
		// A kernel-like address per line, 64 KiB apart, so that branch and adrp
		// targets are absolute kernel addresses as in a real report.
		base := uint64(0xffff800008010000) + uint64(len(out))<<16 + 0x7a0
		out = append(out, arm64Code{source: f[0], trap: trap, code: code, base: base})
	}
	return out
}

// objdumpA64 runs aarch64-linux-gnu-objdump on code at vma and returns its
// instruction text by address (the fields after the encoding, tabs kept).
func objdumpA64(t *testing.T, tool string, code []byte, vma uint64) map[uint64]string {
	t.Helper()
	f := filepath.Join(t.TempDir(), "code.bin")
	if err := os.WriteFile(f, code, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(tool, "-D", "-z", "-b", "binary", "-m", "aarch64", fmt.Sprintf("--adjust-vma=%#x", vma), f)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s: %v: %s", tool, err, stderr.Bytes())
	}
	res := map[uint64]string{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		m := objdumpLine.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		a, _ := strconv.ParseUint(m[1], 16, 64)
		res[a] = strings.TrimRight(m[3], " \t")
	}
	return res
}

// normA64 collapses whitespace, as the comparison is of text, not of columns.
func normA64(s string) string { return strings.Join(strings.Fields(s), " ") }

// TestARM64AgainstObjdump decodes every word of the arm64 Code: lines of
// testdata/arm64/code.txt and compares the text with what binutils'
// aarch64-linux-gnu-objdump printed for the same word at the same address
// (testdata/arm64/objdump.golden; -update regenerates it when the tool is
// installed). Every instruction must be equal.
func TestARM64AgainstObjdump(t *testing.T) {
	codes := loadArm64Codes(t)
	golden := "testdata/arm64/objdump.golden"
	if *update {
		tool, err := exec.LookPath("aarch64-linux-gnu-objdump")
		if err != nil {
			t.Fatal("-update needs aarch64-linux-gnu-objdump (binutils-aarch64-linux-gnu)")
		}
		var b strings.Builder
		ver, _ := exec.Command(tool, "--version").Output()
		v, _, _ := strings.Cut(string(ver), "\n")
		fmt.Fprintf(&b, "# %s -D -z -b binary -m aarch64 --adjust-vma=BASE, one line per word: ADDRESS TAB WORD TAB TEXT\n# %s\n", filepath.Base(tool), v)
		for _, c := range codes {
			ref := objdumpA64(t, tool, c.code, c.base)
			for off := 0; off+4 <= len(c.code); off += 4 {
				a := c.base + uint64(off)
				fmt.Fprintf(&b, "%x\t%08x\t%s\n", a, le32(c.code[off:]), ref[a])
			}
		}
		if err := os.WriteFile(golden, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	data, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	want := map[uint64]string{}
	for _, line := range strings.Split(string(data), "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.SplitN(line, "\t", 3)
		if len(f) != 3 {
			t.Fatalf("golden line %q", line)
		}
		a, _ := strconv.ParseUint(f[0], 16, 64)
		want[a] = f[2]
	}
	total, equal := 0, 0
	for _, c := range codes {
		trap, trapAddr := c.trap, c.base+uint64(c.trap)
		if trap < 0 {
			trap, trapAddr = 0, c.base
		}
		insts, err := ARM64(c.code, trap, trapAddr)
		if err != nil {
			t.Errorf("%s: %v", c.source, err)
			continue
		}
		for _, in := range insts {
			total++
			w, ok := want[in.Addr]
			if !ok {
				t.Errorf("%s: no golden line for %#x", c.source, in.Addr)
				continue
			}
			if normA64(in.Text) == normA64(w) {
				equal++
				continue
			}
			t.Errorf("%s: %08x at %#x: kcrash %q, objdump %q", c.source, le32(in.Bytes), in.Addr, in.Text, w)
		}
	}
	t.Logf("arm64 Code: words of %d lines: %d/%d instructions equal objdump's text", len(codes), equal, total)
	if len(codes) < 20 {
		t.Errorf("only %d Code: lines in testdata/arm64/code.txt", len(codes))
	}
}

func le32(b []byte) uint32 {
	return uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16 | uint32(b[3])<<24
}

// a64SysregWords are MRS x0 and MSR x0 of every op0=2/3 system register
// encoding, in key order (see a64SysregName).
func a64SysregWords() (mrs, msr []byte, keys []uint16) {
	for key := 0; key < 1<<15; key++ {
		w := uint32(0xd5300000) | uint32(key)<<5
		mrs = binary.LittleEndian.AppendUint32(mrs, w)
		msr = binary.LittleEndian.AppendUint32(msr, w&^(1<<21))
		keys = append(keys, uint16(key))
	}
	return mrs, msr, keys
}

// objdumpSysregs returns objdump's register name of every key for MRS and MSR
// ("s3_…" when it has none).
func objdumpSysregs(t *testing.T, tool string) (read, write map[uint16]string) {
	mrs, msr, keys := a64SysregWords()
	name := func(code []byte, regArg int) map[uint16]string {
		ref := objdumpA64(t, tool, code, 0)
		out := map[uint16]string{}
		for i, k := range keys {
			f := strings.Split(strings.SplitN(ref[uint64(4*i)], "\t", 2)[1], ", ")
			out[k] = f[regArg]
		}
		return out
	}
	return name(mrs, 1), name(msr, 0)
}

// TestA64SysregTable checks a64sysregs_table.go against objdump's names of all
// 32768 encodings (-update rewrites it).
func TestA64SysregTable(t *testing.T) {
	tool, err := exec.LookPath("aarch64-linux-gnu-objdump")
	if err != nil {
		if os.Getenv("CI") == "true" || *update {
			t.Fatal("aarch64-linux-gnu-objdump (binutils-aarch64-linux-gnu) not installed")
		}
		t.Skip("aarch64-linux-gnu-objdump not installed")
	}
	read, write := objdumpSysregs(t, tool)
	if *update {
		var b strings.Builder
		ver, _ := exec.Command(tool, "--version").Output()
		v, _, _ := strings.Cut(string(ver), "\n")
		fmt.Fprintf(&b, "// Code generated by TestA64SysregTable -update from %s; DO NOT EDIT.\n\npackage disasm\n\n", v)
		b.WriteString("// a64Sysregs names system registers by op0-2:op1:CRn:CRm:op2 (15 bits), as objdump prints them.\nvar a64Sysregs = map[uint16]string{\n")
		var keys []int
		for k := range read {
			keys = append(keys, int(k))
		}
		sort.Ints(keys)
		n := 0
		for _, k := range keys {
			if name := read[uint16(k)]; !strings.HasPrefix(name, "s2_") && !strings.HasPrefix(name, "s3_") {
				sep := " "
				if n%4 == 0 {
					sep = "\n\t"
				}
				fmt.Fprintf(&b, "%s%#04x: %q,", sep, k, name)
				n++
			}
		}
		b.WriteString("\n")
		b.WriteString("}\n\n// a64SysregsWrite are the names MSR gives where they differ from MRS's.\nvar a64SysregsWrite = map[uint16]string{\n")
		for _, k := range keys {
			if n := write[uint16(k)]; n != read[uint16(k)] {
				fmt.Fprintf(&b, "\t%#04x: %q,\n", k, n)
			}
		}
		b.WriteString("}\n")
		src, err := format.Source([]byte(b.String()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile("a64sysregs_table.go", src, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	bad := 0
	for k, want := range read {
		s := fmt.Sprintf("s%d_%d_c%d_c%d_%d", k>>14+2, k>>11&7, k>>7&15, k>>3&15, k&7)
		got := a64SysregName(s, false)
		if got == "" {
			got = s
		}
		gotW := a64SysregName(s, true)
		if gotW == "" {
			gotW = s
		}
		if got != want || gotW != write[k] {
			bad++
			if bad < 10 {
				t.Errorf("%s: kcrash %q/%q, objdump %q/%q", s, got, gotW, want, write[k])
			}
		}
	}
	if bad > 0 {
		t.Errorf("%d system register names differ from objdump's (go test -update regenerates the table)", bad)
	}
}

// a64ClassWords are encodings of every class a64Text decodes beyond arm64asm or
// prints otherwise (udf, SVE register loads and stores, STNT1, the LSE atomics,
// CAS, CASP, the MTE tag instructions, hints, conditions), fields varied over
// their edge values.
func a64ClassWords() []uint32 {
	var ws []uint32
	ws = append(ws, 0x00000000, 0x0000ffff, 0x00001234)
	for _, top := range []uint32{0x85800000, 0xe5800000} {
		for _, imm := range []int32{0, 1, -1, 255, -256} {
			for _, rn := range []uint32{0, 31} {
				enc := (uint32(imm)&0x1ff>>3)<<16 | (uint32(imm)&7)<<10 | rn<<5
				ws = append(ws, top|enc|2<<13|5, top|enc|9, top|enc|1<<4|9)
			}
		}
	}
	for msz := uint32(0); msz < 4; msz++ {
		for esz := uint32(0); esz < 2; esz++ {
			for _, rm := range []uint32{0, 23, 31} {
				ws = append(ws, 0xe4002000|msz<<23|esz<<22|rm<<16|4<<10|3<<5|5)
			}
		}
	}
	for size := uint32(0); size < 4; size++ {
		for ar := uint32(0); ar < 4; ar++ {
			for o3opc := uint32(0); o3opc < 16; o3opc++ {
				for _, rt := range []uint32{2, 31} {
					ws = append(ws, size<<30|0x38200000|ar<<22|1<<16|o3opc<<12|3<<5|rt)
				}
			}
			ws = append(ws, size<<30|0x08a07c00|(ar>>1)<<22|4<<16|(ar&1)<<15|31<<5|2)
		}
	}
	for sz := uint32(0); sz < 2; sz++ {
		for lo := uint32(0); lo < 4; lo++ {
			ws = append(ws, sz<<30|0x08207c00|(lo>>1)<<22|4<<16|(lo&1)<<15|3<<5|6, sz<<30|0x08207c00|5<<16|3<<5|6)
		}
	}
	for opc := uint32(0); opc < 4; opc++ {
		for op2 := uint32(0); op2 < 4; op2++ {
			for _, imm := range []uint32{0, 1, 0x1ff} {
				for _, rt := range []uint32{4, 31} {
					ws = append(ws, 0xd9200000|opc<<22|imm<<12|op2<<10|31<<5|rt, 0xd9200000|opc<<22|imm<<12|op2<<10|1<<5|rt)
				}
			}
		}
	}
	for i := uint32(0); i < 128; i++ {
		ws = append(ws, 0xd503201f|i<<5)
	}
	for c := uint32(0); c < 16; c++ {
		ws = append(ws, 0x54000080|c, 0x1a800000|c<<12|1<<16|2<<5|3, 0x7a421004&^(0xf<<12)|c<<12)
	}
	ws = append(ws, 0xd4000001, 0xd4000002, 0xd4000003, 0xd4001fe3, 0xd41fffe2, 0xd50330ff)
	for op := uint32(0); op < 64; op++ {
		for _, crm := range []uint32{0, 1, 2, 15} {
			ws = append(ws, 0xd500401f|op>>3<<16|crm<<8|(op&7)<<5)
		}
	}
	ws = append(ws, 0xd5031015, 0xd5031035, 0xd503101f, 0x2518e400, 0x2518e40f, 0x25289000, 0x252891e0,
		0x2519f000, 0x2519f00f, 0x04bf5020, 0x04bf57e0, 0x04bf5fff)
	for _, op := range []uint32{0<<11 | 7<<7 | 1<<3, 0<<11 | 7<<7 | 5<<3, 3<<11 | 7<<7 | 5<<3 | 1, 0<<11 | 7<<7 | 8<<3,
		0<<11 | 7<<7 | 8<<3 | 3, 0<<11 | 7<<7 | 9<<3 | 1, 4<<11 | 7<<7 | 8<<3 | 5, 6<<11 | 7<<7 | 8<<3 | 1} {
		ws = append(ws, 0xd5080000|op<<5|3, 0xd5080000|op<<5|31)
	}
	for size := uint32(0); size < 4; size++ {
		for _, grp := range []uint32{0x08c00000, 0x08c08000, 0x08800000, 0x08808000} {
			for _, f := range [][2]uint32{{31, 31}, {21, 27}, {30, 29}} {
				ws = append(ws, size<<30|grp|f[0]<<16|f[1]<<10|7<<5)
			}
		}
	}
	// mov immediates (movz, movn, orr aliases) of both widths, adr and adrp both ways.
	ws = append(ws, 0xd2800014, 0xd2bfd001, 0x92800000, 0x12800000, 0xb2400fe0, 0x320003e0,
		0x10000000, 0x10ffffe0, 0x90000020, 0xf0ffffe0, 0x97fffffe, 0x14000001, 0xb4ffffe0, 0x36f80000)
	return ws
}

// TestA64ClassesAgainstObjdump compares a64ClassWords with objdump's text of the
// same words (testdata/arm64/classes.golden; -update regenerates it).
func TestA64ClassesAgainstObjdump(t *testing.T) {
	ws := a64ClassWords()
	var code []byte
	for _, w := range ws {
		code = binary.LittleEndian.AppendUint32(code, w)
	}
	const base = 0xffff800008100000
	golden := "testdata/arm64/classes.golden"
	if *update {
		tool, err := exec.LookPath("aarch64-linux-gnu-objdump")
		if err != nil {
			t.Fatal("-update needs aarch64-linux-gnu-objdump (binutils-aarch64-linux-gnu)")
		}
		ref := objdumpA64(t, tool, code, base)
		var b strings.Builder
		fmt.Fprintf(&b, "# %s on a64ClassWords at %#x: WORD TAB TEXT\n", filepath.Base(tool), uint64(base))
		for i, w := range ws {
			fmt.Fprintf(&b, "%08x\t%s\n", w, ref[base+uint64(4*i)])
		}
		if err := os.WriteFile(golden, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	data, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		if !strings.HasPrefix(line, "#") {
			_, text, _ := strings.Cut(line, "\t")
			want = append(want, text)
		}
	}
	if len(want) != len(ws) {
		t.Fatalf("%s has %d words, a64ClassWords %d (go test -update)", golden, len(want), len(ws))
	}
	equal := 0
	for i, w := range ws {
		got, _, _ := a64Text(code[4*i:4*i+4], base+uint64(4*i))
		if normA64(got) == normA64(want[i]) {
			equal++
			continue
		}
		t.Errorf("%08x: kcrash %q, objdump %q", w, got, want[i])
	}
	t.Logf("%d/%d class words equal objdump's text", equal, len(ws))
}
