package collector

import (
	"bytes"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/kcrash/kcrash/internal/netconsole"
	"github.com/kcrash/kcrash/internal/store"
)

// TestRawLogBeforeReport: when a report is stored, its host's raw log on disk
// already holds the report's lines and the lines before them. A host's log was
// written a moment ago (so the periodic rules would hold the rest for seconds), then
// the host crashes within a second: the capture starts and ends between two
// once-a-second flushes, which used to leave the crash out of the raw log for up
// to logEvery after the report was visible.
func TestRawLogBeforeReport(t *testing.T) {
	for _, tc := range []struct {
		file  string
		split string // the first datagram of the crash (sent after the first flush)
	}{
		{"ACCESS_NULL.netconsole", "lkdtm: Performing direct entry"},
		{"ACCESS_NULL.netconsole-ext", "lkdtm: Performing direct entry"},
	} {
		t.Run(tc.file, func(t *testing.T) {
			logDir := t.TempDir()
			c := New(Options{Store: openStore(t), LogDir: logDir, Quiet: 200 * time.Millisecond})
			from := netip.MustParseAddrPort("10.0.2.2:40001")
			logPath := filepath.Join(logDir, LogName(from.String()))
			type seen struct {
				r   *store.Report
				log []byte
				err error
			}
			var mu sync.Mutex
			var got []seen
			c.OnReport(func(r *store.Report) {
				log, err := os.ReadFile(logPath)
				mu.Lock()
				got = append(got, seen{r, log, err})
				mu.Unlock()
			})
			stop := run(c)
			defer stop()

			ds := datagrams(t, tc.file)
			cut := -1
			for i, d := range ds {
				if bytes.Contains(d, []byte(tc.split)) {
					cut = i
					break
				}
			}
			if cut <= 0 {
				t.Fatalf("%s: no datagram holds %q", tc.file, tc.split)
			}
			send := func(ds [][]byte) {
				for _, d := range ds {
					c.HandleBatch(0, time.Now(), []netconsole.Packet{{From: from, Data: d}})
				}
			}
			// The boot: wait until a flush has written some of it.
			send(ds[:cut])
			waitUntil(t, "the first raw log write", 3*time.Second, func() bool {
				fi, err := os.Stat(logPath)
				return err == nil && fi.Size() > 0
			})
			// The crash, well within a second of that write.
			send(ds[cut:])
			waitUntil(t, "the report", 3*time.Second, func() bool {
				mu.Lock()
				defer mu.Unlock()
				return len(got) > 0
			})
			mu.Lock()
			defer mu.Unlock()
			if len(got) != 1 {
				t.Fatalf("%d reports, want 1", len(got))
			}
			s := got[0]
			if s.err != nil {
				t.Fatalf("raw log when the report was stored: %v", s.err)
			}
			if !bytes.Contains(s.log, []byte(s.r.Text)) {
				t.Errorf("raw log (%d bytes) lacked the report's text when it was stored; it ends:\n%s", len(s.log), s.log[max(0, len(s.log)-300):])
			}
			if !bytes.Contains(s.log, []byte(tc.split)) {
				t.Errorf("raw log lacked the line before the report, %q", tc.split)
			}
		})
	}
}

func waitUntil(t *testing.T, what string, d time.Duration, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// TestRawLogShedding: when the raw logs cannot be written (here the logs directory
// is a file; a full disk fails the same way), the reports are still stored, the
// log bytes are shed and counted, and the writer recovers by itself once the
// directory can be written again.
func TestRawLogShedding(t *testing.T) {
	logDir := filepath.Join(t.TempDir(), "logs")
	if err := os.WriteFile(logDir, []byte("in the way\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	c := New(Options{Store: openStore(t), LogDir: logDir, Quiet: 100 * time.Millisecond})
	stop := run(c)
	defer stop()
	a := netip.MustParseAddrPort("10.0.3.1:6665")
	c.HandleBatch(0, time.Now(), packets(a, datagrams(t, "ACCESS_NULL.netconsole-ext")))
	waitUntil(t, "the report with the raw logs failing", 5*time.Second, func() bool { return c.Stats.Reports.Load() == 1 })
	waitUntil(t, "shed raw log bytes", 5*time.Second, func() bool {
		return c.Stats.LogDrops.Load() > 0 && c.Stats.LogErrors.Load() > 0 && c.Stats.LogShedding.Load()
	})
	if w := c.Warnings(); len(w) == 0 || !bytes.Contains([]byte(w[0]), []byte("bytes shed")) {
		t.Errorf("warnings %q", w)
	}
	os.Remove(logDir)
	waitUntil(t, "the end of shedding", 5*time.Second, func() bool { return !c.Stats.LogShedding.Load() })
	b := netip.MustParseAddrPort("10.0.3.2:6665")
	c.HandleBatch(0, time.Now(), packets(b, datagrams(t, "ACCESS_NULL.netconsole-ext")))
	waitUntil(t, "the second report", 5*time.Second, func() bool { return c.Stats.Reports.Load() == 2 })
	log, err := os.ReadFile(filepath.Join(logDir, LogName(b.String())))
	if err != nil || !bytes.Contains(log, []byte("Kernel panic - not syncing")) {
		t.Errorf("raw log after recovery: %v, %d bytes", err, len(log))
	}
}
