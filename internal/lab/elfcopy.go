package lab

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
)

// copyForMakedumpfile copies an ELF dump written by QEMU to out with its program
// headers moved right after the ELF header and its section headers dropped.
//
// QEMU 7.2's dump-guest-memory writes the section header table at offset 64 and
// the program headers after it (e_phoff = 192), which ELF allows; makedumpfile 1.7.2
// (Debian 12) reads program header i at sizeof(Elf64_Ehdr) + i*sizeof(Elf64_Phdr)
// whatever e_phoff says, finds no PT_LOAD there and fails with "Can't get the
// number of PT_LOAD". The data segments stay at their offsets, so only the first
// bytes change: the header (e_phoff = 64, no sections) and the moved table.
func copyForMakedumpfile(in, out string) error {
	src, err := os.Open(in)
	if err != nil {
		return err
	}
	defer src.Close()
	var eh [64]byte // Elf64_Ehdr (include/uapi/linux/elf.h)
	if _, err := io.ReadFull(src, eh[:]); err != nil {
		return fmt.Errorf("%s: ELF header: %w", in, err)
	}
	if string(eh[:4]) != "\x7fELF" || eh[4] != 2 || eh[5] != 1 {
		return fmt.Errorf("%s: not a little-endian ELF64 file", in)
	}
	le := binary.LittleEndian
	phoff := le.Uint64(eh[0x20:])
	phentsize := uint64(le.Uint16(eh[0x36:]))
	phnum := uint64(le.Uint16(eh[0x38:]))
	if phentsize != 56 || phnum == 0 || phnum == 0xffff {
		return fmt.Errorf("%s: unexpected program headers (%d of %d bytes)", in, phnum, phentsize)
	}
	ph := make([]byte, phnum*phentsize)
	if _, err := src.ReadAt(ph, int64(phoff)); err != nil {
		return fmt.Errorf("%s: program headers: %w", in, err)
	}
	end := 64 + uint64(len(ph))
	for i := uint64(0); i < phnum; i++ {
		p := ph[i*56:]
		off, size := le.Uint64(p[8:]), le.Uint64(p[32:])
		if size > 0 && off < end {
			return errors.New(in + ": a segment starts inside the room the moved program headers need")
		}
	}
	dst, err := os.OpenFile(out, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := src.Seek(0, io.SeekStart); err == nil {
		_, err = io.Copy(dst, src) // copy_file_range on Linux
	}
	if err == nil {
		le.PutUint64(eh[0x20:], 64) // e_phoff
		le.PutUint64(eh[0x28:], 0)  // e_shoff
		le.PutUint16(eh[0x3c:], 0)  // e_shnum
		le.PutUint16(eh[0x3e:], 0)  // e_shstrndx
		if _, err = dst.WriteAt(eh[:], 0); err == nil {
			_, err = dst.WriteAt(ph, 64)
		}
	}
	if cerr := dst.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(out)
		return fmt.Errorf("copying %s for makedumpfile: %w", in, err)
	}
	return nil
}
