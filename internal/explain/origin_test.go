package explain

import (
	"strings"
	"testing"

	"github.com/kcrash/kcrash/internal/disasm"
	"github.com/kcrash/kcrash/internal/oops"
)

// TestOriginFromBytes: the backward scan over Code bytes names the load of the base
// register and what it was loaded through, with and without the argument copy in view.
func TestOriginFromBytes(t *testing.T) {
	regs := map[string]uint64{"RBX": 0xffff888001000000, "RDI": 0xffff888001000000, "R12": 0, "CR2": 0x60}
	for _, tc := range []struct {
		name   string
		code   []byte
		trap   int
		regs   map[string]uint64
		arg    int
		want   string // a step that must be there
		noLoad bool
	}{
		{name: "argument by value", code: []byte{0x4c, 0x8b, 0x63, 0x20, 0x49, 0x39, 0x44, 0x24, 0x60}, trap: 4, regs: regs, arg: 1,
			want: "RBX most likely holds the first argument"},
		{name: "argument copied in the bytes", code: []byte{0x48, 0x89, 0xfb, 0x4c, 0x8b, 0x63, 0x20, 0x49, 0x39, 0x44, 0x24, 0x60}, trap: 7,
			regs: map[string]uint64{"RBX": 0xffff888001000000, "RDI": 5, "R12": 0, "CR2": 0x60}, arg: 1,
			want: "RBX was copied from RDI, the first argument, by `mov %rdi,%rbx`"},
		{name: "base register clobbered by a call", code: []byte{0xe8, 0, 0, 0, 0, 0x48, 0x8b, 0x40, 0x08}, trap: 5,
			regs: map[string]uint64{"RAX": 0, "CR2": 8}, want: "caller-saved", noLoad: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			insts, err := disasm.X86(tc.code, tc.trap, 0, nil)
			if err != nil {
				t.Fatal(err)
			}
			ec := uint64(0)
			fa := tc.regs["CR2"]
			r := &oops.Report{Kind: oops.KindNullDeref, Registers: tc.regs, ErrorCode: &ec, FaultAddress: &fa}
			e := Explain(r, insts, nil)
			var all []string
			for _, s := range e.Steps {
				all = append(all, s.Text)
			}
			text := strings.Join(all, "\n")
			if !strings.Contains(text, tc.want) {
				t.Errorf("no step %q:\n%s", tc.want, text)
			}
			if tc.noLoad {
				if e.Origin != nil {
					t.Errorf("origin %+v, want none", e.Origin)
				}
				return
			}
			if e.Origin == nil || e.Origin.Argument != tc.arg || e.Origin.From != "RBX" || e.Origin.Disp != 0x20 {
				t.Errorf("origin %+v", e.Origin)
			}
		})
	}
}
