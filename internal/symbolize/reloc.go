package symbolize

import (
	"debug/elf"
	"fmt"
)

// section returns a section's contents: a slice of the mapping when possible (no copy),
// else a decompressed or copied buffer, relocated for a .ko.
func (b *Binary) section(name string) ([]byte, error) {
	var s *elf.Section
	for _, sec := range b.elf.Sections {
		if sec.Name == name || sec.Name == ".z"+name[1:] {
			s = sec
			break
		}
	}
	if s == nil || s.Type == elf.SHT_NOBITS {
		return nil, nil
	}
	var data []byte
	if s.Flags&elf.SHF_COMPRESSED == 0 && b.mapped != nil && !b.Relocatable &&
		s.Offset+s.FileSize <= uint64(len(b.mapped)) && s.FileSize == s.Size {
		data = b.mapped[s.Offset : s.Offset+s.Size : s.Offset+s.Size]
	} else {
		var err error
		if data, err = s.Data(); err != nil {
			return nil, fmt.Errorf("section %s: %w", name, err)
		}
	}
	if b.Relocatable {
		if err := b.relocate(s, data); err != nil {
			return nil, err
		}
	}
	return data, nil
}

// relocate applies the RELA relocations of section s to data (a private copy), with
// symbol values in this package's section layout. Only the absolute relocations debug
// sections use are applied (x86-64 R_X86_64_64/32/32S, arm64 ABS64/ABS32).
func (b *Binary) relocate(s *elf.Section, data []byte) error {
	var rela *elf.Section
	for _, r := range b.elf.Sections {
		if r.Type == elf.SHT_RELA && int(r.Info) < len(b.elf.Sections) && b.elf.Sections[r.Info] == s {
			rela = r
			break
		}
	}
	if rela == nil {
		return nil
	}
	rd, err := rela.Data()
	if err != nil {
		return err
	}
	syms, err := b.elf.Symbols()
	if err != nil {
		return err
	}
	bo := b.elf.ByteOrder
	for len(rd) >= 24 {
		off := bo.Uint64(rd)
		info := bo.Uint64(rd[8:])
		addend := int64(bo.Uint64(rd[16:]))
		rd = rd[24:]
		si := int(info >> 32)
		typ := uint32(info)
		if si == 0 || si > len(syms) {
			continue
		}
		sym := syms[si-1]
		val := sym.Value
		if base, ok := b.secBase[int(sym.Section)]; ok {
			val += base
		}
		v := uint64(int64(val) + addend)
		switch {
		case b.Machine == elf.EM_X86_64 && typ == uint32(elf.R_X86_64_64),
			b.Machine == elf.EM_AARCH64 && typ == uint32(elf.R_AARCH64_ABS64):
			if off+8 <= uint64(len(data)) {
				bo.PutUint64(data[off:], v)
			}
		case b.Machine == elf.EM_X86_64 && (typ == uint32(elf.R_X86_64_32) || typ == uint32(elf.R_X86_64_32S)),
			b.Machine == elf.EM_AARCH64 && typ == uint32(elf.R_AARCH64_ABS32):
			if off+4 <= uint64(len(data)) {
				bo.PutUint32(data[off:], uint32(v))
			}
		}
	}
	return nil
}
