package e2e

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kcrash/kcrash/internal/store/storetest"
)

// TestServeKillLoop kills kcrash serve (SIGKILL) at a random moment during a stream
// of crashes, twenty times over the same spool and database, with and without a
// PostgreSQL outage at the time of the kill. Afterwards every crash whose
// datagrams had all been sent at least settle before its kill is stored, and no
// crash is stored twice (each host crashes once, so a host with two reports is a
// duplicate). The seed is logged.
func TestServeKillLoop(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) {
		dir := t.TempDir()
		killLoop(t, filepath.Join(dir, "kcrash.db"), filepath.Join(dir, "logs"), nil, 40)
	})
	t.Run("postgres-outage", func(t *testing.T) {
		pg := storetest.StartPostgres(t)
		killLoop(t, pg.DSN, filepath.Join(t.TempDir(), "logs"), pg, 80)
	})
}

// settle is how long after its last datagram a crash must be on disk (spooled or
// stored): the panic's end marker completes the capture, the next 20 ms tick
// spools it; the margin is for a loaded machine.
const settle = 2500 * time.Millisecond

func killLoop(t *testing.T, db, logs string, pg *storetest.Postgres, net3 byte) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 1))
	type crash struct {
		host string
		last time.Time // when its last datagram was sent
		kill time.Time // when the collector it was sent to was killed
	}
	var crashes []crash
	data, err := os.ReadFile(sampleDir + "ACCESS_NULL.netconsole-ext")
	if err != nil {
		t.Fatal(err)
	}
	capture := bytes.Split(bytes.TrimSuffix(data, []byte("\n")), []byte("\n"))
	const rounds, perRound = 20, 4
	for round := 0; round < rounds; round++ {
		s := startServe(t, db, logs)
		outage := pg != nil && round%2 == 1
		killAfter := time.Duration(rng.Int64N(int64(5 * time.Second)))
		killAt := time.Now().Add(killAfter)
		done := make(chan struct{})
		var sent []crash
		pgDown := false
		go func() {
			defer close(done)
			for j := 0; j < perRound && time.Now().Before(killAt); j++ {
				if outage && j == 1 {
					if err := pg.Stop(); err != nil { // reports from here on wait in the spool
						t.Error(err)
						return
					}
					pgDown = true
				}
				n := round*perRound + j
				from := &net.UDPAddr{IP: net.IPv4(127, net3, byte(n/250), byte(1+n%250)), Port: 6665}
				if err := sendDatagramsErr(s.udp, from, capture); err != nil {
					return // the collector is gone
				}
				sent = append(sent, crash{host: from.String(), last: time.Now()})
				time.Sleep(time.Duration(rng.Int64N(int64(700 * time.Millisecond))))
			}
		}()
		time.Sleep(time.Until(killAt))
		s.kill()
		kill := time.Now()
		<-done
		for _, c := range sent {
			c.kill = kill
			crashes = append(crashes, c)
		}
		if pgDown { // only when this round stopped it (the kill may come first)
			if err := pg.Start(); err != nil {
				t.Fatal(err)
			}
		}
	}
	s := startServe(t, db, logs)
	waitFor(t, "an empty spool", 30*time.Second, func() bool {
		return strings.Contains(s.metrics(t), "\nkcrash_spool_pending 0\n")
	})
	stored := map[string]int{}
	for _, r := range allReports(t, s) {
		stored[r.Host]++
	}
	complete, late := 0, 0
	for _, c := range crashes {
		switch n := stored[c.host]; {
		case n > 1:
			t.Errorf("%s: stored %d times", c.host, n)
		case c.kill.Sub(c.last) >= settle:
			complete++
			if n != 1 {
				t.Errorf("%s: complete %v before the kill, stored %d times", c.host, c.kill.Sub(c.last).Round(time.Millisecond), n)
			}
		default:
			late++
		}
	}
	if len(stored) > len(crashes) {
		t.Errorf("%d hosts with reports, %d crashed", len(stored), len(crashes))
	}
	if complete == 0 {
		t.Errorf("no crash was complete before its kill in %d rounds: the test tested nothing", rounds)
	}
	t.Logf("%d crashes: %d complete before their kill (all stored once), %d sent within %v of it (%d of those stored)", len(crashes), complete, late, settle, len(stored)-complete)
}

// allReports pages through /api/reports.
func allReports(t *testing.T, s *server) []apiReport {
	t.Helper()
	var out []apiReport
	before := int64(0)
	for {
		var page struct {
			Reports []apiReport `json:"reports"`
		}
		url := fmt.Sprintf("http://%s/api/reports?limit=1000", s.http)
		if before > 0 {
			url += fmt.Sprintf("&before=%d", before)
		}
		getJSON(t, url, &page)
		out = append(out, page.Reports...)
		if len(page.Reports) < 1000 {
			return out
		}
		before = page.Reports[len(page.Reports)-1].ID
	}
}

// sendDatagramsErr sends ds to addr from a source address, like a kernel, and
// returns the first error (a collector killed meanwhile refuses them).
func sendDatagramsErr(to string, from *net.UDPAddr, ds [][]byte) error {
	ua, err := net.ResolveUDPAddr("udp", to)
	if err != nil {
		return err
	}
	c, err := net.DialUDP("udp", from, ua)
	if err != nil {
		return err
	}
	defer c.Close()
	for i, d := range ds {
		if _, err := c.Write(d); err != nil {
			return err
		}
		if i%32 == 31 {
			time.Sleep(time.Millisecond)
		}
	}
	return nil
}
