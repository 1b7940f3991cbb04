package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kcrash/kcrash/internal/collector"
	"github.com/kcrash/kcrash/internal/netconsole"
	"github.com/kcrash/kcrash/internal/repro"
	"github.com/kcrash/kcrash/internal/repro/watch"
	"github.com/kcrash/kcrash/internal/store/sqlite"
	"github.com/kcrash/kcrash/internal/web"
)

const crashLog = "../../internal/collector/testdata/ACCESS_NULL.netconsole"

// freeUDP returns a free loopback UDP address.
func freeUDP(t testing.TB) string {
	t.Helper()
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().String()
}

// sendCommand is a shell load that waits delay, then sends the crash log to addr
// as plain netconsole (one datagram per line), then idles until stopped.
func sendCommand(t testing.TB, addr, delay string) string {
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("needs bash for /dev/udp")
	}
	host, port, _ := net.SplitHostPort(addr)
	abs, _ := filepath.Abs(crashLog)
	return fmt.Sprintf(`bash -c 'sleep %s; while IFS= read -r l; do printf "%%s\n" "$l"; done < %s > /dev/udp/%s/%s; sleep 60'`, delay, abs, host, port)
}

func TestReproEmbedded(t *testing.T) {
	addr := freeUDP(t)
	db := filepath.Join(t.TempDir(), "k.db")
	out := filepath.Join(t.TempDir(), "runs.json")
	code, stdout, stderr := runCmd(t, "", "repro", "--host", "127.0.0.1", "--load", sendCommand(t, addr, "0.3"),
		"--ready", "true", "--restart", "true", "--runs", "2", "--timeout", "20s", "--udp", addr, "--db", db, "--out", out, "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var res map[string]any
	if err := json.Unmarshal([]byte(stdout), &res); err != nil {
		t.Fatalf("%v: %s", err, stdout)
	}
	for _, k := range []string{"runs", "crashes", "censored", "times_s", "rate_per_s", "rate_ci95", "mttc_s", "mttc_ci95"} {
		if _, ok := res[k]; !ok {
			t.Errorf("no %q in %s", k, stdout)
		}
	}
	if len(res) != 8 {
		t.Errorf("keys beyond the contract: %s", stdout)
	}
	times := res["times_s"].([]any)
	if res["crashes"] != 2.0 || len(times) != 2 || times[0].(float64) < 0.3 || times[0].(float64) > 3 {
		t.Errorf("result %s", stdout)
	}
	if !strings.Contains(stderr, "run 2/2") || !strings.Contains(stderr, "BUG: unable to handle kernel NULL pointer dereference") {
		t.Errorf("progress: %s", stderr)
	}
	// The campaign and its runs are in the crash database.
	st, err := sqlite.Open(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	camp, cruns, err := st.Campaign(context.Background(), 1)
	if err != nil || camp.Kind != "repro" || camp.Status != "done" || camp.Signature == "" || len(cruns) != 2 || cruns[0].Report == 0 ||
		!strings.Contains(string(camp.Result), `"crashes":2`) {
		t.Errorf("recorded campaign %+v, runs %+v, %v", camp, cruns, err)
	}
	var file reproFile
	data, _ := os.ReadFile(out)
	if err := json.Unmarshal(data, &file); err != nil || len(file.Runs) != 2 || file.Signature == "" || file.Runs[0].Crash == nil {
		t.Errorf("--out: %v %s", err, data)
	}
}

// TestReproServer watches a kcrash serve through its API, with a second load
// (idle) that never crashes: censored runs and an unbounded ratio.
func TestReproServer(t *testing.T) {
	srv, addr := startServe(t)
	code, stdout, stderr := runCmd(t, "", "repro", "--host", "127.0.0.1", "--load", sendCommand(t, addr, "0.2"), "--compare", "sleep 60",
		"--ready", "true", "--restart", "true", "--runs", "1", "--timeout", "1s", "--server", srv, "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var res repro.Result
	if err := json.Unmarshal([]byte(stdout), &res); err != nil {
		t.Fatal(err)
	}
	if res.Crashes != 1 || res.Compare == nil || res.Compare.Censored != 1 || !strings.Contains(stdout, `"ratio": null`) || !strings.Contains(stdout, `"ratio_ci95": [`) {
		t.Errorf("result %s", stdout)
	}
	// The text form.
	code, stdout, stderr = runCmd(t, "", "repro", "--host", "127.0.0.1", "--load", sendCommand(t, addr, "0.1"),
		"--ready", "true", "--runs", "1", "--timeout", "10s", "--server", srv)
	if code != 0 || !strings.Contains(stdout, "runs 1: 1 crashed, 0 censored") || !strings.Contains(stdout, "time to crash:") {
		t.Errorf("exit %d\n%s\n%s", code, stdout, stderr)
	}
}

func TestReproErrors(t *testing.T) {
	srv, _ := startServe(t)
	for _, tc := range []struct {
		name string
		args []string
		code int
		err  string
	}{
		{"no host", []string{"--load", "true"}, 2, "Usage"},
		{"signature and any", []string{"--host", "h", "--load", "true", "--signature", "v1:", "--any"}, 2, "Usage"},
		{"collector unreachable", []string{"--host", "h", "--load", "true", "--server", "http://127.0.0.1:1"}, 1, "collector unreachable"},
		{"load fails", []string{"--host", "h", "--load", "exit 7", "--server", srv, "--timeout", "10s"}, 1, "load failed and no crash followed"},
		{"restart fails", []string{"--host", "h", "--load", "sleep 5", "--restart", "exit 3", "--server", srv, "--timeout", "300ms", "--runs", "2"}, 1, "after run 1: restart hook"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := runCmd(t, "", append([]string{"repro"}, tc.args...)...)
			if code != tc.code || !strings.Contains(stderr, tc.err) {
				t.Errorf("exit %d, stderr %q", code, stderr)
			}
			if tc.name == "restart fails" && !strings.Contains(stdout, "runs 1: 0 crashed, 1 censored") {
				t.Errorf("the run before the error is not reported: %s", stdout)
			}
		})
	}
}

func TestSoakCommand(t *testing.T) {
	srv, addr := startServe(t)
	dir := t.TempDir()
	state := filepath.Join(dir, "soak.json")
	// Clean: 0.3 s of load at an MTTC of 0.1 s gives 95%.
	code, stdout, stderr := runCmd(t, "", "soak", "--host", "127.0.0.1", "--load", "sleep 60", "--mttc", "100ms", "--confidence", "0.95",
		"--server", srv, "--state", state, "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var res map[string]any
	json.Unmarshal([]byte(stdout), &res)
	if res["verdict"] != "fixed" || res["crashed"] != false || res["confidence"].(float64) < 0.95 || len(res) != 6 {
		t.Errorf("clean soak: %s", stdout)
	}
	// Recorded in --db when given with --server, resumed into the same campaign.
	db := filepath.Join(dir, "k.db")
	sstate := filepath.Join(dir, "rec.json")
	os.WriteFile(sstate, []byte(`{"version":1,"host":"127.0.0.1","mttc_s":0.1,"rate_per_s":10,"confidence":0.95,"required_s":0.3,"watched_s":0.1,"verdict":"incomplete","campaign":7}`), 0o644)
	if code, _, stderr := runCmd(t, "", "soak", "--host", "127.0.0.1", "--load", "sleep 60", "--mttc", "100ms", "--server", srv, "--db", db, "--state", sstate); code != 0 {
		t.Fatalf("recorded soak: exit %d %s", code, stderr)
	}
	st, err := sqlite.Open(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	camp, cruns, err := st.Campaign(context.Background(), 1)
	st.Close()
	if err != nil || camp.Kind != "soak" || camp.Status != "fixed" || len(cruns) != 1 || cruns[0].Seconds < 0.3 || !strings.Contains(string(camp.Result), `"verdict":"fixed"`) {
		t.Errorf("recorded soak %+v, runs %+v, %v", camp, cruns, err)
	}
	if back, _ := repro.LoadState(sstate); back == nil || back.Campaign != 1 {
		t.Errorf("state's campaign: %+v", back)
	}
	// A finished soak's state answers at once.
	if code, again, _ := runCmd(t, "", "soak", "--host", "127.0.0.1", "--load", "sleep 60", "--mttc", "100ms", "--server", srv, "--state", state, "--json"); code != 0 || again != stdout {
		t.Errorf("again: exit %d %s", code, again)
	}
	// Sized from a repro result.
	rf := filepath.Join(dir, "repro.json")
	os.WriteFile(rf, []byte(`{"runs":10,"crashes":10,"censored":0,"times_s":[],"rate_per_s":20,"rate_ci95":[10,40],"mttc_s":0.05,"mttc_ci95":[0.025,0.1]}`), 0o644)
	code, stdout, stderr = runCmd(t, "", "soak", "--host", "127.0.0.1", "--load", "sleep 60", "--rate-from", rf, "--confidence", "0.99",
		"--server", srv, "--state", filepath.Join(dir, "s2.json"))
	if code != 0 || !strings.Contains(stdout, "461 ms of load without this crash gives 99% confidence") || !strings.Contains(stdout, "fixed with 99% confidence") ||
		!strings.Contains(stdout, "rate dropped at least") {
		t.Errorf("exit %d\n%s\n%s", code, stdout, stderr)
	}
	// The crash comes back: not fixed, exit 3.
	code, stdout, stderr = runCmd(t, "", "soak", "--host", "127.0.0.1", "--load", sendCommand(t, addr, "0.1"), "--mttc", "10s",
		"--server", srv, "--state", filepath.Join(dir, "s3.json"), "--json")
	if code != 3 || !strings.Contains(stdout, `"verdict": "not fixed"`) || !strings.Contains(stdout, `"crashed": true`) {
		t.Errorf("exit %d\n%s\n%s", code, stdout, stderr)
	}
	// Bad input.
	for _, args := range [][]string{
		{"--host", "h", "--load", "true"},
		{"--host", "h", "--load", "true", "--mttc", "1s", "--rate-from", rf},
	} {
		if code, _, _ := runCmd(t, "", append([]string{"soak"}, args...)...); code != 2 {
			t.Errorf("%v: exit %d", args, code)
		}
	}
	os.WriteFile(rf, []byte(`{"runs":3,"crashes":0,"censored":3,"times_s":[],"rate_per_s":0,"rate_ci95":[0,0.1],"mttc_s":null,"mttc_ci95":[10,null]}`), 0o644)
	if code, _, stderr := runCmd(t, "", "soak", "--host", "h", "--load", "true", "--rate-from", rf, "--server", srv); code != 1 || !strings.Contains(stderr, "saw no crash") {
		t.Errorf("no crash to size on: exit %d %s", code, stderr)
	}
}

// startServe runs kcrash serve's pipeline in the test: netconsole on a loopback
// port, a collector with a SQLite store, and the web API.
func startServe(t testing.TB) (url, udp string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "serve.db"))
	if err != nil {
		t.Fatal(err)
	}
	col := collector.New(collector.Options{Store: st})
	rcv, err := netconsole.Listen(ctx, "127.0.0.1:0", netconsole.ListenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	go col.Run(ctx, time.Second)
	go rcv.Run(col.HandleBatch)
	hs := httptest.NewServer(web.New(web.Options{Store: st, Pipeline: col}))
	t.Cleanup(func() {
		hs.Close()
		rcv.Close()
		cancel()
		<-col.Done()
		st.Close()
	})
	return hs.URL, rcv.Addr().String()
}

// goLoad sends the crash log line by line from one socket after a delay.
type goLoad struct {
	to    string
	delay time.Duration
	lines [][]byte
}

type goProc struct {
	done chan struct{}
	stop chan struct{}
}

func (p *goProc) Done() <-chan struct{} { return p.done }
func (p *goProc) Err() error            { return nil }
func (p *goProc) Stop() error {
	select {
	case <-p.stop:
	default:
		close(p.stop)
	}
	<-p.done
	return nil
}

func (l *goLoad) Start(ctx context.Context) (repro.Process, error) {
	c, err := net.Dial("udp", l.to)
	if err != nil {
		return nil, err
	}
	p := &goProc{done: make(chan struct{}), stop: make(chan struct{})}
	go func() {
		defer close(p.done)
		defer c.Close()
		select {
		case <-p.stop:
			return
		case <-time.After(l.delay):
		}
		for _, line := range l.lines {
			c.Write(line)
		}
		<-p.stop
	}()
	return p, nil
}

func crashLines(t testing.TB) [][]byte {
	data, err := os.ReadFile(crashLog)
	if err != nil {
		t.Fatal(err)
	}
	var lines [][]byte
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		lines = append(lines, append(sc.Bytes(), '\n'))
	}
	return lines
}

// BenchmarkReproOverhead measures how long after a crash's first line reaches the
// collector repro records it, watching a kcrash serve's API and an embedded
// collector: the overhead_ms metric (the collector completes a report on the
// panic's end marker or 300 ms of quiet; repro polls every 200 ms).
func BenchmarkReproOverhead(b *testing.B) {
	for _, mode := range []string{"server", "embedded"} {
		b.Run(mode, func(b *testing.B) {
			var w repro.Watcher
			var to string
			if mode == "server" {
				var url string
				url, to = startServe(b)
				w = watch.NewServer(url, "127.0.0.1")
			} else {
				to = freeUDP(b)
				st, err := sqlite.Open(context.Background(), filepath.Join(b.TempDir(), "k.db"))
				if err != nil {
					b.Fatal(err)
				}
				defer st.Close()
				ew, err := watch.StartEmbedded(context.Background(), to, st, "127.0.0.1")
				if err != nil {
					b.Fatal(err)
				}
				defer ew.Close()
				w = ew
			}
			camp := &repro.Campaign{Load: &goLoad{to: to, delay: 50 * time.Millisecond, lines: crashLines(b)}, Watch: w,
				Match: &repro.Matcher{Any: true}, Restart: func(context.Context) error { return nil },
				Ready: func(context.Context) error { return nil }, Runs: b.N, Timeout: 10 * time.Second}
			b.ResetTimer()
			runs, err := camp.Execute(context.Background())
			if err != nil {
				b.Fatal(err)
			}
			var sum, worst float64
			for _, r := range runs {
				if r.Outcome != repro.OutcomeCrash {
					b.Fatalf("run %d: %s", r.N, r.Outcome)
				}
				sum += r.Overhead
				worst = max(worst, r.Overhead)
			}
			b.ReportMetric(1000*sum/float64(len(runs)), "overhead_ms")
			b.ReportMetric(1000*worst, "worst_ms")
			if worst >= 1 {
				b.Errorf("overhead %.0f ms is not under 1 s", 1000*worst)
			}
		})
	}
}

// TestSoakFor: --for shorter than the confidence needs says what it gives.
func TestSoakFor(t *testing.T) {
	srv, _ := startServe(t)
	code, stdout, stderr := runCmd(t, "", "soak", "--host", "127.0.0.1", "--load", "sleep 60", "--mttc", "1s", "--confidence", "0.99",
		"--for", "300ms", "--server", srv, "--state", filepath.Join(t.TempDir(), "s.json"))
	if code != 0 || !strings.Contains(stdout, "300 ms of load without this crash gives 25.92% confidence (mean time to crash of 1 s as given)") ||
		!strings.Contains(stdout, "fixed with only") || !strings.Contains(stdout, "too short to say") {
		t.Errorf("exit %d\n%s\n%s", code, stdout, stderr)
	}
}
