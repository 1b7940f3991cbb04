package repro

import (
	"context"
	"strings"
	"testing"
	"time"
)

func TestShellLoad(t *testing.T) {
	// Stop ends the command and what it started (its process group).
	p, err := (&ShellLoad{Cmd: "sleep 30 & sleep 30; wait"}).Start(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	p.Stop()
	select {
	case <-p.Done():
	default:
		t.Fatal("not done after Stop")
	}
	if time.Since(start) > 3*time.Second {
		t.Errorf("Stop took %s", time.Since(start))
	}
	p.Stop() // twice is harmless
	// Exit statuses.
	for _, tc := range []struct{ cmd, err string }{{"true", ""}, {"exit 3", "exit status 3"}, {"no-such-command-kcrash", "exit status 127"}} {
		p, err := (&ShellLoad{Cmd: tc.cmd}).Start(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		<-p.Done()
		if got := p.Err(); tc.err == "" && got != nil || tc.err != "" && (got == nil || !strings.Contains(got.Error(), tc.err)) {
			t.Errorf("%s: %v", tc.cmd, got)
		}
	}
}

func TestShellHook(t *testing.T) {
	if ShellHook("", nil, nil) != nil {
		t.Error("an empty command is a hook")
	}
	var out strings.Builder
	if err := ShellHook(`echo "$KCRASH_HOST"`, []string{"KCRASH_HOST=h1"}, &out)(context.Background()); err != nil || out.String() != "h1\n" {
		t.Errorf("err %v, out %q", err, out.String())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	if err := ShellHook("sleep 30", nil, nil)(ctx); err == nil || time.Since(start) > 3*time.Second {
		t.Errorf("a hook past its deadline: %v after %s", err, time.Since(start))
	}
}
