package symbols

import (
	"debug/elf"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
)

// maxNote bounds the note section read for a build ID (a vmlinux's .notes is a few
// hundred bytes; the bound keeps a hostile header from asking for gigabytes).
const maxNote = 1 << 20

// FileBuildID returns the hex GNU build ID (NT_GNU_BUILD_ID) of an ELF file.
func FileBuildID(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return "", err
	}
	return ReadBuildID(f, st.Size())
}

// ReadBuildID returns the hex GNU build ID of the ELF file in r (size bytes). It reads
// the ELF and section headers and the note sections only, and never panics on a
// malformed file.
func ReadBuildID(r io.ReaderAt, size int64) (id string, err error) {
	defer func() {
		if p := recover(); p != nil {
			id, err = "", fmt.Errorf("malformed ELF: %v", p)
		}
	}()
	f, err := elf.NewFile(io.NewSectionReader(r, 0, size))
	if err != nil {
		return "", err
	}
	for _, s := range f.Sections {
		if s.Type != elf.SHT_NOTE || s.Size == 0 {
			continue
		}
		if s.Size > maxNote || s.Offset > uint64(size) || s.Size > uint64(size)-s.Offset {
			continue
		}
		data := make([]byte, s.Size)
		if _, err := r.ReadAt(data, int64(s.Offset)); err != nil {
			return "", fmt.Errorf("note section %s: %w", s.Name, err)
		}
		if id := noteBuildID(f.ByteOrder, data); id != "" {
			return id, nil
		}
	}
	return "", errors.New("no GNU build ID note")
}

// noteBuildID walks ELF notes (Elf_Nhdr: namesz, descsz, type, then the 4-aligned
// name and descriptor) for NT_GNU_BUILD_ID with name "GNU".
func noteBuildID(bo interface{ Uint32([]byte) uint32 }, data []byte) string {
	for len(data) >= 12 {
		nsz := uint64(bo.Uint32(data))
		dsz := uint64(bo.Uint32(data[4:]))
		typ := bo.Uint32(data[8:])
		name := (nsz + 3) &^ 3
		desc := (dsz + 3) &^ 3
		if name > uint64(len(data)) || desc > uint64(len(data)) || 12+name+desc > uint64(len(data)) {
			return ""
		}
		if typ == ntGNUBuildID && nsz == 4 && string(data[12:15]) == "GNU" && dsz > 0 {
			return hex.EncodeToString(data[12+name : 12+name+dsz])
		}
		data = data[12+name+desc:]
	}
	return ""
}

// ntGNUBuildID is NT_GNU_BUILD_ID (include/uapi/linux/elf.h, elf(5)).
const ntGNUBuildID = 3
