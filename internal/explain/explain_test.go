package explain

import (
	"os"
	"strings"
	"testing"

	"github.com/kcrash/kcrash/internal/disasm"
	"github.com/kcrash/kcrash/internal/oops"
)

func lab(t *testing.T, name string) (*oops.Report, []disasm.Inst) {
	t.Helper()
	data, err := os.ReadFile("../oops/testdata/lab/" + name + ".serial")
	if err != nil {
		t.Fatal(err)
	}
	reps := oops.Parse(data)
	if len(reps) == 0 {
		t.Fatalf("%s: no report", name)
	}
	r := reps[0]
	var code []disasm.Inst
	if r.Code != nil && r.Code.Trap >= 0 {
		code, _ = disasm.X86(r.Code.Bytes, r.Code.Trap, 0, nil)
	}
	return r, code
}

// TestExplainLab checks the explanation of real lab crashes without debug info: the
// cause, the access, the address and the register the report names.
func TestExplainLab(t *testing.T) {
	for _, tc := range []struct {
		name, cause, access, inst string
		addr                      uint64
		matchesCR2                bool
		reg                       string // a register the explanation must name, "" for none
		regValue                  uint64
		step                      string // a phrase one step must contain
	}{
		{name: "ACCESS_NULL", cause: "null-pointer", access: "read", inst: "mov 0x0,%rbx", addr: 0, matchesCR2: true,
			step: "a NULL pointer was dereferenced"},
		{name: "EXCEPTION", cause: "null-pointer", access: "write", addr: 0, matchesCR2: true, step: "write in kernel mode"},
		{name: "ACCESS_USERSPACE", cause: "user-address", access: "read", reg: "RBX", matchesCR2: true,
			step: "user-space address accessed by kernel code"},
		{name: "EXEC_DATA", cause: "exec-nx", access: "exec", step: "not executable (NX)"},
		{name: "BUG", cause: "bug", inst: "ud2", step: "BUG() at drivers/misc/lkdtm/bugs.c:78"},
		{name: "CORRUPT_LIST_ADD", cause: "list-corruption", inst: "ud2", step: "list_add corruption"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, code := lab(t, tc.name)
			e := Explain(r, code, nil)
			var steps []string
			for _, s := range e.Steps {
				steps = append(steps, s.Text)
			}
			all := strings.Join(steps, "\n")
			if e.Cause != tc.cause {
				t.Errorf("cause %q, want %q\n%s", e.Cause, tc.cause, all)
			}
			if tc.access != "" && e.Access != tc.access {
				t.Errorf("access %q, want %q", e.Access, tc.access)
			}
			if tc.inst != "" && !strings.HasPrefix(e.Instruction, tc.inst) {
				t.Errorf("instruction %q, want %q", e.Instruction, tc.inst)
			}
			if tc.cause != "bug" && tc.cause != "list-corruption" && tc.cause != "exec-nx" {
				if e.Address == nil {
					t.Fatalf("no address:\n%s", all)
				}
				if tc.name != "ACCESS_USERSPACE" && *e.Address != tc.addr {
					t.Errorf("address %#x, want %#x", *e.Address, tc.addr)
				}
				if e.MatchesCR2 == nil || *e.MatchesCR2 != tc.matchesCR2 {
					t.Errorf("matches CR2 %v, want %v", e.MatchesCR2, tc.matchesCR2)
				}
				if cr2 := r.Registers["CR2"]; *e.Address != cr2 {
					t.Errorf("address %#x is not CR2 %#x", *e.Address, cr2)
				}
			}
			if tc.reg != "" {
				found := false
				for _, u := range e.Registers {
					if u.Name == tc.reg && u.Known && u.Value == r.Registers[tc.reg] {
						found = true
					}
				}
				if !found {
					t.Errorf("register %s not named with its value: %+v", tc.reg, e.Registers)
				}
			}
			if !strings.Contains(all, tc.step) {
				t.Errorf("no step mentions %q:\n%s", tc.step, all)
			}
			if e.Summary == "" {
				t.Error("empty summary")
			}
		})
	}
}

func TestPoison(t *testing.T) {
	for v, want := range map[uint64]string{
		0: "NULL", 0x28: "NULL+0x28", 0xdead000000000100: "LIST_POISON1", 0xdead000000000122: "LIST_POISON2",
		0x6b6b6b6b6b6b6b6b: "POISON_FREE", 0xfffffffffffffff2: "ERR_PTR(-14)", 0xffff888004a0c000: "",
	} {
		if got := poison(v); !strings.Contains(got, want) || want == "" && got != "" {
			t.Errorf("poison(%#x) = %q, want %q", v, got, want)
		}
	}
}
