package main

// The real hooks of kcrash repro and soak: shell commands for the load, restart
// and readiness, and the collector they watch (a running kcrash serve read through
// its JSON API, or one embedded in the command).

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/kcrash/kcrash/internal/collector"
	"github.com/kcrash/kcrash/internal/netconsole"
	"github.com/kcrash/kcrash/internal/repro"
	"github.com/kcrash/kcrash/internal/store"
)

// shellLoad runs a load command with sh -c in its own process group, so stopping
// it ends everything it started.
type shellLoad struct {
	cmd    string
	env    []string
	stderr io.Writer
}

type shellProc struct {
	c    *exec.Cmd
	done chan struct{}
	err  error
	once sync.Once
}

func (l *shellLoad) Start(ctx context.Context) (repro.Process, error) {
	c := exec.Command("sh", "-c", l.cmd)
	c.Env = append(os.Environ(), l.env...)
	c.Stdout, c.Stderr = l.stderr, l.stderr
	c.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := c.Start(); err != nil {
		return nil, fmt.Errorf("%q: %w", l.cmd, err)
	}
	p := &shellProc{c: c, done: make(chan struct{})}
	go func() {
		err := c.Wait()
		if err != nil {
			err = fmt.Errorf("%q: %w", l.cmd, err)
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

// shellHook is a restart hook or readiness check: sh -c CMD, killed (with its
// process group) when ctx ends.
func shellHook(cmd string, env []string, stderr io.Writer) repro.Hook {
	if cmd == "" {
		return nil
	}
	return func(ctx context.Context) error {
		p, err := (&shellLoad{cmd: cmd, env: env, stderr: stderr}).Start(ctx)
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

// hostMatcher says whether a collector host (its id, ADDR:PORT, and name) is the
// one --host names: the same id, the same name, or the same address when --host
// has no port (a lab guest's source port changes with every boot).
type hostMatcher string

func (m hostMatcher) match(id, name string) bool {
	h := string(m)
	if id == h || name != "" && name == h {
		return true
	}
	if _, err := netip.ParseAddr(h); err == nil {
		if ap, err := netip.ParseAddrPort(id); err == nil {
			return ap.Addr().String() == h
		}
	}
	return false
}

func crashOf(r *store.Report, seen time.Time) repro.Crash {
	return repro.Crash{ID: r.ID, Host: r.Host, Time: r.Time, Seen: seen, Kind: r.Kind, Title: r.Title, Signature: r.Signature, Panicked: r.Panicked}
}

// serverWatcher reads a running kcrash serve's JSON API: /api/reports for new
// reports (by id), /api/hosts (once a second) for the host's last contact.
type serverWatcher struct {
	base   string
	host   hostMatcher
	client *http.Client

	started   bool
	maxID     int64
	hostsAt   time.Time
	last      repro.Observation
	checkedAt time.Time
}

func newServerWatcher(server, host string) *serverWatcher {
	return &serverWatcher{base: strings.TrimSuffix(server, "/"), host: hostMatcher(host), client: &http.Client{Timeout: 5 * time.Second}}
}

func (w *serverWatcher) get(ctx context.Context, path string, v any) error {
	req, err := http.NewRequestWithContext(ctx, "GET", w.base+path, nil)
	if err != nil {
		return err
	}
	resp, err := w.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("%s%s: %s: %s", w.base, path, resp.Status, strings.TrimSpace(string(body)))
	}
	return json.NewDecoder(io.LimitReader(resp.Body, 64<<20)).Decode(v)
}

// Poll implements repro.Watcher.
func (w *serverWatcher) Poll(ctx context.Context) (repro.Observation, error) {
	var obs repro.Observation
	// Newest first; page back until the last report already seen.
	var fresh []store.Report
	before := int64(0)
	for {
		q := "/api/reports?limit=200"
		if before > 0 {
			q += "&before=" + strconv.FormatInt(before, 10)
		}
		var page struct {
			Reports []store.Report `json:"reports"`
		}
		if err := w.get(ctx, q, &page); err != nil {
			return obs, err
		}
		done := len(page.Reports) < 200 || !w.started
		for _, r := range page.Reports {
			if r.ID <= w.maxID {
				done = true
				break
			}
			fresh = append(fresh, r)
			before = r.ID
		}
		if done {
			break
		}
	}
	seen := time.Now()
	for i := len(fresh) - 1; i >= 0; i-- {
		r := &fresh[i]
		w.maxID = max(w.maxID, r.ID)
		if w.started && w.host.match(r.Host, "") {
			obs.Reports = append(obs.Reports, crashOf(r, seen))
		}
	}
	if !w.started || time.Since(w.hostsAt) >= time.Second {
		var hs struct {
			Hosts []store.Host `json:"hosts"`
		}
		if err := w.get(ctx, "/api/hosts", &hs); err != nil {
			return obs, err
		}
		w.hostsAt = time.Now()
		for _, h := range hs.Hosts {
			if w.host.match(h.ID, h.Name) {
				if h.LastSeen.After(w.last.LastSeen) {
					w.last.LastSeen = h.LastSeen
				}
				if h.LastBoot.After(w.last.LastBoot) {
					w.last.LastBoot = h.LastBoot
				}
			}
		}
	}
	w.started = true
	obs.LastSeen, obs.LastBoot = w.last.LastSeen, w.last.LastBoot
	return obs, nil
}

// embeddedWatcher is a collector of its own: netconsole on a UDP port, reports
// into the crash database, the watched host's datagrams timed as they arrive.
type embeddedWatcher struct {
	host hostMatcher
	col  *collector.Collector
	rcv  *netconsole.Receiver
	st   store.Store
	stop context.CancelFunc
	errc chan error

	mu       sync.Mutex
	reports  []repro.Crash
	lastSeen time.Time
	bootAt   time.Time
	lastBoot time.Time
}

func startEmbedded(ctx context.Context, udp, db, host string) (*embeddedWatcher, error) {
	st, err := openStore(ctx, db)
	if err != nil {
		return nil, err
	}
	w := &embeddedWatcher{host: hostMatcher(host), st: st, errc: make(chan error, 1)}
	w.col = collector.New(collector.Options{Store: st})
	w.col.OnReport(func(r *store.Report) {
		if !w.host.match(r.Host, "") {
			return
		}
		c := crashOf(r, time.Now())
		w.mu.Lock()
		w.reports = append(w.reports, c)
		w.mu.Unlock()
	})
	w.rcv, err = netconsole.Listen(ctx, udp, netconsole.ListenOptions{})
	if err != nil {
		st.Close()
		return nil, err
	}
	cctx, stop := context.WithCancel(context.Background())
	w.stop = stop
	go w.col.Run(cctx, 10*time.Second)
	go func() {
		w.errc <- w.rcv.Run(func(socket int, now time.Time, pkts []netconsole.Packet) {
			for i := range pkts {
				if w.host.match(pkts[i].From.String(), "") {
					w.mu.Lock()
					w.lastSeen = now
					w.mu.Unlock()
					break
				}
			}
			w.col.HandleBatch(socket, now, pkts)
		})
	}()
	return w, nil
}

// Addr is the UDP address netconsole should be sent to.
func (w *embeddedWatcher) Addr() net.Addr { return w.rcv.Addr() }

// Poll implements repro.Watcher.
func (w *embeddedWatcher) Poll(ctx context.Context) (repro.Observation, error) {
	select {
	case err := <-w.errc:
		w.errc <- err
		return repro.Observation{}, fmt.Errorf("netconsole receiver: %w", err)
	default:
	}
	if time.Since(w.bootAt) >= time.Second {
		// New boots (extended netconsole's sequence reset) reach the store each second.
		if hs, err := w.st.Hosts(ctx); err == nil {
			for _, h := range hs {
				if w.host.match(h.ID, h.Name) && h.LastBoot.After(w.lastBoot) {
					w.lastBoot = h.LastBoot
				}
			}
		}
		w.bootAt = time.Now()
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	obs := repro.Observation{Reports: w.reports, LastSeen: w.lastSeen, LastBoot: w.lastBoot}
	w.reports = nil
	return obs, nil
}

// Close stops the receiver, completes the collector's captures and closes the store.
func (w *embeddedWatcher) Close() error {
	w.rcv.Close()
	w.stop()
	<-w.col.Done()
	return w.st.Close()
}

// openWatcher returns the collector a command watches: --server's API, or an
// embedded collector on --udp writing to --db. close is never nil.
func openWatcher(ctx context.Context, env *cmdEnv, server, udp, db, host string) (repro.Watcher, func(), error) {
	if server != "" {
		if _, err := url.Parse(server); err != nil {
			return nil, nil, fmt.Errorf("--server: %w", err)
		}
		return newServerWatcher(server, host), func() {}, nil
	}
	if udp == "" {
		return nil, nil, errors.New("need --server URL (a running kcrash serve) or --udp ADDR (a collector of its own)")
	}
	w, err := startEmbedded(ctx, udp, db, host)
	if err != nil {
		return nil, nil, err
	}
	fmt.Fprintf(env.stderr, "collecting netconsole on udp %s into %s\n", w.Addr(), redact(db))
	return w, func() { w.Close() }, nil
}
