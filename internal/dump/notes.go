package dump

import (
	"encoding/binary"
	"fmt"
)

// maxNotes bounds the note bytes read from any dump: real dumps carry a few KB per CPU.
const maxNotes = 64 << 20

// Note types (include/uapi/linux/elf.h).
const (
	ntPRStatus   = 1
	ntVMCOREINFO = 0
	// prstatusAArch64 is sizeof(struct elf_prstatus) on aarch64.
	prstatusAArch64 = 392
)

// parseNotes decodes an ELF note stream (Elf64_Nhdr: namesz, descsz, type, then
// the name and the descriptor, each padded to 4 bytes) into d.
func parseNotes(d *Dump, b []byte) error {
	le := binary.LittleEndian
	for off := 0; off+12 <= len(b); {
		namesz, descsz, typ := le.Uint32(b[off:]), le.Uint32(b[off+4:]), le.Uint32(b[off+8:])
		off += 12
		nameEnd := uint64(off) + uint64(namesz)
		descOff := (nameEnd + 3) &^ 3
		descEnd := descOff + uint64(descsz)
		if descEnd > uint64(len(b)) {
			// QEMU and kdump pad the note segment with zeros: an all-zero header ends it.
			if namesz == 0 && descsz == 0 {
				return nil
			}
			return fmt.Errorf("note at %#x: name %d + desc %d bytes overrun the %d-byte notes", off-12, namesz, descsz, len(b))
		}
		name := string(trimNUL(b[off:nameEnd]))
		desc := b[descOff:descEnd]
		switch {
		case name == "CORE" && typ == ntPRStatus:
			// struct elf_prstatus: pr_pid at 32, pr_reg at 112: 34 registers on
			// aarch64 (392 bytes in all), 27 on x86-64 (336 bytes).
			if d.machine == "" {
				d.machine = MachineX86_64
				if len(desc) == prstatusAArch64 {
					d.machine = MachineAArch64
				}
			}
			if d.machine == MachineAArch64 {
				if len(desc) >= 112+34*8 {
					var ps PRStatus
					ps.PID = int32(le.Uint32(desc[32:]))
					for i := range ps.AArch64 {
						ps.AArch64[i] = le.Uint64(desc[112+8*i:])
					}
					d.prstatus = append(d.prstatus, ps)
				}
			} else if len(desc) >= 112+27*8 {
				var ps PRStatus
				ps.PID = int32(le.Uint32(desc[32:]))
				for i := range ps.Regs {
					ps.Regs[i] = le.Uint64(desc[112+8*i:])
				}
				d.prstatus = append(d.prstatus, ps)
			}
		case name == "VMCOREINFO":
			d.vmcoreinfo = append([]byte(nil), trimNUL(desc)...)
		case name == "QEMU":
			// target/i386/arch_dump.c: struct QEMUCPUState: version, size, 16 GPRs,
			// rip, rflags, 10 segments of 24 bytes (cs ds es fs gs ss ldt tr gdt idt),
			// cr[5], then kernel_gs_base (version 2+).
			if len(desc) >= 432 {
				var c QEMUCPU
				for i := range c.GPR {
					c.GPR[i] = le.Uint64(desc[8+8*i:])
				}
				c.RSP, c.RBP = c.GPR[6], c.GPR[7]
				c.RIP = le.Uint64(desc[136:])
				c.GSBase = le.Uint64(desc[152+4*24+16:])
				for i := range c.CR {
					c.CR[i] = le.Uint64(desc[392+8*i:])
				}
				if len(desc) >= 440 {
					c.KernelGSBase = le.Uint64(desc[432:])
				}
				d.qemu = append(d.qemu, c)
			}
		}
		off = int((descEnd + 3) &^ 3)
	}
	return nil
}

func trimNUL(b []byte) []byte {
	for len(b) > 0 && b[len(b)-1] == 0 {
		b = b[:len(b)-1]
	}
	return b
}
