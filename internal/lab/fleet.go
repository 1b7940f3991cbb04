package lab

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"
)

// FleetOptions describe a fleet: N guests that all send netconsole to one
// receiver, some of which are crashed on command.
type FleetOptions struct {
	// N is the number of guests (fleet-1 … fleet-N). Each TCG guest wants a core
	// while it boots; more guests than cores boot slower but work.
	N int
	// To is the receiver, host:port. 127.0.0.1 or localhost is reached through
	// QEMU's user network as 10.0.2.2; any other IPv4 address through its NAT.
	To string
	// Extended selects extended netconsole (configfs target, no ring buffer replay)
	// instead of plain (module parameter, replays the ring buffer).
	Extended bool
	// Crash names the guests to crash; when empty, the first CrashCount are.
	Crash      []string
	CrashCount int
	// Trigger is the LKDTM crash type (default ACCESS_NULL); Args are extra kernel
	// parameters of every guest (default "oops=panic", so an oops panics).
	Trigger string
	Args    string
	// Dir keeps the guests' consoles (NAME.serial) and QEMU files; required.
	Dir string
	// BootTimeout bounds the wait for all guests to be ready (default 30 s + 10 s per
	// guest); CrashTimeout the wait for each crash (default 60 s).
	BootTimeout  time.Duration
	CrashTimeout time.Duration
	Memory       string
}

// FleetGuest is one guest's story.
type FleetGuest struct {
	Name string `json:"name"`
	// Told says the guest was told to crash.
	Told bool `json:"told"`
	// Crashed says the guest panicked (pvpanic or the panic trailer on its console).
	Crashed bool `json:"crashed"`
	// Seconds counts from the trigger to the panic, for crashed guests.
	Seconds      float64 `json:"seconds,omitempty"`
	PanicMessage string  `json:"panic_message,omitempty"`
	Serial       string  `json:"serial"`
	Cmdline      string  `json:"cmdline"`
	Error        string  `json:"error,omitempty"`
}

// FleetResult is what RunFleet reports.
type FleetResult struct {
	To       string       `json:"to"`
	Extended bool         `json:"extended"`
	Trigger  string       `json:"trigger"`
	Guests   []FleetGuest `json:"guests"`
}

// Crashed names the guests that crashed.
func (r *FleetResult) Crashed() []string {
	var out []string
	for _, g := range r.Guests {
		if g.Crashed {
			out = append(out, g.Name)
		}
	}
	return out
}

// guestDest maps a receiver address to what a guest on QEMU's user network sends to.
func guestDest(to string) (ip string, port int, err error) {
	host, p, err := net.SplitHostPort(to)
	if err != nil {
		return "", 0, fmt.Errorf("fleet --to %q: %w", to, err)
	}
	port, err = strconv.Atoi(p)
	if err != nil || port <= 0 || port > 65535 {
		return "", 0, fmt.Errorf("fleet --to %q: bad port", to)
	}
	switch host {
	case "", "localhost", "127.0.0.1":
		return "10.0.2.2", port, nil // slirp delivers 10.0.2.2 to the host's loopback
	}
	a := net.ParseIP(host)
	if a == nil || a.To4() == nil {
		return "", 0, fmt.Errorf("fleet --to %q: the host must be an IPv4 address", to)
	}
	return a.String(), port, nil
}

// RunFleet boots the fleet, waits until every guest is ready, crashes the chosen
// ones (writing the trigger to their command port) and reports which crashed.
// All guests are stopped before it returns.
func RunFleet(ctx context.Context, cfg Config, k *Kernel, o FleetOptions) (*FleetResult, error) {
	if o.N <= 0 {
		return nil, errors.New("fleet: need at least one guest")
	}
	if o.Dir == "" {
		return nil, errors.New("fleet: no directory for the guests' files")
	}
	dest, port, err := guestDest(o.To)
	if err != nil {
		return nil, err
	}
	if o.Trigger == "" {
		o.Trigger = "ACCESS_NULL"
	}
	if o.Args == "" {
		o.Args = "oops=panic"
	}
	if o.BootTimeout == 0 {
		o.BootTimeout = 30*time.Second + time.Duration(o.N)*10*time.Second
	}
	if o.CrashTimeout == 0 {
		o.CrashTimeout = 60 * time.Second
	}
	if err := os.MkdirAll(o.Dir, 0o755); err != nil {
		return nil, err
	}
	res := &FleetResult{To: o.To, Extended: o.Extended, Trigger: o.Trigger}
	names := make([]string, o.N)
	told := map[string]bool{}
	for i := range names {
		names[i] = fmt.Sprintf("fleet-%d", i+1)
	}
	if len(o.Crash) > 0 {
		known := map[string]bool{}
		for _, n := range names {
			known[n] = true
		}
		for _, n := range o.Crash {
			if !known[n] {
				return nil, fmt.Errorf("fleet: no guest %q (guests are fleet-1 … fleet-%d)", n, o.N)
			}
			told[n] = true
		}
	} else {
		if o.CrashCount > o.N {
			return nil, fmt.Errorf("fleet: cannot crash %d of %d guests", o.CrashCount, o.N)
		}
		for _, n := range names[:o.CrashCount] {
			told[n] = true
		}
	}
	nc := fmt.Sprintf("plain@%d", port)
	if o.Extended {
		nc = fmt.Sprintf("ext@%d", port)
	}

	guests := make([]*Guest, o.N)
	defer func() {
		for _, g := range guests {
			if g != nil {
				g.Quit()
			}
		}
	}()
	for i, name := range names {
		base := filepath.Join(o.Dir, name)
		fg := FleetGuest{Name: name, Told: told[name], Serial: base + ".serial"}
		fg.Cmdline = fmt.Sprintf("lab_name=%s lab_trigger=wait lab_nc=%s lab_dest=%s lab_wait=100000 %s %s",
			name, nc, dest, BaseArgs, o.Args)
		os.Remove(fg.Serial)
		g, err := StartGuest(ctx, GuestConfig{
			Kernel: k, Append: fg.Cmdline, Memory: o.Memory,
			Serial: fg.Serial, QMP: base + ".qmp", Command: base + ".cmd", Log: base + ".qemu.log",
		})
		if err != nil {
			return nil, fmt.Errorf("fleet: %s: %w", name, err)
		}
		fg.Cmdline = "console=ttyS0 " + fg.Cmdline
		guests[i] = g
		res.Guests = append(res.Guests, fg)
		cfg.progress("fleet: %s started", name)
	}

	// Ready means init waits on ttyS1 (lab/init.sh says so on the console).
	deadline := time.Now().Add(o.BootTimeout)
	for i, g := range guests {
		for !g.SerialContains("LAB: waiting for a trigger") {
			if time.Now().After(deadline) {
				return nil, fmt.Errorf("fleet: %s not ready after %s (see %s)", names[i], o.BootTimeout, res.Guests[i].Serial)
			}
			select {
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
	cfg.progress("fleet: %d guests ready; crashing %d with %s", o.N, len(told), o.Trigger)

	var wg sync.WaitGroup
	for i, g := range guests {
		fg := &res.Guests[i]
		if !fg.Told {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			t0 := time.Now()
			if err := g.SendCommand(o.Trigger); err != nil {
				fg.Error = err.Error()
				return
			}
			out, err := g.Wait(ctx, o.CrashTimeout)
			if err != nil {
				fg.Error = err.Error()
				return
			}
			if out == OutcomePanic {
				fg.Crashed = true
				fg.Seconds = round3(time.Since(t0).Seconds())
			} else {
				fg.Error = fmt.Sprintf("told to crash, outcome %s", out)
			}
		}()
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	// The others must still be alive; a panic there is reported as a crash too.
	for i := range res.Guests {
		fg := &res.Guests[i]
		data, _ := os.ReadFile(fg.Serial)
		f := ExtractFacts(data, "")
		fg.PanicMessage = f.PanicMessage
		if !fg.Told && (f.PanicTrailer || f.PanicMessage != "") {
			fg.Crashed = true
			fg.Error = "crashed without being told to"
		}
	}
	return res, nil
}
