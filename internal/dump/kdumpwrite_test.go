package dump

import (
	"bytes"
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"
)

// TestWriteKdumpFromELF converts an ELF vmcore with a hole between its segments into
// kdump-compressed files in every compression the writer offers and reads them back:
// every page equal, the hole a "not in the dump" error, notes and VMCOREINFO kept.
func TestWriteKdumpFromELF(t *testing.T) {
	mem := testMem(10)
	dir := t.TempDir()
	in := filepath.Join(dir, "vmcore.elf")
	elfFile := writeELF(mem, [][2]int{{0, 3}, {5, 10}}, false, 0)
	binary.LittleEndian.PutUint32(elfFile[20:], 1) // e_version, which debug/elf insists on
	if err := os.WriteFile(in, elfFile, 0o644); err != nil {
		t.Fatal(err)
	}
	src, err := Open(in)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	for _, comp := range []string{"zlib", "snappy", "zstd"} {
		out := filepath.Join(dir, "vmcore."+comp)
		if err := WriteKdumpFromELF(in, out, comp); err != nil {
			t.Fatalf("%s: %v", comp, err)
		}
		d, err := Open(out)
		if err != nil {
			t.Fatalf("%s: %v", comp, err)
		}
		if d.Format() == src.Format() || !bytes.Equal(d.VMCOREINFO(), src.VMCOREINFO()) || len(d.PRStatus()) != len(src.PRStatus()) {
			t.Errorf("%s: format %s, VMCOREINFO %q, %d PRSTATUS notes", comp, d.Format(), d.VMCOREINFO(), len(d.PRStatus()))
		}
		page := make([]byte, testPage)
		for pfn := 0; pfn < 10; pfn++ {
			_, err := d.ReadAt(page, uint64(pfn*testPage))
			if pfn == 3 || pfn == 4 {
				if err == nil {
					t.Errorf("%s: page %d (not in the ELF) read without error", comp, pfn)
				}
				continue
			}
			if err != nil || !bytes.Equal(page, mem[pfn*testPage:(pfn+1)*testPage]) {
				t.Errorf("%s: page %d: %v", comp, pfn, err)
			}
		}
		d.Close()
	}
	if err := WriteKdumpFromELF(in, filepath.Join(dir, "x"), "lzma"); err == nil {
		t.Error("unknown compression accepted")
	}
	if err := WriteKdumpFromELF(filepath.Join(dir, "missing"), filepath.Join(dir, "y"), "zlib"); err == nil {
		t.Error("missing input accepted")
	}
}
