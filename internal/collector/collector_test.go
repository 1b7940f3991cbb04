package collector

import (
	"bytes"
	"context"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kcrash/kcrash/internal/netconsole"
	"github.com/kcrash/kcrash/internal/store"
	"github.com/kcrash/kcrash/internal/store/sqlite"
)

func openStore(t testing.TB) store.Store {
	t.Helper()
	s, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "k.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// run starts c.Run and returns a function that ends it and waits.
func run(c *Collector) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	go c.Run(ctx, 10*time.Second)
	return func() { cancel(); <-c.Done() }
}

func TestIngest(t *testing.T) {
	s := openStore(t)
	logDir := t.TempDir()
	for _, file := range []string{"ACCESS_NULL.netconsole", "ACCESS_NULL.netconsole-ext", "ACCESS_NULL.netconsole"} {
		c := New(Options{Store: s, LogDir: logDir})
		stop := run(c)
		f, err := os.Open("testdata/" + file)
		if err != nil {
			t.Fatal(err)
		}
		host := "lab-" + strings.TrimPrefix(filepath.Ext(file), ".")
		err = c.Ingest(host, f)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		stop()
	}
	reps, err := s.Reports(context.Background(), store.ReportQuery{})
	if err != nil {
		t.Fatal(err)
	}
	// Two hosts, one report each; the plain log imported twice is stored once.
	if len(reps) != 2 {
		t.Fatalf("%d reports, want 2: %+v", len(reps), reps)
	}
	for _, r := range reps {
		if r.Kind != "null-ptr-deref" || !r.Panicked || r.Release != "6.1.0-56-cloud-amd64" {
			t.Errorf("report %+v", r)
		}
		full, err := s.Report(context.Background(), r.ID)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(full.Text, "BUG: kernel NULL pointer dereference") || !strings.Contains(full.Context, "lkdtm: Performing direct entry ACCESS_NULL") {
			t.Errorf("report %d text/context:\n%s\n--\n%s", r.ID, full.Text, full.Context)
		}
	}
	groups, _ := s.Groups(context.Background(), 0)
	if len(groups) != 1 || groups[0].Count != 2 || len(groups[0].Hosts) != 2 {
		t.Errorf("groups %+v", groups)
	}
	log, err := os.ReadFile(filepath.Join(logDir, LogName("lab-netconsole")))
	if err != nil || !bytes.Contains(log, []byte("Kernel panic - not syncing")) {
		t.Errorf("raw log: %v, %d bytes", err, len(log))
	}
}

// datagrams cuts a capture into what netconsole sent: one extended record per
// line, or plain payloads of at most 1000 bytes.
func datagrams(t *testing.T, file string) [][]byte {
	data, err := os.ReadFile("testdata/" + file)
	if err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	if strings.HasSuffix(file, "-ext") {
		for _, l := range bytes.Split(bytes.TrimSuffix(data, []byte("\n")), []byte("\n")) {
			out = append(out, l)
		}
		return out
	}
	for len(data) > 0 {
		n := min(len(data), netconsole.MaxPlainPayload)
		out = append(out, data[:n])
		data = data[n:]
	}
	return out
}

// TestLiveLatency sends real captures as datagrams from several hosts, interleaved,
// and checks each crash is stored within a second of its last datagram, once.
func TestLiveLatency(t *testing.T) {
	s := openStore(t)
	c := New(Options{Store: s, Shards: 2})
	var mu sync.Mutex
	stored := map[string]time.Time{}
	c.OnReport(func(r *store.Report) { mu.Lock(); stored[r.Host] = time.Now(); mu.Unlock() })
	stop := run(c)
	defer stop()
	hosts := map[netip.AddrPort][][]byte{
		netip.MustParseAddrPort("10.0.0.1:6665"): datagrams(t, "ACCESS_NULL.netconsole"),
		netip.MustParseAddrPort("10.0.0.2:6665"): datagrams(t, "ACCESS_NULL.netconsole-ext"),
		netip.MustParseAddrPort("10.0.0.3:6665"): datagrams(t, "ACCESS_NULL.netconsole-ext"),
	}
	var sent time.Time
	for i := 0; ; i++ {
		var batch []netconsole.Packet
		for from, ds := range hosts {
			if i < len(ds) {
				batch = append(batch, netconsole.Packet{From: from, Data: ds[i]})
			}
		}
		if len(batch) == 0 {
			break
		}
		sent = time.Now()
		c.HandleBatch(i%2, sent, batch)
	}
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		mu.Lock()
		n := len(stored)
		mu.Unlock()
		if n == 3 {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(stored) != 3 {
		t.Fatalf("reports from %d hosts, want 3", len(stored))
	}
	for h, at := range stored {
		if d := at.Sub(sent); d > time.Second {
			t.Errorf("%s: stored %v after the last datagram", h, d)
		}
	}
	if got := c.Stats.Reports.Load(); got != 3 {
		t.Errorf("%d reports counted", got)
	}
}

// flaky fails SaveReport while down is set.
type flaky struct {
	store.Store
	down  atomic.Bool
	fails atomic.Int64
}

func (f *flaky) SaveReport(ctx context.Context, r *store.Report) (int64, bool, error) {
	if f.down.Load() {
		f.fails.Add(1)
		return 0, false, errors.New("connection refused")
	}
	return f.Store.SaveReport(ctx, r)
}

func (f *flaky) SeeHosts(ctx context.Context, hs []store.HostSeen) error {
	if f.down.Load() {
		return errors.New("connection refused")
	}
	return f.Store.SeeHosts(ctx, hs)
}

// TestStoreOutage: reports found while the store is down are kept and stored once
// it is back.
func TestStoreOutage(t *testing.T) {
	fs := &flaky{Store: openStore(t)}
	fs.down.Store(true)
	c := New(Options{Store: fs})
	stop := run(c)
	f, _ := os.Open("testdata/ACCESS_NULL.netconsole")
	defer f.Close()
	if err := c.Ingest("h", f); err != nil {
		t.Fatal(err)
	}
	for fs.fails.Load() < 3 {
		time.Sleep(10 * time.Millisecond)
	}
	fs.down.Store(false)
	stop()
	reps, _ := fs.Reports(context.Background(), store.ReportQuery{})
	if len(reps) != 1 || c.Stats.StoreRetries.Load() == 0 {
		t.Fatalf("%d reports after the outage, %d retries", len(reps), c.Stats.StoreRetries.Load())
	}
	if h, err := fs.Host(context.Background(), "h"); err != nil || h.LastSeen.IsZero() {
		t.Errorf("host after the outage: %+v %v", h, err)
	}
}

func TestBounds(t *testing.T) {
	c := New(Options{MaxHosts: 2, Allow: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}, MaxCapture: 4096})
	now := time.Now()
	var pkts []netconsole.Packet
	for i := 1; i <= 4; i++ {
		pkts = append(pkts, netconsole.Packet{From: netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, 0, byte(i)}), 6665), Data: []byte("hello\n")})
	}
	pkts = append(pkts, netconsole.Packet{From: netip.MustParseAddrPort("192.168.1.1:6665"), Data: []byte("x\n")},
		netconsole.Packet{From: netip.MustParseAddrPort("10.0.0.1:6665"), Data: []byte("6,1,2,-,ncfrag=9/5;bad")})
	c.HandleBatch(0, now, pkts)
	if c.Stats.Hosts.Load() != 2 || c.Stats.Dropped.Load() != 2 || c.Stats.Denied.Load() != 1 || c.Stats.BadPackets.Load() != 1 {
		t.Errorf("hosts %d dropped %d denied %d bad %d", c.Stats.Hosts.Load(), c.Stats.Dropped.Load(), c.Stats.Denied.Load(), c.Stats.BadPackets.Load())
	}
	// A report that never ends is cut at MaxCapture.
	h := c.shards[0].hosts[netip.MustParseAddrPort("10.0.0.1:6665")]
	c.HandleBatch(0, now, []netconsole.Packet{{From: netip.MustParseAddrPort("10.0.0.1:6665"), Data: []byte("[    1.0] BUG: kernel NULL pointer dereference, address: 0000000000000000\n")}})
	for i := 0; i < 1000; i++ {
		c.HandleBatch(0, now, []netconsole.Packet{{From: netip.MustParseAddrPort("10.0.0.1:6665"), Data: []byte("[    1.0]  ? some_frame+0x1/0x2\n")}})
	}
	if len(h.capture) > 4096 || !h.ready {
		t.Errorf("capture %d bytes, ready %v", len(h.capture), h.ready)
	}
	if len(h.ctx) > 2*8192+100 {
		t.Errorf("context %d bytes", len(h.ctx))
	}
}
