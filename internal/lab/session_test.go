package lab

import (
	"os/exec"
	"syscall"
	"testing"
	"time"
)

// TestKillSession: a controller started in a session of its own is killed and
// leaves behind a hook that made a process group of its own (as kcrash bisect's
// load hooks do); killSession ends the orphan too.
func TestKillSession(t *testing.T) {
	// set -m: the background job gets a process group of its own.
	cmd := exec.Command("sh", "-c", "set -m; sleep 300 & exec sleep 300")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sid := cmd.Process.Pid
	waitFor := func(what string, ok func() bool) {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); !ok(); {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	waitFor("the controller's children", func() bool { return len(sessionProcs(sid)) >= 2 })
	groups := map[int]bool{}
	for _, pid := range sessionProcs(sid) {
		g, _ := syscall.Getpgid(pid)
		groups[g] = true
	}
	if len(groups) < 2 {
		t.Logf("the hook shares the controller's process group (%v): killSession is still checked", groups)
	}
	cmd.Process.Kill()
	cmd.Wait()
	if len(sessionProcs(sid)) == 0 {
		t.Fatal("nothing left in the session after the controller's death: the test proves nothing")
	}
	killSession(sid)
	waitFor("the session to be empty", func() bool {
		for _, pid := range sessionProcs(sid) {
			var ws syscall.WaitStatus
			syscall.Wait4(pid, &ws, syscall.WNOHANG, nil) // reap what is ours
		}
		return len(sessionProcs(sid)) == 0
	})
}
