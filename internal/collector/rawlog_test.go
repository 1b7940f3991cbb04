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
