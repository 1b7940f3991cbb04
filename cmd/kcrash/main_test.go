package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite golden files and the README command reference")

const (
	beginCommands = "<!-- BEGIN COMMANDS (generated from cmd/kcrash's command table; TestREADMECommands checks it) -->\n"
	endCommands   = "<!-- END COMMANDS -->"
)

// TestREADMECommands fails when README.md's command reference differs from the table.
func TestREADMECommands(t *testing.T) {
	path := "../../README.md"
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := string(data)
	i := strings.Index(s, beginCommands)
	j := strings.Index(s, endCommands)
	if i < 0 || j < i {
		t.Fatalf("README.md lacks the command reference markers")
	}
	want := s[:i+len(beginCommands)] + commandReference() + s[j:]
	if want == s {
		return
	}
	if *update {
		if err := os.WriteFile(path, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Errorf("README.md command reference is stale; run go test ./cmd/kcrash -update")
}

func runCmd(t *testing.T, stdin string, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(&cmdEnv{stdin: strings.NewReader(stdin), stdout: &out, stderr: &errb}, args)
	return code, out.String(), errb.String()
}

// TestHelp checks that every subcommand answers -h with its usage and exit status 0.
func TestHelp(t *testing.T) {
	for _, c := range sortedCommands() {
		code, _, stderr := runCmd(t, "", c.name, "-h")
		if code != 0 || !strings.Contains(stderr, "Usage: kcrash "+c.name) {
			t.Errorf("%s -h: exit %d, stderr %q", c.name, code, stderr)
		}
	}
	if code, out, _ := runCmd(t, "", "help"); code != 0 || !strings.Contains(out, "parse") {
		t.Errorf("help: exit %d, out %q", code, out)
	}
	if code, _, _ := runCmd(t, "", "no-such-command"); code != 2 {
		t.Errorf("unknown command: exit %d, want 2", code)
	}
}

func TestParseCommand(t *testing.T) {
	sample := "../../internal/oops/testdata/lab/ACCESS_NULL.serial"
	code, out, errOut := runCmd(t, "", "parse", "--json", sample)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var doc struct {
		Reports []map[string]any `json:"reports"`
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("bad JSON %q: %v", out, err)
	}
	if len(doc.Reports) != 1 {
		t.Fatalf("%d reports", len(doc.Reports))
	}
	for _, k := range []string{"title", "alt_titles", "type", "corrupted", "kind", "signature", "ip", "registers", "code", "frames", "start", "end"} {
		if _, ok := doc.Reports[0][k]; !ok {
			t.Errorf("report lacks key %q", k)
		}
	}
	if doc.Reports[0]["kind"] != "null-ptr-deref" {
		t.Errorf("kind %v", doc.Reports[0]["kind"])
	}

	// People-first text names the function, the kind and the registers.
	code, out, _ = runCmd(t, "", "parse", sample)
	for _, want := range []string{"lkdtm_ACCESS_NULL", "null-ptr-deref", "RAX:", "call trace:"} {
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("text output lacks %q (exit %d)", want, code)
		}
	}

	// A log without a report, from standard input.
	code, out, _ = runCmd(t, "[    0.000000] Linux version 6.1.0\n", "parse", "--json", "-")
	if code != 0 || strings.TrimSpace(out) != `{"reports":[]}` {
		t.Errorf("clean log: exit %d, out %q", code, out)
	}

	// Unreadable input fails clearly.
	code, _, errOut = runCmd(t, "", "parse", "/nonexistent/log")
	if code == 0 || !strings.Contains(errOut, "/nonexistent/log") {
		t.Errorf("missing file: exit %d, stderr %q", code, errOut)
	}
	if code, _, _ := runCmd(t, "", "parse"); code != 2 {
		t.Errorf("no arguments: exit %d, want 2", code)
	}
}

// TestDecodeWithoutDebugInfo: decode still disassembles and explains from the report.
func TestDecodeWithoutDebugInfo(t *testing.T) {
	code, out, errOut := runCmd(t, "", "decode", "../../internal/oops/testdata/lab/ACCESS_NULL.serial")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	for _, want := range []string{"mov 0x0,%rbx\t\t<-- trapping instruction", "NULL pointer dereference", "equals CR2", "RAX:"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	code, out, _ = runCmd(t, "", "decode", "--json", "../../internal/oops/testdata/lab/BUG.serial")
	if code != 0 || !strings.Contains(out, `"cause":"bug"`) || !strings.Contains(out, `"op":"ud2"`) {
		t.Errorf("--json: exit %d:\n%s", code, out)
	}
}
