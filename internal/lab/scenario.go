package lab

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	labfiles "github.com/kcrash/kcrash/lab"

	"github.com/kcrash/kcrash/internal/agent"
	"github.com/kcrash/kcrash/internal/oops"
)

// Scenarios are whole crash stories run on the lab: real kernels booted, real
// loads and faults, real crashes, with the facts a test or a person reads from
// them. Each result is cached under Dir/scenarios/NAME with the hash of its
// recipe (lab version, guest init, lab modules, kernels and parameters) and
// reused until that changes or Force is set.

// ScenarioOptions tune a scenario run.
type ScenarioOptions struct {
	// Force reruns the scenario even when a result of the same recipe is cached.
	Force bool
	// Parallel is how many guests run at once (default 2).
	Parallel int
	// Kernel is the main kernel (an ABI or a --kernel spec; "" for the default).
	Kernel string
	// Kernels and Gate are the regression scenario's ABIs (default: the three newest
	// of the default series and flavour) and the first ABI with the race (default:
	// the middle one).
	Kernels []string
	Gate    string
	// PPS is the flood's packet rate (default 20000).
	PPS int
	// Runs is how many loaded runs per target (race: default 5; regression: 2).
	Runs int
	// Kcrash is the kcrash binary the fleet scenario runs `kcrash serve` from (not
	// part of the recipe).
	Kcrash string `json:"-"`
}

// ScenarioNames are the scenarios RunScenario knows, in the order a full lab run
// does them.
var ScenarioNames = []string{"race", "regression", "hardware", "pstore", "repro", "fleet", "bisect"}

// RunScenario runs (or returns the cached result of) the named scenario and
// returns its result as JSON, plus whether it came from the cache.
func RunScenario(ctx context.Context, cfg Config, name string, o ScenarioOptions) (json.RawMessage, bool, error) {
	if o.Parallel <= 0 {
		o.Parallel = 2
	}
	if o.PPS <= 0 {
		o.PPS = 20000
	}
	var run func(context.Context, *Config, ScenarioOptions, string) (any, error)
	var kernels []string
	var err error
	switch name {
	case "race":
		run = runRaceScenario
		kernels, err = resolveAll(ctx, []string{o.Kernel})
	case "regression":
		run = runRegressionScenario
		kernels, o.Gate, err = regressionKernels(ctx, o)
		o.Kernels = kernels
	case "hardware":
		run = runHardwareScenario
		if o.Kernel == "" {
			o.Kernel = Series(mustDefault(ctx)) + "-amd64" // machine checks need the generic flavour
		}
		kernels, err = resolveAll(ctx, []string{o.Kernel})
	case "fleet":
		// The regression's ABIs with the race gated, and a generic amd64 kernel
		// (machine checks) for the hardware and healthy hosts.
		run = runFleetScenario
		ro := o
		ro.Kernel = ""
		if o.Kernels, o.Gate, err = regressionKernels(ctx, ro); err == nil {
			if o.Kernel == "" {
				o.Kernel = Series(mustDefault(ctx)) + "-amd64"
			}
			kernels, err = resolveAll(ctx, []string{o.Kernel})
		}
	case "bisect":
		// kcrash bisect over the regression's ABIs, the race gated as there.
		run = runBisectScenario
		kernels, o.Gate, err = regressionKernels(ctx, o)
		o.Kernels = kernels
	case "pstore":
		run = runPstoreScenario
		kernels, err = resolveAll(ctx, []string{o.Kernel})
	case "repro":
		run = runReproScenario
		kernels, err = resolveAll(ctx, []string{o.Kernel})
	default:
		return nil, false, fmt.Errorf("no lab scenario %q (%s)", name, strings.Join(ScenarioNames, ", "))
	}
	if err != nil {
		return nil, false, err
	}
	o.Kernel = kernels[0]
	dir := filepath.Join(cfg.Dir, "scenarios", name)
	hash := scenarioHash(name, o)
	resultPath := filepath.Join(dir, "result.json")
	if !o.Force {
		if data, err := os.ReadFile(resultPath); err == nil {
			var c struct {
				Recipe string          `json:"recipe"`
				Result json.RawMessage `json:"result"`
			}
			if json.Unmarshal(data, &c) == nil && c.Recipe == hash && len(c.Result) > 0 {
				return c.Result, true, nil
			}
		}
	}
	os.Remove(resultPath)
	if err := os.RemoveAll(dir); err != nil {
		return nil, false, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, false, err
	}
	res, err := run(ctx, &cfg, o, dir)
	if err != nil {
		return nil, false, fmt.Errorf("lab scenario %s: %w", name, err)
	}
	out, err := json.Marshal(res)
	if err != nil {
		return nil, false, err
	}
	data, _ := json.MarshalIndent(struct {
		Recipe  string          `json:"recipe"`
		Created time.Time       `json:"created"`
		Result  json.RawMessage `json:"result"`
	}{hash, time.Now().UTC(), out}, "", "  ")
	if err := writeFileAtomic(resultPath, append(data, '\n')); err != nil {
		return nil, false, err
	}
	return out, false, nil
}

func mustDefault(ctx context.Context) string {
	abi, err := ResolveABI(ctx)
	if err != nil {
		return "6.1"
	}
	return abi
}

func resolveAll(ctx context.Context, specs []string) ([]string, error) {
	var out []string
	for _, s := range specs {
		abi, err := ResolveKernel(ctx, s)
		if err != nil {
			return nil, err
		}
		out = append(out, abi)
	}
	return out, nil
}

// scenarioHash covers what a scenario's result is made from.
func scenarioHash(name string, o ScenarioOptions) string {
	h := sha256.New()
	o.Force = false
	opts, _ := json.Marshal(o)
	fmt.Fprintf(h, "scenario %s lab %s setup %s modules %s base %q\n%s\n", name, Version, setupHash(), modulesHash(), BaseArgs, opts)
	h.Write(labfiles.GuestInit)
	if name == "pstore" {
		// The agent runs inside the guest: its code is part of the recipe (its
		// source package's hash, not the binary's, so other changes re-run nothing).
		fmt.Fprintf(h, "agent %s\n", agent.SourceHash)
	}
	qa, _ := json.Marshal(GuestConfig{Kernel: &Kernel{}}.QEMUArgs())
	h.Write(qa)
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// kernelFor prepares (or finds) a kernel for a scenario under the cache lock.
func kernelFor(ctx context.Context, cfg *Config, abi string, light bool) (*Kernel, error) {
	unlock, err := Lock(cfg.Dir)
	if err != nil {
		return nil, err
	}
	defer unlock()
	c := *cfg
	c.Kernel, c.Light = abi, light
	return Setup(ctx, c)
}

// runJobs runs the jobs, parallel at a time, and returns the first error.
func runJobs(ctx context.Context, parallel int, jobs []func(context.Context) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	sem := make(chan struct{}, parallel)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var first error
	for _, j := range jobs {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if err := j(ctx); err != nil {
				mu.Lock()
				if first == nil {
					first = err
					cancel()
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if first == nil {
		first = ctx.Err()
	}
	return first
}

// bootSpec is one scenario guest.
type bootSpec struct {
	Name      string
	Kernel    *Kernel
	Args      string // kernel parameters after the lab's
	Dir       string // where NAME.serial etc. go
	UDP       bool   // forward a UDP port for the load
	NC        string // lab_nc (default "none")
	WarmReset bool
	Memory    string
}

// scenarioGuest is a booted scenario guest.
type scenarioGuest struct {
	*Guest
	Spec    bootSpec
	Serial  string
	UDPPort int
	Cmdline string
	Ready   time.Time
}

// bootScenarioGuest starts a guest and waits until its init says it is ready.
func bootScenarioGuest(ctx context.Context, s bootSpec) (*scenarioGuest, error) {
	base := filepath.Join(s.Dir, s.Name)
	sg := &scenarioGuest{Spec: s, Serial: base + ".serial"}
	if s.UDP {
		p, err := freeUDPPort()
		if err != nil {
			return nil, err
		}
		sg.UDPPort = p
	}
	nc := s.NC
	if nc == "" {
		nc = "none"
	}
	sg.Cmdline = strings.Join(strings.Fields(fmt.Sprintf("lab_name=%s lab_trigger=idle lab_nc=%s %s %s",
		s.Name, nc, BaseArgs, s.Args)), " ")
	g, err := StartGuest(ctx, GuestConfig{
		Kernel: s.Kernel, Append: sg.Cmdline, Memory: s.Memory, Serial: sg.Serial,
		QMP: base + ".qmp", Log: base + ".qemu.log", UDPForward: sg.UDPPort, WarmReset: s.WarmReset,
	})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", s.Name, err)
	}
	sg.Guest = g
	marker := "kcrash-lab: guest " + s.Name + " ready"
	deadline := time.Now().Add(90 * time.Second)
	for !g.SerialContains(marker) {
		select {
		case <-g.Exited():
			return nil, fmt.Errorf("%s: qemu exited while booting (see %s)", s.Name, sg.Serial)
		case <-ctx.Done():
			g.Kill()
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			g.Kill()
			return nil, fmt.Errorf("%s: not ready after 90s (see %s)", s.Name, sg.Serial)
		}
		if g.SerialContains(PanicTrailer) {
			g.Kill()
			return nil, fmt.Errorf("%s: panicked while booting (see %s)", s.Name, sg.Serial)
		}
	}
	sg.Ready = time.Now()
	return sg, nil
}

// waitSerial waits until the console shows s, QEMU exits, ctx ends or timeout
// passes; it reports whether s was seen.
func (g *Guest) waitSerial(ctx context.Context, s string, timeout time.Duration) bool {
	deadline := time.After(timeout)
	for !g.SerialContains(s) {
		select {
		case <-ctx.Done():
			return false
		case <-g.Exited():
			return g.SerialContains(s)
		case <-deadline:
			return false
		case <-time.After(100 * time.Millisecond):
		}
	}
	return true
}

// watched is how a watched boot ended: a crash (with the time from start to
// QEMU's panic event and the report that brought it down) or the limit reached.
type watched struct {
	Crashed bool
	Seconds float64
	Crash   *Crash
	Console []byte
}

// endOf reads how a boot watched since start ended; an outcome that is neither
// a panic nor the limit (the guest powered off, QEMU went away) is an error.
func (g *scenarioGuest) endOf(outcome Outcome, start time.Time) (watched, error) {
	var w watched
	w.Console, _ = os.ReadFile(g.Serial)
	switch outcome {
	case OutcomePanic:
		at := g.panicTime()
		if at.IsZero() {
			at = time.Now()
		}
		w.Crashed, w.Seconds, w.Crash = true, round3(at.Sub(start).Seconds()), firstCrash(w.Console)
	case OutcomeTimeout:
		w.Seconds = round3(time.Since(start).Seconds())
	default:
		return w, fmt.Errorf("%s: guest ended with %s, neither a crash nor still running (see %s)", g.Spec.Name, outcome, g.Serial)
	}
	return w, nil
}

// panicTime is when QEMU reported the guest's panic (pvpanic), or zero.
func (g *Guest) panicTime() time.Time {
	for _, ev := range g.Events {
		if ev.Name == "GUEST_PANICKED" {
			return ev.Received
		}
	}
	return time.Time{}
}

// Crash is one crash a scenario saw, as kcrash parse reads its console.
type Crash struct {
	Kind      string `json:"kind"`
	Title     string `json:"title"`
	Function  string `json:"function,omitempty"`
	Signature string `json:"signature"`
}

// firstCrash parses a console log and returns the report that brought the guest
// down: the first one that went on to panic, else the first that is not a log of
// corrected machine checks, else the first.
func firstCrash(log []byte) *Crash {
	reps := oops.Parse(log)
	if len(reps) == 0 {
		return nil
	}
	r := reps[0]
	for i := len(reps) - 1; i >= 0; i-- {
		if !strings.Contains(reps[i].Title, "Machine check events logged") {
			r = reps[i]
		}
	}
	for _, c := range reps {
		if c.Panicked {
			r = c
			break
		}
	}
	c := &Crash{Kind: string(r.Kind), Title: r.Title, Signature: r.Signature}
	if r.IP != nil {
		c.Function = r.IP.Func
	}
	return c
}

// titles are the titles kcrash parse gives to every report of a log.
func titles(log []byte) []string {
	out := []string{}
	for _, r := range oops.Parse(log) {
		out = append(out, r.Title)
	}
	return out
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// splitBoots splits a console log that holds several boots at each kernel banner.
func splitBoots(log []byte) [][]byte {
	const banner = "Linux version "
	var out [][]byte
	for {
		i := bytes.Index(log, []byte(banner))
		if i < 0 {
			break
		}
		j := bytes.Index(log[i+len(banner):], []byte(banner))
		if j < 0 {
			out = append(out, log[i:])
			break
		}
		out = append(out, log[i:i+len(banner)+j])
		log = log[i+len(banner)+j:]
	}
	return out
}
