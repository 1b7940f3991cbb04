package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestBisectEmbedded bisects six versions whose last three crash (the load sends
// a real crash log over netconsole to the embedded collector after 0.3 s), with
// an install hook that fails for v1: the culprit, the JSON contract, the state
// file, and the refusals of a second start and of another bisection's state.
func TestBisectEmbedded(t *testing.T) {
	addr := freeUDP(t)
	dir := t.TempDir()
	db, state := filepath.Join(dir, "k.db"), filepath.Join(dir, "bisect.json")
	load := `case {version} in v3|v4|v5) ` + sendCommand(t, addr, "0.3") + `;; *) sleep 60;; esac`
	args := []string{"bisect", "--versions", "v0,v1,v2,v3,v4,v5", "--host", "127.0.0.1", "--load", load,
		"--install", `test {version} != v1`, "--boot", "true", "--test", "2s", "--udp", addr, "--db", db, "--state", state, "--json"}
	code, stdout, stderr := runCmd(t, "", args...)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	var res map[string]any
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &res); err != nil {
		t.Fatalf("%v: %s", err, stdout)
	}
	if len(res) != 5 || res["culprit"] != "v3" || res["confidence"].(float64) < 0.95 || res["runs"].(float64) < 2 {
		t.Fatalf("result %s\n%s", stdout, stderr)
	}
	steps := res["steps"].([]any)
	sawUntestable := false
	for _, s := range steps {
		m := s.(map[string]any)
		if len(m) != 3 || m["candidate"] == nil || m["seconds"] == nil || m["outcome"] == nil {
			t.Fatalf("step %v", m)
		}
		sawUntestable = sawUntestable || m["candidate"] == "v1" && m["outcome"] == "untestable"
		if m["outcome"] == "crash" && m["candidate"].(string) < "v3" {
			t.Fatalf("a good version crashed: %v", m)
		}
	}
	if !strings.Contains(stderr, "first bad: v3 (after v2)") || !strings.Contains(stderr, "step 1 [") {
		t.Errorf("log:\n%s", stderr)
	}
	_ = sawUntestable // v1 is tested only if the search needs it
	// Done: running it again reports the verdict without testing.
	code, stdout2, _ := runCmd(t, "", "bisect", "--resume", state, "--json")
	if code != 0 || strings.TrimSpace(stdout2) != lines[len(lines)-1] {
		t.Errorf("resume of a finished bisection: exit %d: %s", code, stdout2)
	}
	// Starting again over the state is refused, as is resuming it as another range.
	code, _, stderr = runCmd(t, "", args...)
	if code == 0 || !strings.Contains(stderr, "--resume "+state) {
		t.Errorf("second start: exit %d: %s", code, stderr)
	}
	code, _, stderr = runCmd(t, "", "bisect", "--resume", state, "--versions", "v0,v1,v2,v3,v4,v5,v6")
	if code == 0 || !strings.Contains(stderr, "another bisection") {
		t.Errorf("resume as another range: exit %d: %s", code, stderr)
	}
	// A corrupted state is refused with what to do, and left as it was.
	data, _ := os.ReadFile(state)
	bad := data[:len(data)/2]
	os.WriteFile(state, bad, 0o644)
	code, _, stderr = runCmd(t, "", "bisect", "--resume", state)
	if code == 0 || !strings.Contains(stderr, "corrupted") || !strings.Contains(stderr, ".prev") {
		t.Errorf("corrupted state: exit %d: %s", code, stderr)
	}
	if now, _ := os.ReadFile(state); string(now) != string(bad) {
		t.Error("the corrupted state was rewritten")
	}
}

func TestBisectSimulateJSON(t *testing.T) {
	code, stdout, stderr := runCmd(t, "", "bisect", "simulate", "--candidates", "32", "--crash-prob", "0.5", "--trials", "20", "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	if len(lines) != 6 {
		t.Fatalf("%d rows: %s", len(lines), stdout)
	}
	for _, l := range lines {
		var row map[string]any
		if err := json.Unmarshal([]byte(l), &row); err != nil {
			t.Fatal(err)
		}
		for _, k := range []string{"strategy", "crash_prob", "candidates", "trials", "accuracy", "mean_runs", "mean_stated_confidence", "min_runs"} {
			if _, ok := row[k]; !ok {
				t.Errorf("no %q in %s", k, l)
			}
		}
		if row["candidates"] != 32.0 || row["trials"] != 20.0 || row["min_runs"].(float64) < 15 {
			t.Errorf("row %s", l)
		}
	}
}

// TestBisectGit bisects the first-parent commits of a real repository: the load
// crashes from commit c4 on (it finds the file c4 adds in the commit under test),
// and c2 is --skip'ped.
func TestBisectGit(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("needs git")
	}
	repo := t.TempDir()
	git := func(args ...string) string {
		t.Helper()
		cmd := exec.Command("git", append([]string{"-C", repo, "-c", "user.name=t", "-c", "user.email=t@t"}, args...)...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	git("init", "-q")
	shas := map[string]string{}
	for i := 0; i <= 6; i++ {
		name := fmt.Sprintf("c%d", i)
		os.WriteFile(filepath.Join(repo, name), []byte(name), 0o644)
		git("add", name)
		git("commit", "-qm", name)
		shas[name] = git("rev-parse", "HEAD")
	}
	addr := freeUDP(t)
	dir := t.TempDir()
	load := fmt.Sprintf(`if git -C %s cat-file -e {commit}:c4 2>/dev/null; then %s; else sleep 60; fi`, repo, sendCommand(t, addr, "0.3"))
	code, stdout, stderr := runCmd(t, "", "bisect", "--git", repo, "--good", shas["c0"], "--bad", shas["c6"], "--first-parent",
		"--skip", shas["c2"], "--host", "127.0.0.1", "--load", load, "--boot", "true", "--test", "2s",
		"--udp", addr, "--db", filepath.Join(dir, "k.db"), "--state", filepath.Join(dir, "s.json"), "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	var res struct {
		Culprit *string `json:"culprit"`
		Steps   []struct {
			Candidate, Outcome string
		} `json:"steps"`
	}
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &res); err != nil {
		t.Fatal(err)
	}
	if res.Culprit == nil || *res.Culprit != shas["c4"] {
		t.Fatalf("culprit %v, want c4 %s\n%s", res.Culprit, shas["c4"], stderr)
	}
	if len(res.Steps) == 0 || res.Steps[0].Candidate != shas["c2"] || res.Steps[0].Outcome != "untestable" {
		t.Errorf("the skipped commit is not the first, untestable step: %+v", res.Steps)
	}
}
