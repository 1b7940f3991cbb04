package lab

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// The bisect scenario runs kcrash bisect as a user would, as a process of its
// own, over the regression's packaged ABIs (oldest first) with netrace gated at
// one of them: its boot hook is `kcrash lab target reboot --kernel {version}`,
// its load `kcrash lab load` (the UDP flood), its oracle the target's serial
// console (--lab-target: the race oopses inside the NIC's NAPI poll, which
// netconsole on that NIC cannot deliver). In the middle of a test the scenario
// kills the controller with SIGKILL and finishes the bisection with
// `kcrash bisect --resume STATE`. Its directory keeps the state file, the
// controller's log (both runs) and the crash database the bisection was
// recorded in (the dashboard's bisection page).

// BisectScenarioResult is `kcrash lab scenario bisect --json`: the contract is
// exactly these keys; Bisect is kcrash bisect --json's result.
type BisectScenarioResult struct {
	Candidates []string        `json:"candidates"`
	GatedAt    string          `json:"gated_at"`
	Bisect     json.RawMessage `json:"bisect"`
}

// Files and parameters of the bisect scenario.
const (
	BisectScenarioState = "state.json"
	BisectScenarioLog   = "bisect.log"
	bisectTarget        = "scenario-bisect"
	// bisectKillAfter is how long into a loaded test the controller is killed.
	bisectKillAfter = 2 * time.Second
)

func runBisectScenario(ctx context.Context, cfg *Config, o ScenarioOptions, dir string) (any, error) {
	if o.Kcrash == "" {
		return nil, errors.New("the bisect scenario needs the kcrash binary (ScenarioOptions.Kcrash)")
	}
	kernels := make([]*Kernel, len(o.Kernels))
	for i, abi := range o.Kernels {
		k, err := kernelFor(ctx, cfg, abi, true)
		if err != nil {
			return nil, err
		}
		kernels[i] = k
	}
	args := "lab_load=netrace netrace.buggy_from=" + o.Gate
	// The target lives in the cache dir, where kcrash lab target finds it and
	// the kernels.
	if old, err := LoadTarget(cfg.Dir, bisectTarget); err == nil {
		old.Stop(ctx)
	}
	st, err := StartTarget(ctx, Config{Dir: cfg.Dir}, kernels[len(kernels)-1], TargetOptions{Name: bisectTarget, Args: args})
	if err != nil {
		return nil, err
	}
	defer func() {
		if st, err := LoadTarget(cfg.Dir, bisectTarget); err == nil {
			st.Stop(context.WithoutCancel(ctx))
		}
	}()
	if _, err := st.WaitReady(ctx, 90*time.Second); err != nil {
		return nil, err
	}
	q := func(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }
	kc, labDir := q(o.Kcrash), q(cfg.Dir)
	state := filepath.Join(dir, BisectScenarioState)
	logf, err := os.Create(filepath.Join(dir, BisectScenarioLog))
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	start := []string{"bisect", "--versions", strings.Join(o.Kernels, ","), "--lab-target", bisectTarget, "--lab-dir", cfg.Dir,
		"--boot", fmt.Sprintf("%s lab target reboot %s --dir %s --kernel {version} --args %s --wait 90s", kc, bisectTarget, labDir, q(args)),
		"--load", fmt.Sprintf("%s lab load --dir %s --to %s --pps %d --seconds 0", kc, labDir, bisectTarget, o.PPS),
		"--min-test", "5s", "--max-test", "60s", "--overhead", "15s", "--hook-timeout", "3m",
		"--db", filepath.Join(dir, "kcrash.db"), "--state", state, "--json"}

	// First run: killed with SIGKILL in the middle of a loaded test.
	cfg.progress("scenario bisect: kcrash bisect over %s, the race from %s", strings.Join(o.Kernels, " "), o.Gate)
	killed, _, sess, err := runController(ctx, cfg, o.Kcrash, start, logf, state)
	// The killed controller's load hook goes on, as after a real controller's
	// crash, while the resumed controller works; it is stopped when the scenario
	// ends, not left to load the machine for ever.
	defer killSession(sess)
	if err != nil {
		return nil, err
	}
	if killed == 0 {
		return nil, errors.New("kcrash bisect finished before it could be killed in a test")
	}
	cfg.progress("scenario bisect: killed the controller (SIGKILL) during step %d; resuming", killed)
	fmt.Fprintf(logf, "=== the scenario killed kcrash bisect (SIGKILL) during step %d; kcrash bisect --resume %s\n", killed, state)
	_, out, sess2, err := runController(ctx, cfg, o.Kcrash, []string{"bisect", "--resume", state, "--json"}, logf, "")
	defer killSession(sess2)
	if err != nil {
		return nil, err
	}
	lines := bytes.Split(bytes.TrimSpace(out), []byte("\n"))
	last := lines[len(lines)-1]
	if !json.Valid(last) {
		return nil, fmt.Errorf("kcrash bisect --resume printed no JSON result: %q", out)
	}
	return &BisectScenarioResult{Candidates: o.Kernels, GatedAt: o.Gate, Bisect: json.RawMessage(last)}, nil
}

// runController runs kcrash bisect with args, its output appended to logf (and
// its standard output returned). With killState set it is killed with SIGKILL
// bisectKillAfter into the first loaded test after step 1, and the number of
// the step it was killed in is returned. The controller runs in a session of its
// own, whose id is returned: its hooks make process groups of their own, and
// killSession finds them all by it.
func runController(ctx context.Context, cfg *Config, kcrash string, args []string, logf io.Writer, killState string) (killed int, _ []byte, session int, _ error) {
	cmd := exec.CommandContext(ctx, kcrash, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	// A controller killed with SIGKILL leaves its load hook running (as a real
	// controller's crash would); that orphan holds the output pipes open, so Wait
	// must not wait for them past the controller's own exit.
	cmd.WaitDelay = 2 * time.Second
	var stdout bytes.Buffer
	cmd.Stdout = io.MultiWriter(&stdout, logf)
	pr, pw := io.Pipe()
	cmd.Stderr = pw
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			fmt.Fprintln(logf, sc.Text())
			if l := sc.Text(); strings.HasPrefix(l, "step ") && !strings.Contains(l, "testing for") {
				cfg.progress("scenario bisect: %s", l)
			}
		}
		io.Copy(io.Discard, pr)
	}()
	if err := cmd.Start(); err != nil {
		pw.Close()
		return 0, nil, 0, err
	}
	session = cmd.Process.Pid
	done := make(chan error, 1)
	go func() { done <- cmd.Wait(); pw.Close() }()
	readyBoot, readyAt := 0, time.Time{} // the target's boot first seen ready in a test, and when
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case err := <-done:
			if killed > 0 {
				return killed, stdout.Bytes(), session, nil
			}
			if err != nil && !errors.Is(err, exec.ErrWaitDelay) { // exited 0; a hook's child held the pipe
				return 0, stdout.Bytes(), session, fmt.Errorf("kcrash %s: %w (its log: %s)", args[0], err, BisectScenarioLog)
			}
			return 0, stdout.Bytes(), session, nil
		case <-tick.C:
			if killState == "" || killed > 0 {
				continue
			}
			n, boot := loadedTest(ctx, cfg.Dir, killState)
			if n == 0 {
				continue
			}
			if boot != readyBoot {
				readyBoot, readyAt = boot, time.Now()
			}
			if time.Since(readyAt) >= bisectKillAfter {
				syscall.Kill(cmd.Process.Pid, syscall.SIGKILL)
				killed = n
			}
		}
	}
}

// loadedTest returns the number of the step in progress and the target's boot
// number when the step is past step 1 and its target, rebooted for it, is up and
// ready (its load has started): 0 otherwise. The caller kills bisectKillAfter
// after it first sees a boot ready, so the kill lands in the loaded test whatever
// the test's length (a fixed delay from the boot missed tests shorter than it).
func loadedTest(ctx context.Context, labDir, statePath string) (step, boot int) {
	data, err := os.ReadFile(statePath)
	if err != nil {
		return 0, 0
	}
	var st struct {
		Steps   []json.RawMessage `json:"steps"`
		Pending *struct {
			Start time.Time `json:"start"`
		} `json:"pending"`
	}
	if json.Unmarshal(data, &st) != nil || len(st.Steps) < 1 || st.Pending == nil {
		return 0, 0
	}
	t, err := LoadTarget(labDir, bisectTarget)
	if err != nil || !t.Started.After(st.Pending.Start) {
		return 0, 0
	}
	if s := t.Status(ctx); s.State != "running" || !s.Ready {
		return 0, 0
	}
	return len(st.Steps) + 1, t.Boots
}

// killSession kills (SIGKILL) every process left in session sid, found by the
// session field of /proc/PID/stat.
func killSession(sid int) {
	if sid <= 0 {
		return
	}
	for _, pid := range sessionProcs(sid) {
		syscall.Kill(pid, syscall.SIGKILL)
	}
}

// sessionProcs lists the processes of session sid.
func sessionProcs(sid int) []int {
	ents, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// pid (comm) state ppid pgrp session ...: comm may hold spaces and ')'.
		i := bytes.LastIndexByte(b, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(b[i+1:]))
		if len(f) > 3 && f[3] == strconv.Itoa(sid) {
			out = append(out, pid)
		}
	}
	return out
}
