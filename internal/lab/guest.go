package lab

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// GuestConfig describes one QEMU boot of the lab kernel.
type GuestConfig struct {
	Kernel *Kernel
	// Append is the kernel command line after console=ttyS0.
	Append string
	VCPUs  int    // default 1
	Memory string // default "128M"
	// Serial is the file the first serial port (the console) is written to.
	Serial string
	// QMP is the path of the QMP unix socket QEMU creates.
	QMP string
	// Command, when set, is a unix socket QEMU creates for the second serial port
	// (the guest's /dev/ttyS1, which init reads triggers from with lab_trigger=wait).
	Command string
	// Log receives QEMU's own stdout and stderr.
	Log string
	// UDPForward, when set, forwards this UDP port of the host's loopback to the
	// guest's port 9 (discard): the way a load generator reaches the guest's NIC.
	UDPForward int
	// WarmReset lets QMP system_reset reboot the guest with its RAM kept (pstore),
	// instead of QEMU exiting as -no-reboot makes it.
	WarmReset bool
	// PausePanic pauses a panicked guest (QEMU runstate guest-panicked, visible to
	// query-status) instead of leaving it spinning in panic().
	PausePanic bool
	// AppendSerial appends to Serial instead of truncating it (a target's console
	// across reboots).
	AppendSerial bool
	// Detached starts QEMU in its own session and lets it outlive this process (lab
	// targets); otherwise QEMU dies with the process that started it.
	Detached bool
	// QEMU overrides qemu-system-x86_64 (tests).
	QEMU string
}

// QEMUArgs returns the qemu-system-x86_64 arguments for c. TCG only (the lab
// machines have no KVM); -cpu max,la57=off keeps 4-level paging; pvpanic tells QMP
// of the panic (and -action panic=none keeps the guest for the dump); vmcoreinfo
// lets the guest's qemu_fw_cfg hand VMCOREINFO to dump-guest-memory.
func (c GuestConfig) QEMUArgs() []string {
	if c.Kernel != nil && c.Kernel.Arch == "arm64" {
		return c.arm64Args()
	}
	vcpus := c.VCPUs
	if vcpus == 0 {
		vcpus = 1
	}
	mem := c.Memory
	if mem == "" {
		mem = "128M"
	}
	args := []string{
		"-accel", "tcg", "-cpu", "max,la57=off", "-m", mem, "-smp", strconv.Itoa(vcpus),
		"-display", "none", "-vga", "none",
	}
	if !c.WarmReset {
		args = append(args, "-no-reboot")
	}
	args = append(args, "-monitor", "none",
		"-kernel", c.Kernel.Vmlinuz, "-initrd", c.Kernel.Initramfs,
		"-append", strings.TrimSpace("console=ttyS0 "+c.Append),
	)
	if c.AppendSerial {
		args = append(args, "-chardev", "file,id=con,path="+c.Serial+",append=on", "-serial", "chardev:con")
	} else {
		args = append(args, "-serial", "file:"+c.Serial)
	}
	if c.Command != "" {
		args = append(args, "-chardev", "socket,id=cmd,path="+c.Command+",server=on,wait=off", "-serial", "chardev:cmd")
	}
	netdev := "user,id=n0"
	if c.UDPForward != 0 {
		netdev += fmt.Sprintf(",hostfwd=udp:127.0.0.1:%d-:9", c.UDPForward)
	}
	panicAction := "panic=none"
	if c.PausePanic {
		panicAction = "panic=pause"
	}
	args = append(args,
		"-netdev", netdev, "-device", "virtio-net-pci,netdev=n0",
		"-device", "pvpanic", "-action", panicAction,
		"-device", "vmcoreinfo",
		"-qmp", "unix:"+c.QMP+",server=on,wait=off",
	)
	return args
}

// Guest is a running QEMU.
type Guest struct {
	cfg     GuestConfig
	cmd     *exec.Cmd
	qmp     *QMP
	cmdConn net.Conn // the second serial port, when GuestConfig.Command is set
	exited  chan struct{}
	waitErr error
	Started time.Time
	// Events are the QMP events seen so far by Wait, with their times.
	Events []Event
}

// StartGuest starts QEMU and connects to its QMP socket.
func StartGuest(ctx context.Context, c GuestConfig) (*Guest, error) {
	for _, p := range []string{c.QMP, c.Command} {
		if p != "" {
			os.Remove(p)
		}
	}
	logf, err := os.Create(c.Log)
	if err != nil {
		return nil, err
	}
	qemu := c.QEMU
	if qemu == "" {
		qemu = QEMUBinary(c.Kernel)
	}
	cmd := exec.Command(qemu, c.QEMUArgs()...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if c.Detached {
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	} else {
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("starting qemu: %w", err)
	}
	g := &Guest{cfg: c, cmd: cmd, exited: make(chan struct{}), Started: time.Now()}
	go func() {
		g.waitErr = cmd.Wait()
		logf.Close()
		close(g.exited)
	}()
	dctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	go func() {
		select {
		case <-g.exited:
			cancel()
		case <-dctx.Done():
		}
	}()
	g.qmp, err = DialQMP(dctx, c.QMP)
	if err == nil && c.Command != "" {
		// Connected for the guest's lifetime: QEMU drops what arrives while no
		// client is attached or the UART cannot take it yet.
		g.cmdConn, err = dialUnix(c.Command, 10*time.Second)
	}
	if err != nil {
		g.Kill()
		log, _ := os.ReadFile(c.Log)
		return nil, fmt.Errorf("%w; qemu: %s", err, bytes.TrimSpace(log))
	}
	return g, nil
}

// Outcome is how a boot ended.
type Outcome string

const (
	OutcomePanic    Outcome = "panic"    // pvpanic's GUEST_PANICKED, or the panic trailer on the console
	OutcomeShutdown Outcome = "shutdown" // the guest powered off (no panic)
	OutcomeTimeout  Outcome = "timeout"  // still running at the deadline
	OutcomeExited   Outcome = "exited"   // QEMU went away by itself
)

// PanicTrailer is what panic() prints last (kernel/panic.c).
const PanicTrailer = "---[ end Kernel panic"

// Wait waits until the guest panics, powers off or QEMU exits, or timeout passes.
// After a panic it waits (up to 5 s) for the panic trailer on the console, since
// pvpanic fires before panic() finishes printing.
func (g *Guest) Wait(ctx context.Context, timeout time.Duration) (Outcome, error) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	outcome := Outcome("")
	for outcome == "" {
		select {
		case ev, ok := <-g.qmp.Events():
			if !ok {
				outcome = OutcomeExited
				break
			}
			g.Events = append(g.Events, ev)
			switch ev.Name {
			case "GUEST_PANICKED":
				outcome = OutcomePanic
			case "SHUTDOWN":
				outcome = OutcomeShutdown
			}
		case <-g.exited:
			outcome = OutcomeExited
		case <-tick.C:
			if g.SerialContains(PanicTrailer) {
				outcome = OutcomePanic
			}
		case <-deadline.C:
			outcome = OutcomeTimeout
		case <-ctx.Done():
			return "", ctx.Err()
		}
	}
	if outcome == OutcomePanic {
		for i := 0; i < 50 && !g.SerialContains(PanicTrailer); i++ {
			time.Sleep(100 * time.Millisecond)
		}
		time.Sleep(300 * time.Millisecond) // netconsole's last datagrams
	}
	return outcome, nil
}

// SerialContains reports whether the console log so far contains s.
func (g *Guest) SerialContains(s string) bool {
	data, err := os.ReadFile(g.cfg.Serial)
	return err == nil && bytes.Contains(data, []byte(s))
}

// Stop pauses the guest's CPUs (QMP stop), so a dump sees one instant.
func (g *Guest) Stop(ctx context.Context) error {
	_, err := g.qmp.Execute(ctx, "stop", nil)
	return err
}

// Dump writes guest memory to path with QMP dump-guest-memory (qapi/dump.json):
// format "elf" (paging selects virtual addresses in the program headers) or
// "kdump-zlib", "kdump-lzo", "kdump-snappy" (QEMU writes makedumpfile's flattened
// format for those), as far as this QEMU supports them.
func (g *Guest) Dump(ctx context.Context, format string, paging bool, path string) error {
	os.Remove(path)
	args := map[string]any{"paging": paging, "protocol": "file:" + path}
	if format != "elf" {
		args["format"] = format
	}
	if _, err := g.qmp.Execute(ctx, "dump-guest-memory", args); err != nil {
		return fmt.Errorf("dump %s to %s: %w", format, path, err)
	}
	return nil
}

// Reset resets the guest (QMP system_reset): with GuestConfig.WarmReset its RAM is
// kept and it boots the same kernel again.
func (g *Guest) Reset(ctx context.Context) error {
	_, err := g.qmp.Execute(ctx, "system_reset", nil)
	return err
}

// HMP runs a human monitor command (QMP human-monitor-command), e.g. "mce …",
// and returns its output; QEMU reports the command's own errors in the output.
func (g *Guest) HMP(ctx context.Context, line string) (string, error) {
	raw, err := g.qmp.Execute(ctx, "human-monitor-command", map[string]any{"command-line": line})
	if err != nil {
		return "", err
	}
	var out string
	if err := json.Unmarshal(raw, &out); err != nil {
		return "", fmt.Errorf("hmp %q: %w", line, err)
	}
	return out, nil
}

// PID is QEMU's process id.
func (g *Guest) PID() int { return g.cmd.Process.Pid }

// Exited is closed when QEMU has exited.
func (g *Guest) Exited() <-chan struct{} { return g.exited }

// Detach closes the QMP connection and leaves QEMU running (lab targets).
func (g *Guest) Detach() {
	g.qmp.Close()
	if g.cmdConn != nil {
		g.cmdConn.Close()
	}
}

// SendCommand writes one line to the guest's second serial port (GuestConfig.Command).
func (g *Guest) SendCommand(line string) error {
	if g.cmdConn == nil {
		return errors.New("guest has no command port")
	}
	_, err := g.cmdConn.Write([]byte(line + "\n"))
	return err
}

// Quit asks QEMU to quit and waits for it (killing it after 10 s).
func (g *Guest) Quit() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	select {
	case <-g.exited:
	default:
		g.qmp.Execute(ctx, "quit", nil) // QEMU may close the socket before replying
	}
	select {
	case <-g.exited:
	case <-time.After(10 * time.Second):
		g.Kill()
	}
	g.qmp.Close()
	if g.cmdConn != nil {
		g.cmdConn.Close()
	}
	os.Remove(g.cfg.QMP)
	if g.cfg.Command != "" {
		os.Remove(g.cfg.Command)
	}
	return nil
}

// Kill kills QEMU and waits for it.
func (g *Guest) Kill() {
	g.cmd.Process.Kill()
	<-g.exited
	if g.qmp != nil {
		g.qmp.Close()
	}
	if g.cmdConn != nil {
		g.cmdConn.Close()
	}
}
