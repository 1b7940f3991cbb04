package repro

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"
)

// ShellLoad runs a load command with sh -c in its own process group, so stopping
// it ends everything it started.
type ShellLoad struct {
	// Cmd is the command line; Env is added to the environment; Output receives
	// its standard output and error (nil: discarded).
	Cmd    string
	Env    []string
	Output io.Writer
}

type shellProc struct {
	c    *exec.Cmd
	done chan struct{}
	err  error
	once sync.Once
}

// Start implements Load.
func (l *ShellLoad) Start(ctx context.Context) (Process, error) {
	c := exec.Command("sh", "-c", l.Cmd)
	c.Env = append(os.Environ(), l.Env...)
	c.Stdout, c.Stderr = l.Output, l.Output
	c.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := c.Start(); err != nil {
		return nil, fmt.Errorf("%q: %w", l.Cmd, err)
	}
	p := &shellProc{c: c, done: make(chan struct{})}
	go func() {
		err := c.Wait()
		if err != nil {
			err = fmt.Errorf("%q: %w", l.Cmd, err)
		}
		p.err = err
		close(p.done)
	}()
	return p, nil
}

func (p *shellProc) Done() <-chan struct{} { return p.done }

func (p *shellProc) Err() error {
	select {
	case <-p.done:
		return p.err
	default:
		return nil
	}
}

// Stop sends SIGTERM to the process group, SIGKILL after 5 s, and waits.
func (p *shellProc) Stop() error {
	p.once.Do(func() {
		select {
		case <-p.done:
			return
		default:
		}
		pgid := p.c.Process.Pid
		syscall.Kill(-pgid, syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(5 * time.Second):
			syscall.Kill(-pgid, syscall.SIGKILL)
			<-p.done
		}
	})
	return nil
}

// ShellHook returns a restart hook or readiness check: sh -c CMD, killed (with its
// process group) when ctx ends.
func ShellHook(cmd string, env []string, output io.Writer) Hook {
	if cmd == "" {
		return nil
	}
	return func(ctx context.Context) error {
		p, err := (&ShellLoad{Cmd: cmd, Env: env, Output: output}).Start(ctx)
		if err != nil {
			return err
		}
		select {
		case <-p.Done():
			return p.Err()
		case <-ctx.Done():
			p.Stop()
			return ctx.Err()
		}
	}
}
