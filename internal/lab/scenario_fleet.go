package lab

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"
)

// The fleet scenario: hosts on several kernel ABIs under the UDP flood with the
// race gated at one ABI, a host with a bad DIMM (corrected machine checks, then bit
// flips), and a healthy host, all streaming netconsole into one `kcrash serve`
// (run from the kcrash binary), whose API answers at the end are the result.
//
// Two lab facts shape it:
//   - netconsole cannot deliver an oops raised inside the NIC's own NAPI poll (the
//     race's): netpoll defers it and the panic never sends it. So when a crashed
//     host's report has not reached the collector a few seconds after the panic,
//     the scenario forwards the host's serial console to serve's ingest API
//     (POST /api/ingest?host=ID) under the host's netconsole ID, so report and
//     stream are one host.
//   - Plain netconsole replays the ring buffer, so serve learns each host's release
//     from its boot banner.
//   - A quiet guest prints nothing, and host-hours come from the hosts' streams, so
//     every guest gets an NMI through QEMU's monitor every few seconds: the kernel
//     logs "NMI received for unknown reason", a line that keeps the stream alive
//     the way a real host's log chatter does.
//
// Guests run two at a time (TCG on two cores), in three waves of a few minutes
// in all; serve names the hosts from an inventory the scenario writes as it
// learns which netconsole source each guest is (the "guest … ready" line in
// serve's raw logs).

// FleetScenarioConfig is the scenario's input.
type FleetScenarioConfig struct {
	GatedABI      string   `json:"gated_abi"`
	PreviousABI   string   `json:"previous_abi"`
	HardwareHosts []string `json:"hardware_hosts"`
	HealthyHosts  []string `json:"healthy_hosts"`
}

// FleetScenarioHost is one guest of the scenario and what happened to it.
type FleetScenarioHost struct {
	Name    string  `json:"name"`
	ID      string  `json:"id"` // serve's host ID (the netconsole source)
	ABI     string  `json:"abi"`
	Role    string  `json:"role"` // "race", "hardware" or "healthy"
	Crashed bool    `json:"crashed"`
	Seconds float64 `json:"seconds"`
	Crash   *Crash  `json:"crash,omitempty"`
	// Forwarded: the report did not arrive over netconsole, so the serial console
	// was posted to serve's ingest API.
	Forwarded bool   `json:"forwarded"`
	Serial    string `json:"serial"`
}

// FleetScenarioResult is `kcrash lab scenario fleet --json`: the config, then the
// group and host objects serve's API answered at the end.
type FleetScenarioResult struct {
	Config  FleetScenarioConfig `json:"config"`
	Groups  json.RawMessage     `json:"groups"`
	Hosts   json.RawMessage     `json:"hosts"`
	Targets []FleetScenarioHost `json:"targets"`
	// DB, Inventory and State are serve's files, kept for tests that serve them
	// again.
	DB        string `json:"db"`
	Inventory string `json:"inventory"`
	State     string `json:"state"`
}

// fleetServe is the scenario's kcrash serve.
type fleetServe struct {
	cmd             *exec.Cmd
	udp, http, logs string
	token           string
	inventory       string
	mu              sync.Mutex
	names           []string // inventory lines
	done            chan error
}

var serveBanner = regexp.MustCompile(`netconsole on udp (\S+), dashboard on http://([^/\s]+)/`)

func startFleetServe(ctx context.Context, bin, dir string) (*fleetServe, error) {
	if bin == "" {
		return nil, errors.New("the fleet scenario needs the kcrash binary (ScenarioOptions.Kcrash)")
	}
	tok := make([]byte, 16)
	rand.Read(tok)
	s := &fleetServe{logs: filepath.Join(dir, "logs"), token: hex.EncodeToString(tok),
		inventory: filepath.Join(dir, "hosts.txt"), done: make(chan error, 1)}
	if err := os.WriteFile(s.inventory, []byte("# written by kcrash lab scenario fleet\n"), 0o644); err != nil {
		return nil, err
	}
	s.cmd = exec.Command(bin, "serve", "--udp", "127.0.0.1:0", "--http", "127.0.0.1:0", "--sockets", "1",
		"--db", filepath.Join(dir, "fleet.db"), "--logs", s.logs, "--hosts", s.inventory, "--token", s.token)
	s.cmd.Env = append(os.Environ(), "KCRASH_TOKEN=")
	stderr, err := s.cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	logf, err := os.Create(filepath.Join(dir, "serve.log"))
	if err != nil {
		return nil, err
	}
	if err := s.cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("kcrash serve: %w", err)
	}
	banner := make(chan []string, 1)
	go func() {
		defer logf.Close()
		sc := bufio.NewScanner(stderr)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			fmt.Fprintln(logf, sc.Text())
			if m := serveBanner.FindStringSubmatch(sc.Text()); m != nil {
				select {
				case banner <- m:
				default:
				}
			}
		}
	}()
	go func() { s.done <- s.cmd.Wait() }()
	select {
	case m := <-banner:
		s.udp, s.http = m[1], m[2]
	case err := <-s.done:
		return nil, fmt.Errorf("kcrash serve exited at start: %v (see %s)", err, filepath.Join(dir, "serve.log"))
	case <-time.After(30 * time.Second):
		s.cmd.Process.Kill()
		return nil, errors.New("kcrash serve did not start in 30s")
	case <-ctx.Done():
		s.cmd.Process.Kill()
		return nil, ctx.Err()
	}
	return s, nil
}

// stop ends serve the way an operator does (SIGTERM), so it saves its state.
func (s *fleetServe) stop() error {
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-s.done:
		return err
	case <-time.After(30 * time.Second):
		s.cmd.Process.Kill()
		return errors.New("kcrash serve did not stop in 30s")
	}
}

func (s *fleetServe) get(ctx context.Context, path string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+s.http+path, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("GET %s: %s", path, resp.Status)
	}
	return b, err
}

// ingest posts a console log to serve as host id.
func (s *fleetServe) ingest(ctx context.Context, id string, log []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+s.http+"/api/ingest?host="+id, bytes.NewReader(log))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+s.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return fmt.Errorf("ingest %s: %s %s", id, resp.Status, b)
	}
	return nil
}

// hostOf finds the netconsole source that said "guest NAME ready" in serve's raw
// logs, waiting up to timeout.
func (s *fleetServe) hostOf(ctx context.Context, name string, timeout time.Duration) (string, error) {
	marker := []byte("kcrash-lab: guest " + name + " ready")
	deadline := time.Now().Add(timeout)
	for {
		files, _ := filepath.Glob(filepath.Join(s.logs, "*.log"))
		for _, f := range files {
			if data, err := os.ReadFile(f); err == nil && bytes.Contains(data, marker) {
				// LogName maps "127.0.0.1:40001" to "127.0.0.1_40001.log".
				base := strings.TrimSuffix(filepath.Base(f), ".log")
				if i := strings.LastIndexByte(base, '_'); i >= 0 {
					return base[:i] + ":" + base[i+1:], nil
				}
			}
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("%s: no netconsole stream reached kcrash serve in %s (raw logs in %s)", name, timeout, s.logs)
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// name adds an inventory line (serve reloads the file when it changes).
func (s *fleetServe) name(id, name, abi, role string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.names = append(s.names, fmt.Sprintf("%s %s abi=%s role=%s", id, name, abi, role))
	return writeFileAtomic(s.inventory, []byte("# written by kcrash lab scenario fleet\n"+strings.Join(s.names, "\n")+"\n"))
}

// hasReport says whether serve holds a report titled title for host id.
func (s *fleetServe) hasReport(ctx context.Context, id, title string) (bool, error) {
	b, err := s.get(ctx, "/api/reports?host="+id)
	if err != nil {
		return false, err
	}
	var r struct {
		Reports []struct {
			Title string `json:"title"`
		} `json:"reports"`
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return false, err
	}
	for _, x := range r.Reports {
		if x.Title == title {
			return true, nil
		}
	}
	return false, nil
}

// fleetHost is one guest's recipe.
type fleetHost struct {
	name, role string
	kernel     *Kernel
	args       string
	flood      bool
	mce        bool // corrected machine checks injected first
	limit      time.Duration
}

// heartbeat is how often each guest gets an NMI (a console line).
const heartbeat = 4 * time.Second

// runFleetHost boots a guest streaming netconsole to serve, loads it, watches it,
// and makes sure serve has its crash.
func runFleetHost(ctx context.Context, s *fleetServe, h fleetHost, dir string) (FleetScenarioHost, error) {
	out := FleetScenarioHost{Name: h.name, ABI: h.kernel.Release, Role: h.role}
	_, port, err := guestDest(s.udp)
	if err != nil {
		return out, err
	}
	g, err := bootScenarioGuest(ctx, bootSpec{Name: h.name, Kernel: h.kernel, Dir: dir, Args: h.args, UDP: h.flood,
		NC: fmt.Sprintf("plain@%d", port)})
	if err != nil {
		return out, err
	}
	defer g.Quit()
	out.Serial = g.Serial
	start := time.Now()
	if h.mce {
		// A failing DIMM announces itself with corrected errors first, before the
		// bit flips (which start 4 s after hwfault loads) bring the kernel down.
		for i := 0; i < 2; i++ {
			if o, err := g.HMP(ctx, MCECorrected); err != nil || strings.TrimSpace(o) != "" {
				return out, fmt.Errorf("%s: injecting a corrected machine check: %v %s", h.name, err, o)
			}
			time.Sleep(1500 * time.Millisecond)
		}
	}
	if out.ID, err = s.hostOf(ctx, h.name, 20*time.Second); err != nil {
		return out, err
	}
	if err := s.name(out.ID, h.name, h.kernel.Release, h.role); err != nil {
		return out, err
	}
	wctx, stop := context.WithCancel(ctx)
	defer stop()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(heartbeat)
		defer t.Stop()
		for {
			select {
			case <-wctx.Done():
				return
			case <-t.C:
				g.HMP(wctx, "nmi") // a guest that just panicked no longer answers: fine
			}
		}
	}()
	if h.flood {
		wg.Add(1)
		go func() {
			defer wg.Done()
			Flood(wctx, LoadOptions{To: fmt.Sprintf("127.0.0.1:%d", g.UDPPort), PPS: 20000})
		}()
	}
	outcome, err := g.Wait(ctx, h.limit)
	stop()
	wg.Wait()
	if err != nil {
		return out, err
	}
	w, err := g.endOf(outcome, start)
	out.Crashed, out.Seconds, out.Crash = w.Crashed, w.Seconds, w.Crash
	if err != nil || !w.Crashed {
		return out, err
	}
	if w.Crash == nil {
		return out, fmt.Errorf("%s panicked, but its console has no report (see %s)", h.name, g.Serial)
	}
	// The report came over netconsole, or it is forwarded from the serial console.
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if ok, err := s.hasReport(ctx, out.ID, w.Crash.Title); err == nil && ok {
			return out, nil
		}
		time.Sleep(250 * time.Millisecond)
	}
	out.Forwarded = true
	return out, s.ingest(ctx, out.ID, w.Console)
}

// runFleetScenario runs the fleet scenario (see the top of this file).
func runFleetScenario(ctx context.Context, cfg *Config, o ScenarioOptions, dir string) (any, error) {
	kernels := make([]*Kernel, len(o.Kernels))
	for i, abi := range o.Kernels {
		k, err := kernelFor(ctx, cfg, abi, true)
		if err != nil {
			return nil, err
		}
		kernels[i] = k
	}
	hw, err := kernelFor(ctx, cfg, o.Kernel, true)
	if err != nil {
		return nil, err
	}
	gi := -1
	for i, k := range kernels {
		if k.Release == o.Gate {
			gi = i
		}
	}
	if gi <= 0 {
		return nil, fmt.Errorf("the gate %s must be one of %q, after the first", o.Gate, o.Kernels)
	}
	res := &FleetScenarioResult{Config: FleetScenarioConfig{GatedABI: o.Gate, PreviousABI: kernels[gi-1].Release,
		HardwareHosts: []string{"bad-dimm"}, HealthyHosts: []string{"healthy"}}}
	race := "lab_load=netrace netrace.buggy_from=" + o.Gate
	var hosts []fleetHost
	for i, k := range kernels {
		hosts = append(hosts, fleetHost{name: fmt.Sprintf("web-%d", i+1), role: "race", kernel: k, args: race, flood: true, limit: 60 * time.Second})
	}
	hosts = append(hosts,
		fleetHost{name: "bad-dimm", role: "hardware", kernel: hw, mce: true, limit: 90 * time.Second,
			args: "oops=panic lab_mce_poll=1 lab_busy=1 lab_load=hwfault hwfault.start_ms=4000"},
		fleetHost{name: "healthy", role: "healthy", kernel: hw, limit: 45 * time.Second, args: "oops=panic lab_mce_poll=1 lab_busy=1"})
	// The hosts on the previous ABI and older run clean: they are healthy too.
	for i := 0; i < gi; i++ {
		res.Config.HealthyHosts = append(res.Config.HealthyHosts, hosts[i].name)
	}
	sort.Strings(res.Config.HealthyHosts)

	s, err := startFleetServe(ctx, o.Kcrash, dir)
	if err != nil {
		return nil, err
	}
	defer s.cmd.Process.Kill()
	res.Targets = make([]FleetScenarioHost, len(hosts))
	var jobs []func(context.Context) error
	for i, h := range hosts {
		jobs = append(jobs, func(ctx context.Context) error {
			r, err := runFleetHost(ctx, s, h, dir)
			res.Targets[i] = r
			cfg.progress("scenario fleet: %s (%s, %s) crashed=%v after %.1fs forwarded=%v", h.name, h.kernel.Release, h.role, r.Crashed, r.Seconds, r.Forwarded)
			return err
		})
	}
	if err := runJobs(ctx, o.Parallel, jobs); err != nil {
		return nil, err
	}
	for _, t := range res.Targets {
		if t.Role == "race" && (CompareABIs(t.ABI, o.Gate) >= 0) != t.Crashed {
			return nil, fmt.Errorf("%s on %s: crashed=%v, but the race is gated at %s", t.Name, t.ABI, t.Crashed, o.Gate)
		}
	}
	// One observation tick and one inventory reload of serve's, then its answers.
	time.Sleep(2 * heartbeat)
	var groups, hostList struct {
		Groups json.RawMessage `json:"groups"`
		Hosts  json.RawMessage `json:"hosts"`
	}
	for _, q := range []struct {
		path string
		v    any
	}{{"/api/groups", &groups}, {"/api/hosts", &hostList}} {
		b, err := s.get(ctx, q.path)
		if err != nil {
			return nil, err
		}
		if err := json.Unmarshal(b, q.v); err != nil {
			return nil, fmt.Errorf("%s: %w", q.path, err)
		}
	}
	res.Groups, res.Hosts = groups.Groups, hostList.Hosts
	if err := s.stop(); err != nil {
		return nil, fmt.Errorf("kcrash serve: %w", err)
	}
	res.DB, res.Inventory, res.State = filepath.Join(dir, "fleet.db"), s.inventory, filepath.Join(dir, "fleet.db.fleet.json")
	return res, nil
}

// printFleetScenario prints what serve concluded: each group's verdict, releases
// and bisect range, then each host's verdict.
func printFleetScenario(w io.Writer, raw json.RawMessage) error {
	var r struct {
		FleetScenarioResult
		Groups []struct {
			Title   string `json:"title"`
			Count   int    `json:"count"`
			Verdict struct {
				Class      string  `json:"class"`
				Confidence float64 `json:"confidence"`
			} `json:"verdict"`
			Releases struct {
				Crashing []struct {
					Release   string  `json:"release"`
					HostHours float64 `json:"host_hours"`
				} `json:"crashing"`
				Clean []struct {
					Release   string  `json:"release"`
					HostHours float64 `json:"host_hours"`
				} `json:"clean"`
			} `json:"releases"`
			Bisect *struct {
				Good, Bad, Command string
			} `json:"bisect_range"`
		} `json:"groups"`
		Hosts []struct {
			ID      string `json:"id"`
			Name    string `json:"name"`
			Release string `json:"release"`
			Verdict *struct {
				Class      string  `json:"class"`
				Confidence float64 `json:"confidence"`
			} `json:"verdict"`
		} `json:"hosts"`
	}
	if err := json.Unmarshal(raw, &r); err != nil {
		return err
	}
	c := r.Config
	fmt.Fprintf(w, "race gated at %s (previous %s); hardware hosts %v, healthy hosts %v\n", c.GatedABI, c.PreviousABI, c.HardwareHosts, c.HealthyHosts)
	for _, t := range r.Targets {
		fmt.Fprintf(w, "  %-9s %-22s %-8s crashed=%-5v %5.1fs forwarded=%v\n", t.Name, t.ABI, t.Role, t.Crashed, t.Seconds, t.Forwarded)
	}
	fmt.Fprintln(w, "groups:")
	for _, g := range r.Groups {
		fmt.Fprintf(w, "  %-8s %.2f  %dx %s\n", g.Verdict.Class, g.Verdict.Confidence, g.Count, g.Title)
		for _, x := range g.Releases.Crashing {
			fmt.Fprintf(w, "           crashing %s (%.4f host-hours)\n", x.Release, x.HostHours)
		}
		for _, x := range g.Releases.Clean {
			fmt.Fprintf(w, "           clean    %s (%.4f host-hours)\n", x.Release, x.HostHours)
		}
		if g.Bisect != nil {
			fmt.Fprintf(w, "           bisect %s → %s: %s\n", g.Bisect.Good, g.Bisect.Bad, g.Bisect.Command)
		}
	}
	fmt.Fprintln(w, "hosts:")
	for _, h := range r.Hosts {
		v := "no verdict"
		if h.Verdict != nil {
			v = fmt.Sprintf("%s %.2f", h.Verdict.Class, h.Verdict.Confidence)
		}
		fmt.Fprintf(w, "  %-9s %-22s %-24s %s\n", h.Name, h.ID, h.Release, v)
	}
	return nil
}
