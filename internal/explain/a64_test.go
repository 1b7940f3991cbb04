package explain

import (
	"os"
	"strings"
	"testing"

	"github.com/kcrash/kcrash/internal/disasm"
	"github.com/kcrash/kcrash/internal/oops"
)

// TestExplainArm64Lab explains the lab's arm64 oopses (Debian's 6.1 arm64 cloud
// kernel under QEMU): the ESR decoded, the trapping load's address computed
// from the report's registers and matched with the fault address.
func TestExplainArm64Lab(t *testing.T) {
	for _, tc := range []struct {
		name, cause, access, inst string
		steps                     []string
	}{
		{name: "ACCESS_NULL", cause: "null-pointer", access: "read", inst: "ldr x19, [x20]",
			steps: []string{"ESR 0x96000006: data abort (EC 0x25) on a read from the kernel: translation fault at level 2",
				"the read operand [x20] addresses 0x0", "equals the fault address", "a NULL pointer was dereferenced"}},
		{name: "BUG", cause: "bug", inst: "brk #0x800", steps: []string{"BUG() at drivers/misc/lkdtm/bugs.c:78"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data, err := os.ReadFile("../oops/testdata/lab/arm64/" + tc.name + ".serial")
			if err != nil {
				t.Fatal(err)
			}
			reps := oops.Parse(data)
			if len(reps) == 0 || reps[0].Arch != "arm64" || reps[0].Code == nil {
				t.Fatalf("no arm64 report with Code: %d reports", len(reps))
			}
			r := reps[0]
			code, err := disasm.ARM64(r.Code.Bytes, r.Code.Trap, 0)
			if err != nil {
				t.Fatal(err)
			}
			e := Explain(r, code, nil)
			var steps []string
			for _, s := range e.Steps {
				steps = append(steps, s.Text)
			}
			all := strings.Join(steps, "\n")
			if e.Cause != tc.cause || e.Access != tc.access || e.Instruction != tc.inst {
				t.Errorf("cause %q access %q instruction %q, want %q %q %q\n%s", e.Cause, e.Access, e.Instruction, tc.cause, tc.access, tc.inst, all)
			}
			for _, s := range tc.steps {
				if !strings.Contains(all, s) {
					t.Errorf("no step says %q:\n%s", s, all)
				}
			}
			if strings.Contains(all, "error code") || strings.Contains(all, "x86") {
				t.Errorf("x86 reasoning in an arm64 explanation:\n%s", all)
			}
		})
	}
}
