package script

import (
	"bytes"
	"strings"
	"testing"

	"github.com/kcrash/kcrash/internal/crashcmd"
)

// The interpreter's plumbing, without a dump: output, errors with their
// position, the step limit, and the sandbox (no load). Scripts against real
// dumps are tested in e2e (TestVmcoreScripts).
func TestRun(t *testing.T) {
	s := &crashcmd.Session{DumpPath: "test.vmcore"}
	defer func(n uint64) { maxSteps = n }(maxSteps)
	maxSteps = 1 << 20
	for _, c := range []struct {
		name, src, out, err string
	}{
		{"print", "print(1 + 2)\nfor i in range(2):\n    print('x%d' % i)\n", "3\nx0\nx1\n", ""},
		{"prog is bound", "print(type(prog), 'tasks' in dir(prog))", "prog True\n", ""},
		{"syntax error", "print(", "", "test.star:1:7"},
		{"runtime error with position", "def f():\n    return 1 // 0\nf()\n", "", "test.star:2:14"},
		{"no load", "load('x.star', 'y')", "", "load not implemented"},
		{"step limit", "while True:\n    pass\n", "", "too many steps"},
	} {
		t.Run(c.name, func(t *testing.T) {
			var b bytes.Buffer
			err := Run(s, "test.star", []byte(c.src), &b)
			if c.err == "" && err != nil || c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)) {
				t.Fatalf("err = %v, want %q", err, c.err)
			}
			if b.String() != c.out {
				t.Errorf("output %q, want %q", b.String(), c.out)
			}
		})
	}
}
