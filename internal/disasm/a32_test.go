package disasm

import (
	"bufio"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// a32Words is the words of the A32 comparison: every distinct word of the 32-bit ARM
// Code: lines in the corpora (testdata/arm/corpus.txt: word and the report it came
// from), then 2,000 seeded random words with the always condition.
func a32Words(t *testing.T) (words []uint32, source []string) {
	f, err := os.Open("testdata/arm/corpus.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		w, src, _ := strings.Cut(sc.Text(), "\t")
		b, err := hex.DecodeString(w)
		if err != nil || len(b) != 4 {
			t.Fatalf("corpus.txt: bad word %q", w)
		}
		words, source = append(words, binary.LittleEndian.Uint32(b)), append(source, src)
	}
	r := rand.New(rand.NewSource(1))
	for i := 0; i < 2000; i++ {
		words, source = append(words, r.Uint32()&0x0fffffff|0xe0000000), append(source, "random")
	}
	return words, source
}

const a32Base = 0x80008000 // the address of the first word, objdump's --adjust-vma

// a32Known lists the words where kcrash and objdump differ for a reason other than
// the two classes TestARMAgainstObjdump counts, with the reason.
var a32Known = map[uint32]string{
	0xe17f98d4: "LDRSB (literal) with W=1 is UNPREDICTABLE; armasm keeps the \"!\", objdump drops it",
	0xe17fccd4: "LDRSB (literal) with W=1 is UNPREDICTABLE; armasm keeps the \"!\", objdump drops it",
	0xe1043453: "QADD with nonzero should-be-zero bits 11..8; objdump decodes the word as a register-shifted TST",
	0xe0ff31d9: "LDRSBT (literal) is UNPREDICTABLE; objdump omits the literal address",
}

// TestARMAgainstObjdump compares 32-bit ARM disassembly with arm-linux-gnueabihf-objdump
// (testdata/arm/objdump.golden; -update regenerates it). Every word must print as
// objdump prints it, except words golang.org/x/arch does not decode (coprocessor, VFP
// and NEON: printed as undefined) and objdump's "<UNPREDICTABLE>" notes; both are
// counted in the log.
func TestARMAgainstObjdump(t *testing.T) {
	words, source := a32Words(t)
	golden := "testdata/arm/objdump.golden"
	if *update {
		tool, err := exec.LookPath("arm-linux-gnueabihf-objdump")
		if err != nil {
			t.Fatal("-update needs arm-linux-gnueabihf-objdump (binutils-arm-linux-gnueabihf)")
		}
		bin := filepath.Join(t.TempDir(), "w.bin")
		buf := make([]byte, 4*len(words))
		for i, w := range words {
			binary.LittleEndian.PutUint32(buf[4*i:], w)
		}
		if err := os.WriteFile(bin, buf, 0o644); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(tool, "-D", "-b", "binary", "-marm", "-EL", fmt.Sprintf("--adjust-vma=%#x", a32Base), bin).Output()
		if err != nil {
			t.Fatal(err)
		}
		var b strings.Builder
		for _, l := range strings.Split(string(out), "\n") {
			p := strings.SplitN(l, "\t", 3)
			if len(p) == 3 && strings.HasSuffix(strings.TrimSpace(p[0]), ":") {
				fmt.Fprintf(&b, "%s\t%s\n", strings.TrimSuffix(strings.TrimSpace(p[0]), ":"), strings.Join(strings.Fields(strings.ReplaceAll(p[2], "\t", " ")), " "))
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
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	if len(lines) != len(words) {
		t.Fatalf("%s has %d lines for %d words: run with -update", golden, len(lines), len(words))
	}
	equal, undecoded, unpredictable, known := 0, 0, 0, 0
	corpusEqual, corpus := 0, 0
	for i, l := range lines {
		addrHex, want, _ := strings.Cut(l, "\t")
		addr, err := strconv.ParseUint(addrHex, 16, 64)
		if err != nil || addr != a32Base+uint64(4*i) {
			t.Fatalf("%s line %d: address %q, want %x", golden, i+1, addrHex, a32Base+uint64(4*i))
		}
		var b [4]byte
		binary.LittleEndian.PutUint32(b[:], words[i])
		got, _, _ := a32Text(b[:], addr)
		got = strings.Join(strings.Fields(strings.ReplaceAll(got, "\t", " ")), " ")
		if source[i] != "random" {
			corpus++
		}
		switch {
		case got == want:
			equal++
			if source[i] != "random" {
				corpusEqual++
			}
		case strings.HasPrefix(got, "@ <UNDEFINED>") && !strings.Contains(want, "UNDEFINED"):
			undecoded++
		case strings.HasSuffix(want, "<UNPREDICTABLE>") && strings.HasPrefix(want, strings.SplitN(got, " @", 2)[0]):
			unpredictable++
		case a32Known[words[i]] != "":
			known++
		default:
			t.Errorf("%s: %08x at %#x: kcrash %q, objdump %q", source[i], words[i], addr, got, want)
		}
	}
	if corpusEqual != corpus {
		t.Errorf("real Code: words: %d/%d equal objdump's text", corpusEqual, corpus)
	}
	t.Logf("A32: %d/%d words equal objdump's text (real Code: words %d/%d); %d not decoded by x/arch (coprocessor, VFP, NEON), %d differ only by objdump's <UNPREDICTABLE> note, %d listed in a32Known",
		equal, len(words), corpusEqual, corpus, undecoded, unpredictable, known)
}

func TestARMTrap(t *testing.T) {
	// 32-bit ARM's BUG() word and a literal load, from real reports, at a known pc.
	code := []byte{0x44, 0x00, 0x9f, 0xe5, 0xf2, 0x01, 0xf0, 0xe7}
	insts, err := ARM(code, 4, 0xc0100004)
	if err != nil {
		t.Fatal(err)
	}
	if len(insts) != 2 || !insts[1].Trap || insts[1].Text != "udf #18" || insts[0].Addr != 0xc0100000 ||
		insts[0].Text != "ldr r0, [pc, #68]\t@ 0xc010004c" {
		t.Fatalf("got %+v", insts)
	}
	if _, err := ARM(code, 2, 0); err != ErrNoTrap {
		t.Fatalf("unaligned trap: err %v, want ErrNoTrap", err)
	}
}
