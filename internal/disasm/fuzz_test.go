package disasm

import "testing"

// FuzzX86 decodes arbitrary bytes with an arbitrary trap index: never a panic.
func FuzzX86(f *testing.F) {
	f.Add([]byte{0x48, 0x8b, 0x1c, 0x25, 0, 0, 0, 0, 0x0f, 0x0b}, 0)
	f.Add([]byte{0x67, 0x48, 0x0f, 0xb9, 0x3a, 0xc3}, 0)
	f.Fuzz(func(t *testing.T, code []byte, trap int) {
		X86(code, trap, 0xffffffff81000000, nil)
		ARM64(code, trap, 0xffff800008000000)
	})
}
