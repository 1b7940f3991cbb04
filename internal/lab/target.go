package lab

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"time"
)

// A target is a long-running lab guest that outlives the command that started it:
// a controller (kcrash repro, soak, bisect, or a person) drives it with load,
// reboots it into another kernel ABI (the "install + reboot" of a bisection step)
// and reads its state. Its files live in Dir/targets/NAME: state.json, the
// console of every boot appended to console.log, QEMU's QMP socket and log.

// TargetOptions configure a target's boots.
type TargetOptions struct {
	Name string `json:"name"`
	// ABI is the kernel to boot (resolved; see ResolveKernel).
	ABI string `json:"abi"`
	// Args are extra kernel parameters (e.g. "lab_load=netrace netrace.buggy_from=…").
	Args string `json:"args,omitempty"`
	// To is the netconsole collector host:port ("" for none); Extended selects the
	// extended format.
	To       string `json:"to,omitempty"`
	Extended bool   `json:"extended,omitempty"`
	Memory   string `json:"memory,omitempty"`
}

// TargetState is a target's state.json.
type TargetState struct {
	TargetOptions
	PID     int       `json:"pid"`
	Cmdline string    `json:"cmdline"`
	UDPPort int       `json:"udp_port"` // host loopback port forwarded to the guest's UDP port 9
	Started time.Time `json:"started"`  // this boot
	Boots   int       `json:"boots"`
	// ConsoleOffset is where this boot's console starts in console.log.
	ConsoleOffset int64  `json:"console_offset"`
	Dir           string `json:"dir"`
}

// TargetStatus is what Status says of a target.
type TargetStatus struct {
	Name  string `json:"name"`
	ABI   string `json:"abi"`
	State string `json:"state"` // running, booting, crashed, stopped
	// Ready says the guest finished booting (its init said so on the console).
	Ready   bool    `json:"ready"`
	PID     int     `json:"pid,omitempty"`
	UDPPort int     `json:"udp_port,omitempty"`
	Uptime  float64 `json:"uptime_s,omitempty"`
	Boots   int     `json:"boots"`
	// Panic is the panic message of this boot, when it crashed.
	Panic   string `json:"panic,omitempty"`
	Console string `json:"console"`
}

var targetNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$`)

func targetDir(root, name string) (string, error) {
	if !targetNameRE.MatchString(name) {
		return "", fmt.Errorf("target name %q: use letters, digits, '.', '_' and '-'", name)
	}
	return filepath.Join(root, "targets", name), nil
}

// LoadTarget reads a target's state.
func LoadTarget(root, name string) (*TargetState, error) {
	dir, err := targetDir(root, name)
	if err != nil {
		return nil, err
	}
	data, err := os.ReadFile(filepath.Join(dir, "state.json"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("no lab target %q (kcrash lab target start %s)", name, name)
	}
	if err != nil {
		return nil, err
	}
	var st TargetState
	if err := json.Unmarshal(data, &st); err != nil {
		return nil, fmt.Errorf("target %s: state.json: %w", name, err)
	}
	st.Dir = dir
	return &st, nil
}

func (st *TargetState) save() error {
	data, _ := json.MarshalIndent(st, "", "  ")
	return writeFileAtomic(filepath.Join(st.Dir, "state.json"), append(data, '\n'))
}

// Console is the path of the target's console log (all boots).
func (st *TargetState) Console() string { return filepath.Join(st.Dir, "console.log") }

func (st *TargetState) alive() bool {
	if st.PID <= 0 {
		return false
	}
	if err := syscall.Kill(st.PID, 0); err != nil {
		return false
	}
	// A recycled PID is not our QEMU: its command line names our QMP socket.
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", st.PID))
	return err == nil && bytes.Contains(cmdline, []byte(filepath.Join(st.Dir, "qmp.sock")))
}

// StartTarget boots a new target (or a stopped one again, with new options) in
// the background and returns once QEMU runs; it does not wait for the guest to
// boot (WaitTargetReady does).
func StartTarget(ctx context.Context, cfg Config, k *Kernel, o TargetOptions) (*TargetState, error) {
	dir, err := targetDir(cfg.Dir, o.Name)
	if err != nil {
		return nil, err
	}
	if old, err := LoadTarget(cfg.Dir, o.Name); err == nil && old.alive() {
		return nil, fmt.Errorf("target %s is running (pid %d); stop or reboot it", o.Name, old.PID)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	st := &TargetState{TargetOptions: o, Dir: dir}
	st.ABI = k.Release
	if old, err := LoadTarget(cfg.Dir, o.Name); err == nil {
		st.Boots = old.Boots
	}
	return st, st.boot(ctx, k)
}

func (st *TargetState) boot(ctx context.Context, k *Kernel) error {
	nc := "none"
	dest := "10.0.2.2"
	if st.To != "" {
		ip, port, err := guestDest(st.To)
		if err != nil {
			return err
		}
		dest = ip
		nc = fmt.Sprintf("plain@%d", port)
		if st.Extended {
			nc = fmt.Sprintf("ext@%d", port)
		}
	}
	port, err := freeUDPPort()
	if err != nil {
		return err
	}
	st.UDPPort = port
	st.Cmdline = strings.Join(strings.Fields(fmt.Sprintf("lab_name=%s lab_trigger=idle lab_nc=%s lab_dest=%s oops=panic %s %s",
		st.Name, nc, dest, BaseArgs, st.Args)), " ")
	if fi, err := os.Stat(st.Console()); err == nil {
		st.ConsoleOffset = fi.Size()
	} else {
		st.ConsoleOffset = 0
	}
	g, err := StartGuest(ctx, GuestConfig{
		Kernel: k, Append: st.Cmdline, Memory: st.Memory,
		Serial: st.Console(), AppendSerial: true, QMP: filepath.Join(st.Dir, "qmp.sock"),
		Log: filepath.Join(st.Dir, "qemu.log"), UDPForward: port, PausePanic: true, Detached: true,
	})
	if err != nil {
		return fmt.Errorf("target %s: %w", st.Name, err)
	}
	st.PID = g.PID()
	st.Started = time.Now().UTC()
	st.Boots++
	g.Detach()
	return st.save()
}

// freeUDPPort asks the kernel for a free loopback UDP port.
func freeUDPPort() (int, error) {
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port, nil
}

// bootConsole is this boot's part of the console log.
func (st *TargetState) bootConsole() []byte {
	data, _ := os.ReadFile(st.Console())
	if st.ConsoleOffset <= int64(len(data)) {
		data = data[st.ConsoleOffset:]
	}
	return data
}

// Status reports the target's state: stopped (no QEMU), crashed (this boot
// panicked, or QEMU says guest-panicked), booting or running.
func (st *TargetState) Status(ctx context.Context) TargetStatus {
	s := TargetStatus{Name: st.Name, ABI: st.ABI, Boots: st.Boots, Console: st.Console()}
	con := st.bootConsole()
	f := ExtractFacts(con, "")
	s.Ready = bytes.Contains(con, []byte("kcrash-lab: guest "+st.Name+" ready"))
	if !st.alive() {
		s.State = "stopped"
		s.Panic = f.PanicMessage
		return s
	}
	s.PID, s.UDPPort = st.PID, st.UDPPort
	s.Uptime = round3(time.Since(st.Started).Seconds())
	switch {
	case f.PanicMessage != "" || f.PanicTrailer || st.qmpStatus(ctx) == "guest-panicked":
		s.State = "crashed"
		s.Panic = f.PanicMessage
	case s.Ready:
		s.State = "running"
	default:
		s.State = "booting"
	}
	return s
}

func (st *TargetState) qmpStatus(ctx context.Context) string {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	q, err := DialQMP(ctx, filepath.Join(st.Dir, "qmp.sock"))
	if err != nil {
		return ""
	}
	defer q.Close()
	raw, err := q.Execute(ctx, "query-status", nil)
	if err != nil {
		return ""
	}
	var r struct {
		Status string `json:"status"`
	}
	json.Unmarshal(raw, &r)
	return r.Status
}

// WaitReady waits until the target's guest is booted (or crashed, or gone).
func (st *TargetState) WaitReady(ctx context.Context, timeout time.Duration) (TargetStatus, error) {
	deadline := time.Now().Add(timeout)
	for {
		s := st.Status(ctx)
		switch {
		case s.State == "running":
			return s, nil
		case s.State == "crashed" || s.State == "stopped":
			return s, fmt.Errorf("target %s %s while booting (see %s)", st.Name, s.State, st.Console())
		case time.Now().After(deadline):
			return s, fmt.Errorf("target %s not ready after %s (see %s)", st.Name, timeout, st.Console())
		}
		select {
		case <-ctx.Done():
			return s, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// Stop ends the target's QEMU (QMP quit, then SIGKILL after 5 s).
func (st *TargetState) Stop(ctx context.Context) error {
	if !st.alive() {
		return nil
	}
	qctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	if q, err := DialQMP(qctx, filepath.Join(st.Dir, "qmp.sock")); err == nil {
		q.Execute(qctx, "quit", nil)
		q.Close()
	}
	cancel()
	for i := 0; i < 50 && st.alive(); i++ {
		time.Sleep(100 * time.Millisecond)
	}
	if st.alive() {
		syscall.Kill(st.PID, syscall.SIGKILL)
		for i := 0; i < 50 && st.alive(); i++ {
			time.Sleep(100 * time.Millisecond)
		}
	}
	if st.alive() {
		return fmt.Errorf("target %s: qemu (pid %d) does not die", st.Name, st.PID)
	}
	return nil
}

// Reboot stops the target and boots it again, into kernel k (which may be another
// ABI than before: the bisection's install + reboot), with the same options.
func (st *TargetState) Reboot(ctx context.Context, k *Kernel) error {
	if err := st.Stop(ctx); err != nil {
		return err
	}
	st.ABI = k.Release
	return st.boot(ctx, k)
}
