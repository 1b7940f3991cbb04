package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kcrash/kcrash/internal/store"
	"github.com/kcrash/kcrash/internal/store/sqlite"
)

// TestFleetService: serve's fleet service rebuilds its verdicts from the stored
// reports, names hosts from --hosts, keeps host-hours in --fleet-state across a
// restart and shows the fleet series in /metrics; a bad inventory stops it with
// the line numbers.
func TestFleetService(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	st, err := sqlite.Open(ctx, filepath.Join(dir, "k.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	serial, err := os.ReadFile("../../internal/fleet/testdata/lab/bad-dimm-flip-5.serial")
	if err != nil {
		t.Fatal(err)
	}
	// The bit-flip crash as the collector stores it: the report and the 8 KiB before.
	i := bytes.Index(serial, []byte("BUG: unable to handle page fault"))
	i = bytes.LastIndexByte(serial[:i], '\n') + 1
	r := &store.Report{Key: "k1", Host: "10.0.0.9:6665", Time: time.Now(), Kind: "page-fault", Title: "BUG: unable to handle page fault in __wake_up_common",
		Signature: "v1:x", Release: "6.1.0-57-amd64", Text: string(serial[i:]), Context: string(serial[max(0, i-8192):i])}
	if _, _, err := st.SaveReport(ctx, r); err != nil {
		t.Fatal(err)
	}
	inv := filepath.Join(dir, "hosts.txt")
	os.WriteFile(inv, []byte("10.0.0.9 dimm-09 rack=r9\n"), 0o644)
	state := filepath.Join(dir, "state.json")
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	fs, err := startFleet(ctx, st, inv, "", state, log)
	if err != nil {
		t.Fatal(err)
	}
	h := fs.engine.Host("10.0.0.9:6665", "")
	if h.Name != "dimm-09" || h.Labels["rack"] != "r9" || h.Verdict == nil || h.Verdict.Class != "hardware" {
		t.Fatalf("rebuilt host %+v %+v", h, h.Verdict)
	}
	fs.engine.AddUptime("10.0.0.9:6665", "6.1.0-57-amd64", 2)
	fs.saveState()
	var m bytes.Buffer
	fs.writeMetrics(&m)
	for _, want := range []string{`kcrash_fleet_groups{verdict="hardware"} 1`, `kcrash_fleet_hosts{verdict="hardware"} 1`,
		`kcrash_fleet_group_reports{signature="v1:x",verdict="hardware"} 1`} {
		if !strings.Contains(m.String(), want) {
			t.Errorf("metrics lack %s:\n%s", want, m.String())
		}
	}
	fs2, err := startFleet(ctx, st, inv, "", state, log)
	if err != nil {
		t.Fatal(err)
	}
	if hh := fs2.engine.ReleaseHours()["6.1.0-57-amd64"]; hh < 2 {
		t.Errorf("host-hours after a restart: %v, want the 2 saved", hh)
	}
	os.WriteFile(filepath.Join(dir, "bad.txt"), []byte("10.0.0.9 ok\n\nbroken\n"), 0o644)
	if _, err := startFleet(ctx, st, filepath.Join(dir, "bad.txt"), "", "", log); err == nil || !strings.Contains(err.Error(), "line 3") {
		t.Errorf("bad inventory: %v, want line 3 named", err)
	}
	if _, err := startFleet(ctx, st, "", "ftp://x", "", log); err == nil {
		t.Errorf("a non-HTTP webhook was accepted")
	}
	cancel()
	<-fs.stopped
	<-fs2.stopped
}
