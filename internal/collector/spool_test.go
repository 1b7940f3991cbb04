package collector

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kcrash/kcrash/internal/store"
)

// dying is a store whose process is about to be killed: SaveReport fails (the
// database is down) or, with storeThenHang, stores the report and never returns,
// as when the collector is killed between the store's commit and the spool's mark.
type dying struct {
	store.Store
	storeThenHang bool
	calls         atomic.Int64
}

func (d *dying) SaveReport(ctx context.Context, r *store.Report) (int64, bool, error) {
	d.calls.Add(1)
	if !d.storeThenHang {
		return 0, false, errors.New("connection refused")
	}
	d.Store.SaveReport(ctx, r)
	select {} // killed here
}

// spoolState counts the reports spooled and not stored, and the captures spooled
// and not analyzed.
func spoolState(c *Collector) (reports, captures int) {
	c.spool.mu.Lock()
	defer c.spool.mu.Unlock()
	for k, n := range c.spool.pending {
		if n <= 0 {
			continue
		}
		if strings.HasPrefix(k, "C") {
			captures++
		} else {
			reports++
		}
	}
	return reports, captures
}

func (d *dying) SeeHosts(context.Context, []store.HostSeen) error {
	return errors.New("connection refused")
}

// TestSpoolKill: a collector finds reports and "dies" (is abandoned, its goroutines
// stuck, nothing flushed: what kill -9 leaves is the files) while its store is down,
// or after the store committed a report but before the spool heard of it; a new
// collector on the same spool stores every report exactly once. A torn last line
// (a crash in the middle of a write) is ignored.
func TestSpoolKill(t *testing.T) {
	for _, tc := range []struct {
		name          string
		storeThenHang bool
		torn          bool
		wantPending   int
	}{
		{name: "database down", wantPending: 2},
		{name: "database down, torn tail", torn: true, wantPending: 2},
		{name: "killed after the commit", storeThenHang: true, wantPending: 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			base := openStore(t)
			path := filepath.Join(t.TempDir(), "spool")
			d := &dying{Store: base, storeThenHang: tc.storeThenHang}
			c1 := New(Options{Store: d})
			if n, err := c1.OpenSpool(path); err != nil || n != 0 {
				t.Fatalf("first OpenSpool: %d, %v", n, err)
			}
			go c1.Run(context.Background(), time.Second) // never stopped: killed
			for _, f := range []string{"ACCESS_NULL.netconsole", "ACCESS_NULL.netconsole-ext"} {
				in, err := os.Open("testdata/" + f)
				if err != nil {
					t.Fatal(err)
				}
				err = c1.Ingest(f, in)
				in.Close()
				if err != nil {
					t.Fatal(err)
				}
			}
			// Both reports spooled and both captures marked analyzed: a kill before
			// an analyzed mark legitimately leaves that capture to be analyzed again
			// (TestSpoolCaptures), so wait for the marks to make the count exact.
			waitUntil(t, "two spooled reports, every capture analyzed", 5*time.Second, func() bool {
				reports, captures := spoolState(c1)
				return reports == 2 && captures == 0 && d.calls.Load() > 0
			})
			if tc.storeThenHang {
				// The first report is committed; its spool mark never will be.
				waitUntil(t, "the first report stored", 5*time.Second, func() bool {
					reps, _ := base.Reports(context.Background(), store.ReportQuery{})
					return len(reps) == 1
				})
			}
			// kill -9: the kernel closes the process's files (and so releases its
			// lock); nothing the abandoned goroutines do later reaches the spool.
			c1.spool.mu.Lock()
			c1.spool.f.Close()
			c1.spool.lock.Close()
			c1.spool.mu.Unlock()
			if tc.torn {
				f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
				if err != nil {
					t.Fatal(err)
				}
				f.WriteString(`R 00000000 {"key":"torn","report":{"host":"x"`)
				f.Close()
			}

			for restart := 1; restart <= 2; restart++ {
				c := New(Options{Store: base})
				n, err := c.OpenSpool(path)
				if err != nil {
					t.Fatal(err)
				}
				want := tc.wantPending
				if restart == 2 {
					want = 0
				}
				if n != want {
					t.Errorf("restart %d: %d reports in the spool, want %d", restart, n, want)
				}
				stop := run(c)
				stop()
				if c.Stats.QueueDrops.Load() != 0 || c.Stats.SpoolErrors.Load() != 0 {
					t.Errorf("restart %d: %d reports not stored, %d spool errors", restart, c.Stats.QueueDrops.Load(), c.Stats.SpoolErrors.Load())
				}
			}
			reps, err := base.Reports(context.Background(), store.ReportQuery{})
			if err != nil {
				t.Fatal(err)
			}
			hosts := map[string]int{}
			for _, r := range reps {
				hosts[r.Host]++
			}
			if len(reps) != 2 || hosts["ACCESS_NULL.netconsole"] != 1 || hosts["ACCESS_NULL.netconsole-ext"] != 1 {
				t.Errorf("stored reports by host %v, want one from each", hosts)
			}
		})
	}
}

// TestSpoolCaptures: a collector killed after spooling finished captures and
// before analyzing them (the analyzer behind, say) leaves them to the next one,
// which stores their reports; a torn capture line is ignored.
func TestSpoolCaptures(t *testing.T) {
	path := filepath.Join(t.TempDir(), "spool")
	s, _, _, err := openSpool(path)
	if err != nil {
		t.Fatal(err)
	}
	var cps []capture
	for _, f := range []string{"ACCESS_NULL.netconsole", "ACCESS_NULL.netconsole-ext"} {
		text, err := os.ReadFile("testdata/" + f)
		if err != nil {
			t.Fatal(err)
		}
		cp := capture{host: f, at: time.Unix(1700000000, 0), text: text}
		cp.id = captureID(cp)
		cps = append(cps, cp)
	}
	if err := s.addCaptures(cps[:1]); err != nil {
		t.Fatal(err)
	}
	line, err := captureLine(cps[1])
	if err != nil {
		t.Fatal(err)
	}
	s.f.Write(line[:len(line)/2]) // killed in the middle of the second
	s.Close()

	base := openStore(t)
	c := New(Options{Store: base})
	if n, err := c.OpenSpool(path); err != nil || n != 1 {
		t.Fatalf("OpenSpool: %d waiting, %v; want 1 capture", n, err)
	}
	stop := run(c)
	stop()
	reps, err := base.Reports(context.Background(), store.ReportQuery{})
	if err != nil {
		t.Fatal(err)
	}
	if len(reps) != 1 || reps[0].Host != "ACCESS_NULL.netconsole" || reps[0].Kind != "null-ptr-deref" {
		t.Fatalf("reports from the spooled capture: %+v", reps)
	}
	c2 := New(Options{Store: base})
	if n, err := c2.OpenSpool(path); err != nil || n != 0 {
		t.Errorf("second OpenSpool: %d waiting, %v; want 0", n, err)
	}
}

// TestSpoolLock: a second collector cannot open a spool in use.
func TestSpoolLock(t *testing.T) {
	path := filepath.Join(t.TempDir(), "spool")
	s, _, _, err := openSpool(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := openSpool(path); err == nil {
		t.Fatal("a second openSpool of a spool in use succeeded")
	}
	s.Close()
	s2, _, _, err := openSpool(path)
	if err != nil {
		t.Fatalf("openSpool after the first closed: %v", err)
	}
	s2.Close()
}

// TestSpoolCompact: once every spooled report is stored, a large spool starts over.
func TestSpoolCompact(t *testing.T) {
	path := filepath.Join(t.TempDir(), "spool")
	s, caps, pending, err := openSpool(path)
	if err != nil || len(pending) != 0 || len(caps) != 0 {
		t.Fatalf("openSpool: %v %v %v", caps, pending, err)
	}
	defer s.Close()
	big := string(make([]byte, 64<<10))
	var keys []string
	for i := 0; s.size <= spoolCompactBytes; i++ {
		r := &store.Report{Key: string(rune('a'+i%26)) + string(rune('a'+i/26)), Host: "h", Text: big}
		if err := s.add(r); err != nil {
			t.Fatal(err)
		}
		keys = append(keys, r.Key)
	}
	for i, k := range keys {
		if err := s.done(k); err != nil {
			t.Fatal(err)
		}
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if last := i == len(keys)-1; last != (fi.Size() == 0) {
			t.Fatalf("after %d of %d marks the spool is %d bytes", i+1, len(keys), fi.Size())
		}
	}
}
