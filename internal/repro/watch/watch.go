// Package watch is the collector as kcrash repro and soak watch it: a running
// kcrash serve read through its JSON API (Server), or a collector of their own on
// a UDP port (Embedded). Both are repro.Watchers of one host.
package watch

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/kcrash/kcrash/internal/collector"
	"github.com/kcrash/kcrash/internal/netconsole"
	"github.com/kcrash/kcrash/internal/repro"
	"github.com/kcrash/kcrash/internal/store"
)

// HostMatcher says, with Match, whether a collector host (its id, ADDR:PORT, and name) is the
// one --host names: the same id, the same name, or the same address when --host
// has no port (a lab guest's source port changes with every boot).
type HostMatcher string

func (m HostMatcher) Match(id, name string) bool {
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

// Server reads a running kcrash serve's JSON API: /api/reports for new
// reports (by id), /api/hosts (once a second) for the host's last contact.
type Server struct {
	base   string
	host   HostMatcher
	client *http.Client

	started bool
	maxID   int64
	hostsAt time.Time
	last    repro.Observation
}

// NewServer watches host through the kcrash serve at the URL server.
func NewServer(server, host string) *Server {
	return &Server{base: strings.TrimSuffix(server, "/"), host: HostMatcher(host), client: &http.Client{Timeout: 5 * time.Second}}
}

func (w *Server) get(ctx context.Context, path string, v any) error {
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
func (w *Server) Poll(ctx context.Context) (repro.Observation, error) {
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
		if w.started && w.host.Match(r.Host, "") {
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
			if w.host.Match(h.ID, h.Name) {
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

// Embedded is a collector of its own: netconsole on a UDP port, reports
// into the crash database, the watched host's datagrams timed as they arrive.
type Embedded struct {
	host HostMatcher
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

// StartEmbedded starts a collector that listens for netconsole on udp, stores
// reports in st and watches host. Close stops it.
func StartEmbedded(ctx context.Context, udp string, st store.Store, host string) (*Embedded, error) {
	var err error
	w := &Embedded{host: HostMatcher(host), st: st, errc: make(chan error, 1)}
	w.col = collector.New(collector.Options{Store: st})
	w.col.OnReport(func(r *store.Report) {
		if !w.host.Match(r.Host, "") {
			return
		}
		c := crashOf(r, time.Now())
		w.mu.Lock()
		w.reports = append(w.reports, c)
		w.mu.Unlock()
	})
	w.rcv, err = netconsole.Listen(ctx, udp, netconsole.ListenOptions{})
	if err != nil {
		return nil, err
	}
	cctx, stop := context.WithCancel(context.Background())
	w.stop = stop
	go w.col.Run(cctx, 10*time.Second)
	go func() {
		w.errc <- w.rcv.Run(func(socket int, now time.Time, pkts []netconsole.Packet) {
			for i := range pkts {
				if w.host.Match(pkts[i].From.String(), "") {
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
func (w *Embedded) Addr() net.Addr { return w.rcv.Addr() }

// Poll implements repro.Watcher.
func (w *Embedded) Poll(ctx context.Context) (repro.Observation, error) {
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
				if w.host.Match(h.ID, h.Name) && h.LastBoot.After(w.lastBoot) {
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

// Close stops the receiver and completes the collector's captures and stores
// them; the store stays open.
func (w *Embedded) Close() error {
	w.rcv.Close()
	w.stop()
	<-w.col.Done()
	return nil
}
