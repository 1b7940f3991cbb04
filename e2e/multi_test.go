package e2e

import (
	"fmt"
	"net"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kcrash/kcrash/internal/store/storetest"
)

// TestServeThreeCollectors runs three kcrash serve processes on one PostgreSQL
// database, as behind a load balancer hashing on the source: twelve hosts, four per
// collector, all crash with the same signature at once. The group counts every
// report once, lists every host, and its first and last seen are exactly the
// first and last report's times; every collector's API and dashboard show the
// whole fleet.
func TestServeThreeCollectors(t *testing.T) {
	pg := storetest.StartPostgres(t)
	var ss []*server
	for i := 0; i < 3; i++ {
		ss = append(ss, startServe(t, pg.DSN, filepath.Join(t.TempDir(), "logs")))
	}
	const hosts = 12
	var wg sync.WaitGroup
	for h := 0; h < hosts; h++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sendCapture(t, ss[h%3].udp, &net.UDPAddr{IP: net.IPv4(127, 0, 9, byte(1+h)), Port: 6665}, sampleDir+"ACCESS_NULL.netconsole-ext", 0)
		}()
	}
	wg.Wait()
	waitFor(t, "twelve reports", 20*time.Second, func() bool { return len(ss[0].reports(t)) == hosts })
	reps := ss[0].reports(t)
	var want []string
	first, last := reps[0].Time, reps[0].Time
	for _, r := range reps {
		want = append(want, r.Host)
		if r.Time.Before(first) {
			first = r.Time
		}
		if r.Time.After(last) {
			last = r.Time
		}
	}
	slices.Sort(want)
	if got := slices.Compact(slices.Clone(want)); len(got) != hosts {
		t.Fatalf("reports from %d distinct hosts, want %d: %v", len(got), hosts, want)
	}
	for i, s := range ss {
		var out struct {
			Groups []struct {
				Signature string    `json:"signature"`
				Count     int       `json:"count"`
				Hosts     []string  `json:"hosts"`
				FirstSeen time.Time `json:"first_seen"`
				LastSeen  time.Time `json:"last_seen"`
			} `json:"groups"`
		}
		getJSON(t, "http://"+s.http+"/api/groups", &out)
		if len(out.Groups) != 1 {
			t.Fatalf("collector %d: %d groups, want 1", i, len(out.Groups))
		}
		g := out.Groups[0]
		hs := slices.Clone(g.Hosts)
		slices.Sort(hs)
		if g.Count != hosts || !slices.Equal(hs, want) {
			t.Errorf("collector %d: group count %d, hosts %v; want %d, %v", i, g.Count, hs, hosts, want)
		}
		if !g.FirstSeen.Equal(first) || !g.LastSeen.Equal(last) {
			t.Errorf("collector %d: first/last seen %v/%v, want %v/%v", i, g.FirstSeen, g.LastSeen, first, last)
		}
		if n := len(s.reports(t)); n != hosts {
			t.Errorf("collector %d: %d reports", i, n)
		}
		var hl struct {
			Hosts []struct {
				ID string `json:"id"`
			} `json:"hosts"`
		}
		getJSON(t, "http://"+s.http+"/api/hosts", &hl)
		var ids []string
		for _, h := range hl.Hosts {
			ids = append(ids, h.ID)
		}
		slices.Sort(ids)
		if !slices.Equal(ids, want) {
			t.Errorf("collector %d: hosts %v, want %v", i, ids, want)
		}
		page := dashboard(t, s)
		for _, h := range want {
			if !strings.Contains(page, fmt.Sprintf(`href="/hosts/%s"`, h)) {
				t.Errorf("collector %d: dashboard does not show host %s", i, h)
			}
		}
	}
}
