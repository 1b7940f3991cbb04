package collector

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kcrash/kcrash/internal/netconsole"
	"github.com/kcrash/kcrash/internal/store"
)

// TestRawLogExact: a host's raw log holds every line it sent exactly once, in
// order, across two crashes and the lines around them, written while the host is
// still sending (each line is kept once, for the raw log and the context), and each
// report's context is the lines before it since the previous report, never the
// previous report's own lines.
func TestRawLogExact(t *testing.T) {
	for _, logs := range []bool{true, false} {
		t.Run(fmt.Sprintf("logs=%v", logs), func(t *testing.T) {
			logDir := ""
			if logs {
				logDir = t.TempDir()
			}
			s := openStore(t)
			c := New(Options{Store: s, LogDir: logDir, Quiet: 100 * time.Millisecond})
			stop := run(c)
			from := netip.MustParseAddrPort("10.9.0.1:6665")
			var want strings.Builder
			seq := 0
			send := func(text string) {
				d := fmt.Sprintf("6,%d,%d,-;%s", seq, 1_000_000+seq*1000, text)
				r, err := netconsole.ParseExtended([]byte(d))
				if err != nil {
					t.Fatal(err)
				}
				want.Write(netconsole.ConsoleLine(nil, &r))
				c.HandleBatch(0, time.Now(), packets(from, [][]byte{[]byte(d)}))
				seq++
			}
			var crash []string
			for _, d := range datagrams(t, "ACCESS_NULL.netconsole-ext") {
				if r, err := netconsole.ParseExtended(d); err == nil {
					crash = append(crash, string(r.Text))
				}
			}
			for round := range 2 {
				// Round 1 is short: its report's context would reach back into
				// round 0's report if the context did not start after it.
				lines := 600
				if round == 1 {
					lines = 30
				}
				for i := range lines {
					send(fmt.Sprintf("round %d: ordinary line %d of the console, eth0 rx ring refilled", round, i))
					if i%100 == 99 {
						time.Sleep(300 * time.Millisecond) // ticks run; raw logs are written meanwhile
					}
				}
				for _, l := range crash {
					send(l)
				}
				waitUntil(t, "the report", 10*time.Second, func() bool { return c.Stats.Reports.Load() == uint64(round+1) })
			}
			for i := range 50 {
				send(fmt.Sprintf("after: line %d", i))
			}
			stop()
			if logs {
				got, err := os.ReadFile(filepath.Join(logDir, LogName(from.String())))
				if err != nil {
					t.Fatal(err)
				}
				if string(got) != want.String() {
					t.Errorf("raw log: %d bytes, want the %d bytes sent, exactly", len(got), want.Len())
				}
			}
			if n := c.Stats.LogDrops.Load(); n != 0 {
				t.Errorf("%d raw log bytes shed", n)
			}
			reps, err := s.Reports(context.Background(), store.ReportQuery{})
			if err != nil || len(reps) != 2 {
				t.Fatalf("%d reports (%v), want 2", len(reps), err)
			}
			for _, r := range reps {
				full, err := s.Report(context.Background(), r.ID)
				if err != nil {
					t.Fatal(err)
				}
				switch {
				case strings.Contains(full.Context, "round 1:"):
					if strings.Contains(full.Context, "round 0:") || strings.Contains(full.Context, "Call Trace") {
						t.Errorf("the second report's context reaches into the first report:\n%s", full.Context)
					}
					if !strings.Contains(full.Context, "round 1: ordinary line 0 ") || !strings.Contains(full.Context, "round 1: ordinary line 29 ") {
						t.Errorf("the second report's context lacks the lines before it:\n%s", full.Context)
					}
				case !strings.Contains(full.Context, "round 0: ordinary line 599 ") || len(full.Context) < 4096:
					t.Errorf("the first report's context (%d bytes) lacks the lines just before it:\n%s", len(full.Context), full.Context)
				}
			}
		})
	}
}
