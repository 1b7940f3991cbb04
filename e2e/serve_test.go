package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/kcrash/kcrash/internal/collector"
	"github.com/kcrash/kcrash/internal/lab"
	"github.com/kcrash/kcrash/internal/store/storetest"
)

// server is a running `kcrash serve`.
type server struct {
	cmd     *exec.Cmd
	udp     string
	http    string
	logs    string
	db      string
	stderr  *bytes.Buffer
	stopped bool
}

func freePort(t *testing.T, network string) int {
	t.Helper()
	if network == "udp" {
		c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return c.LocalAddr().(*net.UDPAddr).Port
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startServe starts kcrash serve on free loopback ports with db (a file or URL).
func startServe(t *testing.T, db, logs string, extra ...string) *server {
	t.Helper()
	s := &server{
		udp:  fmt.Sprintf("127.0.0.1:%d", freePort(t, "udp")),
		http: fmt.Sprintf("127.0.0.1:%d", freePort(t, "tcp")),
		logs: logs, db: db, stderr: new(bytes.Buffer),
	}
	args := append([]string{"serve", "--udp", s.udp, "--http", s.http, "--db", db, "--logs", logs, "--quiet", "200ms"}, extra...)
	s.cmd = exec.Command(kcrashBin, args...)
	s.cmd.Stderr = s.stderr
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.stop(t) })
	deadline := time.Now().Add(20 * time.Second)
	health, client := "http://"+s.http+"/healthz", http.DefaultClient
	if slices.Contains(extra, "--tls-cert") { // only up-ness is checked here
		health, client = "https://"+s.http+"/healthz", &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	}
	for {
		resp, err := client.Get(health)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return s
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("kcrash serve did not come up: %v\n%s", err, s.stderr)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (s *server) stop(t *testing.T) {
	if s.stopped {
		return
	}
	s.stopped = true
	s.cmd.Process.Signal(syscall.SIGTERM)
	s.cmd.Wait()
	if t.Failed() {
		t.Logf("kcrash serve stderr:\n%s", s.stderr)
	}
}

func (s *server) kill() {
	s.stopped = true
	s.cmd.Process.Kill()
	s.cmd.Wait()
}

type apiReport struct {
	ID        int64     `json:"id"`
	Host      string    `json:"host"`
	Time      time.Time `json:"time"`
	Kind      string    `json:"kind"`
	Title     string    `json:"title"`
	Signature string    `json:"signature"`
	Panicked  bool      `json:"panicked"`
}

func (s *server) reports(t *testing.T) []apiReport {
	t.Helper()
	resp, err := http.Get("http://" + s.http + "/api/reports")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		Reports []apiReport `json:"reports"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatal(err)
	}
	return out.Reports
}

func (s *server) groups(t *testing.T) []struct {
	Signature string   `json:"signature"`
	Count     int      `json:"count"`
	Hosts     []string `json:"hosts"`
} {
	t.Helper()
	resp, err := http.Get("http://" + s.http + "/api/groups")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		Groups []struct {
			Signature string   `json:"signature"`
			Count     int      `json:"count"`
			Hosts     []string `json:"hosts"`
		} `json:"groups"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatal(err)
	}
	return out.Groups
}

// sendCapture sends a lab capture to the server from a source address, as the
// kernel did: extended captures one record per datagram, plain ones in 1000-byte
// payloads.
func sendCapture(t *testing.T, to string, from *net.UDPAddr, file string, upTo int) {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	ua, _ := net.ResolveUDPAddr("udp", to)
	c, err := net.DialUDP("udp", from, ua)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var dgrams [][]byte
	if strings.HasSuffix(file, "-ext") {
		dgrams = bytes.Split(bytes.TrimSuffix(data, []byte("\n")), []byte("\n"))
	} else {
		for len(data) > 0 {
			n := min(len(data), 1000)
			dgrams = append(dgrams, data[:n])
			data = data[n:]
		}
	}
	if upTo > 0 {
		dgrams = dgrams[:min(upTo, len(dgrams))]
	}
	for i, d := range dgrams {
		if _, err := c.Write(d); err != nil {
			t.Fatal(err)
		}
		if i%32 == 31 {
			time.Sleep(time.Millisecond)
		}
	}
}

func waitFor(t *testing.T, what string, d time.Duration, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

const sampleDir = "../internal/collector/testdata/"

// TestServeRestart kills the server mid-stream (SIGKILL) and checks that every
// report it had stored survives the restart, and that the restarted server goes
// on collecting.
func TestServeRestart(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "kcrash.db")
	s := startServe(t, db, filepath.Join(dir, "logs"))
	for i, f := range []string{"ACCESS_NULL.netconsole-ext", "ACCESS_NULL.netconsole"} {
		sendCapture(t, s.udp, &net.UDPAddr{IP: net.IPv4(127, 0, 3, byte(1+i)), Port: 6665}, sampleDir+f, 0)
	}
	waitFor(t, "two reports", 5*time.Second, func() bool { return len(s.reports(t)) == 2 })
	before := s.reports(t)
	// A third host is half-way through its crash when the server dies.
	sendCapture(t, s.udp, &net.UDPAddr{IP: net.IPv4(127, 0, 3, 3), Port: 6665}, sampleDir+"ACCESS_NULL.netconsole-ext", 50)
	s.kill()
	s2 := startServe(t, db, filepath.Join(dir, "logs"))
	after := s2.reports(t)
	if len(after) < len(before) {
		t.Fatalf("%d reports after the restart, %d before", len(after), len(before))
	}
	for i := range before {
		if after[len(after)-len(before)+i] != before[i] {
			t.Errorf("report changed across the restart: %+v vs %+v", before[i], after[i])
		}
	}
	sendCapture(t, s2.udp, &net.UDPAddr{IP: net.IPv4(127, 0, 3, 4), Port: 6665}, sampleDir+"ACCESS_NULL.netconsole-ext", 0)
	waitFor(t, "a report after the restart", 5*time.Second, func() bool { return len(s2.reports(t)) == len(after)+1 })
}

// TestServePostgresOutage stops the PostgreSQL server while crashes arrive and
// checks that they are stored once it is back.
func TestServePostgresOutage(t *testing.T) {
	pg := storetest.StartPostgres(t)
	dir := t.TempDir()
	s := startServe(t, pg.DSN, filepath.Join(dir, "logs"))
	sendCapture(t, s.udp, &net.UDPAddr{IP: net.IPv4(127, 0, 4, 1), Port: 6665}, sampleDir+"ACCESS_NULL.netconsole-ext", 0)
	waitFor(t, "the first report", 5*time.Second, func() bool { return len(s.reports(t)) == 1 })
	if err := pg.Stop(); err != nil {
		t.Fatal(err)
	}
	for i, f := range []string{"ACCESS_NULL.netconsole-ext", "ACCESS_NULL.netconsole"} {
		sendCapture(t, s.udp, &net.UDPAddr{IP: net.IPv4(127, 0, 4, byte(2+i)), Port: 6665}, sampleDir+f, 0)
	}
	time.Sleep(1500 * time.Millisecond) // the collector finds them and fails to store them
	if err := pg.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the reports found during the outage", 20*time.Second, func() bool { return len(s.reports(t)) == 3 })
	m := s.metrics(t)
	if !strings.Contains(m, "kcrash_store_errors_total") || strings.Contains(m, "kcrash_store_errors_total 0\n") {
		t.Errorf("the outage left no store errors in the metrics:\n%s", m)
	}
}

// TestServeKillDuringOutage: crashes arrive while PostgreSQL is down and the server
// is killed (SIGKILL) once it has spooled them; restarted with the database back,
// it stores each of them, once, and a second restart stores nothing more.
func TestServeKillDuringOutage(t *testing.T) {
	pg := storetest.StartPostgres(t)
	logs := filepath.Join(t.TempDir(), "logs") // the spool defaults to logs/.spool
	s := startServe(t, pg.DSN, logs)
	sendCapture(t, s.udp, &net.UDPAddr{IP: net.IPv4(127, 0, 5, 1), Port: 6665}, sampleDir+"ACCESS_NULL.netconsole-ext", 0)
	waitFor(t, "the first report", 5*time.Second, func() bool { return len(s.reports(t)) == 1 })
	if err := pg.Stop(); err != nil {
		t.Fatal(err)
	}
	for i, f := range []string{"ACCESS_NULL.netconsole-ext", "ACCESS_NULL.netconsole"} {
		sendCapture(t, s.udp, &net.UDPAddr{IP: net.IPv4(127, 0, 5, byte(2+i)), Port: 6665}, sampleDir+f, 0)
	}
	waitFor(t, "two reports in the spool", 10*time.Second, func() bool {
		return strings.Contains(s.metrics(t), "\nkcrash_spool_pending 2\n")
	})
	s.kill()
	if err := pg.Start(); err != nil {
		t.Fatal(err)
	}
	s2 := startServe(t, pg.DSN, logs)
	waitFor(t, "the reports spooled before the kill", 20*time.Second, func() bool { return len(s2.reports(t)) == 3 })
	s2.stop(t)
	s3 := startServe(t, pg.DSN, logs)
	reps := s3.reports(t)
	hosts := map[string]int{}
	for _, r := range reps {
		hosts[strings.Split(r.Host, ":")[0]]++
	}
	if len(reps) != 3 || hosts["127.0.5.1"] != 1 || hosts["127.0.5.2"] != 1 || hosts["127.0.5.3"] != 1 {
		t.Errorf("after two restarts, reports by host %v, want one from each of 127.0.5.1-3", hosts)
	}
	if m := s3.metrics(t); !strings.Contains(m, "\nkcrash_spool_pending 0\n") {
		t.Errorf("spool not empty after its reports were stored:\n%s", m)
	}
}

func (s *server) metrics(t *testing.T) string {
	resp, err := http.Get("http://" + s.http + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// TestServeFleet: lab guests send real netconsole (plain, then extended) to kcrash
// serve; the crashed guest's report must be stored within a second of reaching the
// collector, grouped, and shown on the dashboard in headless Chromium. Run with
// SQLite and with PostgreSQL.
func TestServeFleet(t *testing.T) {
	if _, err := lab.LoadKernel(filepath.Join(lab.DefaultDir(), "current")); err != nil {
		needLab(t, "%v", err)
	}
	browser := needChromium(t)
	t.Run("sqlite", func(t *testing.T) {
		dir := t.TempDir()
		// --symbols holds <release>/vmlinux and the lab's lkdtm.ko: report pages decode.
		m := manifest(t)
		syms := filepath.Join(dir, "symbols", m.Kernel.Release)
		if err := os.MkdirAll(syms, 0o755); err != nil {
			t.Fatal(err)
		}
		os.Symlink(m.Path(m.Kernel.Vmlinux), filepath.Join(syms, "vmlinux"))
		os.Symlink(m.Path(m.Kernel.LKDTM), filepath.Join(syms, "lkdtm.ko"))
		s := startServe(t, filepath.Join(dir, "kcrash.db"), filepath.Join(dir, "logs"), "--symbols", filepath.Join(dir, "symbols"))
		fleetCrash(t, s, false, "fleet-2")
		fleetCrash(t, s, true, "fleet-1")
		if g := s.groups(t); len(g) != 1 || g[0].Count != 2 || len(g[0].Hosts) != 2 {
			t.Errorf("groups %+v, want one of 2 reports from 2 hosts", g)
		}
		checkDashboard(t, browser, s, "sqlite")
		// The decoded report: frames with source lines, the trapping instruction and
		// the explanation, within a second of the page being asked for.
		reps := s.reports(t)
		start := time.Now()
		page := string(chromium(t, browser, "--dump-dom", fmt.Sprintf("http://%s/reports/%d", s.http, reps[0].ID)))
		for _, want := range []string{"lkdtm_ACCESS_NULL (", "perms.c:", "trapping instruction", "NULL pointer dereference", "equals CR2"} {
			if !strings.Contains(page, want) {
				t.Errorf("decoded report page lacks %q", want)
			}
		}
		t.Logf("decoded report page in %v (including Chromium's start)", time.Since(start))
	})
	t.Run("postgres", func(t *testing.T) {
		pg := storetest.StartPostgres(t)
		s := startServe(t, pg.DSN, filepath.Join(t.TempDir(), "logs"))
		fleetCrash(t, s, true, "fleet-1")
		checkDashboard(t, browser, s, "postgres")
	})
}

// fleetCrash boots two guests sending to s and crashes one, watching the API
// while it happens.
func fleetCrash(t *testing.T, s *server, extended bool, crash string) {
	t.Helper()
	known := map[int64]bool{}
	for _, r := range s.reports(t) {
		known[r.ID] = true
	}
	var mu sync.Mutex
	seen := map[int64]time.Time{} // when each new report first showed in the API
	logs := map[int64][]byte{}    // its host's raw log at that moment
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for ctx.Err() == nil {
			for _, r := range s.reports(t) {
				mu.Lock()
				if !known[r.ID] && seen[r.ID].IsZero() {
					seen[r.ID] = time.Now()
					// The collector writes a host's raw log before its report can be
					// stored: the log read now must already hold the crash.
					logs[r.ID], _ = os.ReadFile(filepath.Join(s.logs, collector.LogName(r.Host)))
				}
				mu.Unlock()
			}
			time.Sleep(50 * time.Millisecond)
		}
	}()
	args := []string{"lab", "fleet", "-n", "2", "--to", s.udp, "--crash-names", crash, "--json", "--keep", t.TempDir()}
	if extended {
		args = append(args, "--extended")
	}
	cmd := exec.Command(kcrashBin, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		cancel()
		wg.Wait()
		t.Fatalf("kcrash %v: %v\n%s\n%s", args, err, out, stderr.Bytes())
	}
	time.Sleep(time.Second)
	cancel()
	wg.Wait()
	var res lab.FleetResult
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("fleet --json: %v\n%s", err, out)
	}
	if c := res.Crashed(); len(c) != 1 || c[0] != crash {
		t.Fatalf("crashed guests %v, want [%s]", c, crash)
	}
	var fresh []apiReport
	for _, r := range s.reports(t) {
		if !known[r.ID] {
			fresh = append(fresh, r)
		}
	}
	if len(fresh) != 1 {
		t.Fatalf("%d new reports, want 1: %+v", len(fresh), fresh)
	}
	r := fresh[0]
	if r.Kind != "null-ptr-deref" || !r.Panicked || !strings.Contains(r.Title, "lkdtm_ACCESS_NULL") {
		t.Errorf("report %+v", r)
	}
	// The report's host is the crashed guest: its raw log, as it was when the
	// report first showed in the API, names it and holds the panic.
	mu.Lock()
	lat := seen[r.ID].Sub(r.Time)
	logData := logs[r.ID]
	mu.Unlock()
	ready := regexp.MustCompile(`kcrash-lab: guest (\S+) ready`).FindAllSubmatch(logData, -1)
	var names []string
	for _, m := range ready {
		names = append(names, string(m[1]))
	}
	switch {
	case len(names) == 0 || names[len(names)-1] != crash: // the guest last heard from that address
		t.Errorf("report host %s: its raw log (%d bytes when the report showed) has the ready lines of %q, want %s last", r.Host, len(logData), names, crash)
	case !bytes.Contains(logData, []byte("Kernel panic - not syncing")):
		t.Errorf("report host %s: its raw log (%d bytes when the report showed) lacks the panic", r.Host, len(logData))
	}
	// r.Time is when the report's first line arrived; the panic follows it within
	// milliseconds, and the report must be visible within a second of that.
	t.Logf("%s (%s): report %d visible %v after its first line arrived", crash, map[bool]string{false: "plain", true: "extended"}[extended], r.ID, lat.Round(time.Millisecond))
	if lat > time.Second+100*time.Millisecond { // +one API poll
		t.Errorf("report visible %v after it arrived, want under a second", lat)
	}
}

func needChromium(t *testing.T) string {
	t.Helper()
	for _, b := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(b); err == nil {
			return p
		}
	}
	msg := "chromium is not installed; install it with: apt-get install chromium (test.sh does)"
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

func artifactDir(t *testing.T) string {
	dir := os.Getenv("KCRASH_ARTIFACTS")
	if dir == "" {
		dir = filepath.Join(os.TempDir(), "kcrash-artifacts")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// chromium runs headless Chromium with args and the URL.
func chromium(t *testing.T, browser string, args ...string) []byte {
	t.Helper()
	profile := t.TempDir()
	full := append([]string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
		"--user-data-dir=" + profile}, args...)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, browser, full...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("chromium %v: %v\n%s", args, err, stderr.Bytes())
	}
	return out
}

// checkDashboard loads the dashboard and the newest report page in Chromium and
// checks what it rendered; the dashboard's screenshot is kept.
func checkDashboard(t *testing.T, browser string, s *server, name string) {
	t.Helper()
	reps := s.reports(t)
	if len(reps) == 0 {
		t.Fatal("no reports to show")
	}
	dom := string(chromium(t, browser, "--dump-dom", "http://"+s.http+"/"))
	rows := 0
	sc := bufio.NewScanner(strings.NewReader(dom))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if strings.Contains(sc.Text(), `class="report"`) {
			rows++
		}
	}
	if rows != len(reps) || !strings.Contains(dom, "lkdtm_ACCESS_NULL") || !strings.Contains(dom, "crashed") || !strings.Contains(dom, `<svg class="chart"`) {
		t.Errorf("dashboard DOM: %d report rows (want %d), title/state/chart present: %v %v %v",
			rows, len(reps), strings.Contains(dom, "lkdtm_ACCESS_NULL"), strings.Contains(dom, "crashed"), strings.Contains(dom, `<svg class="chart"`))
	}
	page := string(chromium(t, browser, "--dump-dom", fmt.Sprintf("http://%s/reports/%d", s.http, reps[0].ID)))
	if !strings.Contains(page, `id="frames"`) || !strings.Contains(page, "BUG: kernel NULL pointer dereference") {
		t.Errorf("report page lacks its frames or text")
	}
	shot := filepath.Join(artifactDir(t), "serve-dashboard-"+name+".png")
	chromium(t, browser, "--screenshot="+shot, "--window-size=1280,900", "http://"+s.http+"/")
	if fi, err := os.Stat(shot); err != nil || fi.Size() < 1000 {
		t.Errorf("screenshot %s: %v", shot, err)
	}
	t.Logf("dashboard screenshot: %s", shot)
}
