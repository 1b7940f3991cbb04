package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/kcrash/kcrash/internal/fleet"
	"github.com/kcrash/kcrash/internal/store"
)

// fleetService is serve's fleet insight: the verdict engine, rebuilt from the store
// at start and fed every stored report, the hosts' uptime observed from the store,
// and the alert webhook.
type fleetService struct {
	engine   *fleet.Engine
	notifier *fleet.Notifier // nil without --alert-webhook
	log      *slog.Logger
	// hostsFile is re-read when it changes (hostsMod); a bad version is logged and
	// the previous one kept.
	hostsFile string
	hostsMod  time.Time
	// stateFile keeps the host-hours between runs ("" for none).
	stateFile string
	// stopped is closed when the observer has saved the state for the last time.
	stopped chan struct{}
	saveMu  sync.Mutex // the observer and serve's shutdown both save
}

// observeEvery is how often the hosts' last contact is read for host-hours.
const observeEvery = 5 * time.Second

func startFleet(ctx context.Context, st store.Store, hostsFile, webhook, stateFile string, log *slog.Logger) (*fleetService, error) {
	fs := &fleetService{engine: fleet.New(fleet.Options{}), log: log, hostsFile: hostsFile, stateFile: stateFile,
		stopped: make(chan struct{})}
	if hostsFile != "" {
		if err := fs.loadInventory(); err != nil {
			return nil, err
		}
	}
	if stateFile != "" {
		data, err := os.ReadFile(stateFile)
		if err != nil && !os.IsNotExist(err) {
			return nil, fmt.Errorf("--fleet-state: %w", err)
		}
		if err == nil {
			var u fleet.Uptime
			if err := json.Unmarshal(data, &u); err != nil {
				return nil, fmt.Errorf("--fleet-state %s: %w", stateFile, err)
			}
			fs.engine.LoadUptime(u)
		}
	}
	n, err := fs.rebuild(ctx, st)
	if err != nil {
		return nil, err
	}
	if n > 0 {
		log.Info("fleet", "reports", n)
	}
	if webhook != "" {
		if !strings.HasPrefix(webhook, "http://") && !strings.HasPrefix(webhook, "https://") {
			return nil, fmt.Errorf("--alert-webhook %q: want an http(s) URL", webhook)
		}
		fs.notifier = fleet.NewNotifier(webhook, 0)
		go fs.notifier.Run(ctx)
	}
	go fs.observe(ctx, st)
	return fs, nil
}

// loadInventory (re)reads --hosts when its modification time changed.
func (fs *fleetService) loadInventory() error {
	fi, err := os.Stat(fs.hostsFile)
	if err != nil {
		return fmt.Errorf("--hosts: %w", err)
	}
	if fi.ModTime().Equal(fs.hostsMod) {
		return nil
	}
	f, err := os.Open(fs.hostsFile)
	if err != nil {
		return fmt.Errorf("--hosts: %w", err)
	}
	defer f.Close()
	inv, err := fleet.ParseInventory(f)
	if err != nil {
		return fmt.Errorf("--hosts %s: %w", fs.hostsFile, err)
	}
	fs.engine.SetInventory(inv)
	fs.hostsMod = fi.ModTime()
	return nil
}

// saveState writes the host-hours to --fleet-state.
func (fs *fleetService) saveState() {
	if fs.stateFile == "" {
		return
	}
	fs.saveMu.Lock()
	defer fs.saveMu.Unlock()
	data, err := json.Marshal(fs.engine.Uptime())
	if err == nil {
		tmp := fs.stateFile + ".tmp"
		if err = os.WriteFile(tmp, data, 0o644); err == nil {
			err = os.Rename(tmp, fs.stateFile)
		}
	}
	if err != nil {
		fs.log.Error("fleet state", "err", err)
	}
}

// rebuild feeds the stored reports to the engine, oldest first.
func (fs *fleetService) rebuild(ctx context.Context, st store.Store) (int, error) {
	var ids []int64
	before := int64(0)
	for {
		reps, err := st.Reports(ctx, store.ReportQuery{Before: before, Limit: 1000})
		if err != nil {
			return 0, fmt.Errorf("fleet: %w", err)
		}
		for _, r := range reps {
			ids = append(ids, r.ID)
		}
		if len(reps) < 1000 {
			break
		}
		before = reps[len(reps)-1].ID
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	for _, id := range ids {
		r, err := st.Report(ctx, id)
		if err != nil {
			return 0, fmt.Errorf("fleet: report %d: %w", id, err)
		}
		fs.engine.Add(fleet.FromStore(r))
	}
	return len(ids), nil
}

// report takes a newly stored report; alerts are queued, never waited for.
func (fs *fleetService) report(r *store.Report) {
	for _, ev := range fs.engine.Add(fleet.FromStore(r)) {
		fs.log.Info("alert", "event", ev.Type, "text", ev.Text)
		if fs.notifier != nil {
			fs.notifier.Send(ev)
		}
	}
}

func (fs *fleetService) observe(ctx context.Context, st store.Store) {
	defer close(fs.stopped)
	t := time.NewTicker(observeEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			fs.saveState()
			return
		case <-t.C:
		}
		if fs.hostsFile != "" {
			if err := fs.loadInventory(); err != nil {
				fs.log.Error("inventory not reloaded", "err", err)
			}
		}
		hs, err := st.Hosts(ctx)
		if err != nil {
			continue // the store is retried on the next tick
		}
		for _, h := range hs {
			fs.engine.Observe(h.ID, h.Release, h.LastSeen)
		}
		fs.saveState()
	}
}

// writeMetrics adds the fleet's series: groups and hosts per verdict, reports per
// group with its verdict, and the webhook's counters.
func (fs *fleetService) writeMetrics(w io.Writer) {
	c := fs.engine.Counts()
	fmt.Fprintf(w, "# HELP kcrash_fleet_groups Crash groups by verdict.\n# TYPE kcrash_fleet_groups gauge\n")
	for _, v := range []string{fleet.Software, fleet.Hardware, fleet.Unknown} {
		fmt.Fprintf(w, "kcrash_fleet_groups{verdict=%q} %d\n", v, c.Groups[v])
	}
	fmt.Fprintf(w, "# HELP kcrash_fleet_hosts Hosts by verdict (none: no crash).\n# TYPE kcrash_fleet_hosts gauge\n")
	for _, v := range []string{fleet.Software, fleet.Hardware, fleet.Unknown, "none"} {
		fmt.Fprintf(w, "kcrash_fleet_hosts{verdict=%q} %d\n", v, c.Hosts[v])
	}
	fmt.Fprintf(w, "# HELP kcrash_fleet_group_reports Reports per crash group, with its verdict.\n# TYPE kcrash_fleet_group_reports counter\n")
	for _, g := range c.GroupReports {
		fmt.Fprintf(w, "kcrash_fleet_group_reports{signature=%q,verdict=%q} %d\n", g.Signature, g.Class, g.Reports)
	}
	if n := fs.notifier; n != nil {
		fmt.Fprintf(w, "# HELP kcrash_alerts_sent_total Alerts the webhook accepted.\n# TYPE kcrash_alerts_sent_total counter\nkcrash_alerts_sent_total %d\n", n.Sent.Load())
		fmt.Fprintf(w, "# HELP kcrash_alerts_failures_total Failed webhook posts (retried).\n# TYPE kcrash_alerts_failures_total counter\nkcrash_alerts_failures_total %d\n", n.Failures.Load())
		fmt.Fprintf(w, "# HELP kcrash_alerts_dropped_total Alerts dropped from a full queue.\n# TYPE kcrash_alerts_dropped_total counter\nkcrash_alerts_dropped_total %d\n", n.Drops.Load())
	}
}
