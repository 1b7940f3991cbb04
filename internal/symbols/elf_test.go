package symbols

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"os"
	"path/filepath"
	"testing"
)

// makeELF builds a minimal ELF64 relocatable file whose only content is a
// .note.gnu.build-id section with id and pad bytes of filler (to make large files).
func makeELF(t testing.TB, id string, pad int) []byte {
	t.Helper()
	desc, err := hex.DecodeString(id)
	if err != nil {
		t.Fatal(err)
	}
	le := binary.LittleEndian
	var note bytes.Buffer
	binary.Write(&note, le, [3]uint32{4, uint32(len(desc)), 3})
	note.WriteString("GNU\x00")
	note.Write(desc)
	for note.Len()%4 != 0 {
		note.WriteByte(0)
	}
	shstr := []byte("\x00.note.gnu.build-id\x00.shstrtab\x00.filler\x00")
	const ehsize, shentsize = 64, 64
	noteOff := uint64(ehsize)
	shstrOff := noteOff + uint64(note.Len())
	fillOff := shstrOff + uint64(len(shstr))
	shoff := fillOff + uint64(pad)
	shoff = (shoff + 7) &^ 7
	var b bytes.Buffer
	b.Write([]byte{0x7f, 'E', 'L', 'F', 2, 1, 1, 0})
	b.Write(make([]byte, 8))
	binary.Write(&b, le, uint16(1))  // ET_REL
	binary.Write(&b, le, uint16(62)) // EM_X86_64
	binary.Write(&b, le, uint32(1))
	binary.Write(&b, le, uint64(0)) // entry
	binary.Write(&b, le, uint64(0)) // phoff
	binary.Write(&b, le, shoff)
	binary.Write(&b, le, uint32(0))
	binary.Write(&b, le, uint16(ehsize))
	binary.Write(&b, le, uint16(0)) // phentsize
	binary.Write(&b, le, uint16(0)) // phnum
	binary.Write(&b, le, uint16(shentsize))
	binary.Write(&b, le, uint16(4)) // shnum
	binary.Write(&b, le, uint16(2)) // shstrndx
	b.Write(note.Bytes())
	b.Write(shstr)
	b.Write(make([]byte, int(shoff)-b.Len()))
	sh := func(name, typ uint32, off, size uint64) {
		binary.Write(&b, le, name)
		binary.Write(&b, le, typ)
		binary.Write(&b, le, uint64(0)) // flags
		binary.Write(&b, le, uint64(0)) // addr
		binary.Write(&b, le, off)
		binary.Write(&b, le, size)
		binary.Write(&b, le, uint32(0))
		binary.Write(&b, le, uint32(0))
		binary.Write(&b, le, uint64(4))
		binary.Write(&b, le, uint64(0))
	}
	sh(0, 0, 0, 0)
	sh(1, 7, noteOff, uint64(note.Len()))   // SHT_NOTE
	sh(20, 3, shstrOff, uint64(len(shstr))) // SHT_STRTAB
	sh(30, 1, fillOff, uint64(pad))         // SHT_PROGBITS
	return b.Bytes()
}

func TestReadBuildID(t *testing.T) {
	const id = "0123456789abcdef0123456789abcdef01234567"
	for _, tc := range []struct {
		name string
		data []byte
		want string // "" = an error
	}{
		{"small", makeELF(t, id, 0), id},
		{"padded", makeELF(t, id, 10000), id},
		{"html", []byte("<html><body>500 Internal Server Error</body></html>"), ""},
		{"empty", nil, ""},
		{"truncated", makeELF(t, id, 10000)[:5000], ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ReadBuildID(bytes.NewReader(tc.data), int64(len(tc.data)))
			if tc.want == "" {
				if err == nil {
					t.Fatalf("got %q, want an error", got)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("got %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

// TestReadBuildIDReal reads the build ID of a real object of this machine when one
// is there (the Go toolchain's own binaries carry one).
func TestFileBuildID(t *testing.T) {
	p := filepath.Join(t.TempDir(), "x")
	if err := os.WriteFile(p, makeELF(t, "aabbcc", 3), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := FileBuildID(p)
	if err != nil || got != "aabbcc" {
		t.Fatalf("got %q, %v", got, err)
	}
}

func FuzzReadBuildID(f *testing.F) {
	f.Add(makeELF(f, "0123456789abcdef", 0))
	f.Add(makeELF(f, "00", 40))
	f.Add([]byte("\x7fELF"))
	f.Fuzz(func(t *testing.T, data []byte) {
		ReadBuildID(bytes.NewReader(data), int64(len(data)))
	})
}
