package explain

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/kcrash/kcrash/internal/disasm"
	"github.com/kcrash/kcrash/internal/oops"
)

var update = flag.Bool("update", false, "rewrite golden files")

// TestSeedKD101 explains the oops of the "Kernel Debugging 101" article exactly as the
// web page printed it (addresses eaten by HTML, Code: wrapped, 2.6.32 layout), from the
// Code bytes alone, and checks what a kernel engineer worked out by hand: cmp
// %rax,0x60(%r12) trapped, R12 is NULL, R12 came from offset 0x20 of the struct in RBX,
// which is the function's first argument, and the fault reads offset 0x60.
func TestSeedKD101(t *testing.T) {
	data, err := os.ReadFile("../oops/testdata/wild/seed-kd101.log")
	if err != nil {
		t.Fatal(err)
	}
	reps := oops.Parse(data)
	if len(reps) != 1 {
		t.Fatalf("%d reports, want 1", len(reps))
	}
	r := reps[0]
	if r.Title != "BUG: unable to handle kernel NULL pointer dereference in __netif_receive_skb" {
		t.Errorf("title %q", r.Title)
	}
	var frames []string
	for _, f := range r.Frames {
		frames = append(frames, f.Raw)
	}
	if len(frames) != 14 || r.Frames[0].Func != "process_backlog" || r.Frames[13].Func != "start_secondary" {
		t.Errorf("%d frames, want 14 from process_backlog to start_secondary: %q", len(frames), frames)
	}
	if r.Repairs == nil || r.Repairs.MissingAddresses != 14 || r.Repairs.Rejoined == 0 {
		t.Errorf("repairs %+v, want 14 missing addresses and re-joined lines", r.Repairs)
	}
	if r.Code == nil || r.Code.Trap < 0 {
		t.Fatalf("no marked Code bytes: %+v", r.Code)
	}
	code, err := disasm.X86(r.Code.Bytes, r.Code.Trap, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	e := Explain(r, code, nil)
	if e.Instruction != "cmp %rax,0x60(%r12)" || e.Cause != "near-null" {
		t.Errorf("instruction %q cause %q", e.Instruction, e.Cause)
	}
	o := e.Origin
	if o == nil || o.Register != "R12" || o.Instruction != "mov 0x20(%rbx),%r12" || o.From != "RBX" || o.Disp != 0x20 ||
		o.Argument != 1 || o.Bytes != "4c 8b 63 20" {
		t.Errorf("origin %+v", o)
	}
	for _, want := range []string{"`cmp %rax,0x60(%r12)`", "R12 is NULL", "mov 0x20(%rbx),%r12", "offset 0x20", "first argument", "reads offset 0x60"} {
		if !strings.Contains(e.Summary, want) {
			t.Errorf("summary lacks %q: %s", want, e.Summary)
		}
	}
	got, _ := json.MarshalIndent(struct {
		Title   string
		Frames  []string
		Repairs string
		Code    string
		Explain *Explanation
	}{r.Title, frames, r.Repairs.String(), disasm.Format(code), e}, "", "  ")
	got = append(got, '\n')
	const golden = "testdata/seed-kd101.golden.json"
	if *update {
		os.MkdirAll("testdata", 0o755)
		if err := os.WriteFile(golden, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (go test -update writes it)", err)
	}
	if string(got) != string(want) {
		t.Errorf("explanation differs from %s (go test -update rewrites it):\n%s", golden, got)
	}
	fmt.Fprintln(os.Stderr, "seed-kd101:", e.Summary)
}
