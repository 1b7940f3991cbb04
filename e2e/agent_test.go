package e2e

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kcrash/kcrash/internal/lab"
)

// pstoreScenario loads the pstore scenario's records (lab scenario pstore).
func pstoreScenario(t *testing.T) (records []string, serial string) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(lab.DefaultDir(), "scenarios", "pstore", "result.json"))
	if err != nil {
		needLab(t, "no pstore scenario result: %v (kcrash lab scenario pstore)", err)
	}
	var res struct {
		Result lab.PstoreResult `json:"result"`
	}
	if err := json.Unmarshal(data, &res); err != nil {
		t.Fatal(err)
	}
	for _, r := range res.Result.PstoreRecords {
		records = append(records, r.Path)
	}
	if len(records) == 0 {
		needLab(t, "the pstore scenario read no records")
	}
	return records, res.Result.Serial
}

// copyRecords puts the records in a fresh directory under their pstore names.
func copyRecords(t *testing.T, records []string) string {
	t.Helper()
	dir := t.TempDir()
	for _, p := range records {
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(dir, strings.TrimPrefix(filepath.Base(p), "pstore.")), data, 0o644)
	}
	return dir
}

type agentAPIReport struct {
	Report struct {
		ID      int64  `json:"id"`
		Title   string `json:"title"`
		Sources string `json:"sources"`
	} `json:"report"`
}

func agentGetJSON(t *testing.T, u string, v any) {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("%s: %v", u, err)
	}
}

func reportIDs(t *testing.T, base string) []int64 {
	t.Helper()
	var list struct {
		Reports []struct {
			ID int64 `json:"id"`
		} `json:"reports"`
	}
	agentGetJSON(t, base+"/api/reports", &list)
	var ids []int64
	for _, r := range list.Reports {
		ids = append(ids, r.ID)
	}
	return ids
}

// TestAgentPstore: the crash the pstore scenario's guest printed on its serial
// console (ingested as the live capture) and kept in ramoops across the warm reset
// (delivered by kcrash agent) is one report with both sources, shown on its page;
// the records are removed only after the acknowledgement, and a second run sends
// nothing.
func TestAgentPstore(t *testing.T) {
	records, serial := pstoreScenario(t)
	dir := t.TempDir()
	s := startServe(t, filepath.Join(dir, "kcrash.db"), filepath.Join(dir, "logs"), "--token", "tok")
	base := "http://" + s.http
	if out, err := exec.Command(kcrashBin, "ingest", "--server", base, "--token", "tok", "--host", "lab-pstore", serial).CombinedOutput(); err != nil {
		t.Fatalf("ingest: %v\n%s", err, out)
	}
	var live []int64
	for deadline := time.Now().Add(10 * time.Second); len(live) == 0 && time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		live = reportIDs(t, base)
	}
	if len(live) != 1 {
		t.Fatalf("live reports %v", live)
	}
	ps := copyRecords(t, records)
	state := filepath.Join(dir, "agent.json")
	agent := func(server string) *exec.Cmd {
		return exec.Command(kcrashBin, "agent", "--server", server, "--token", "tok", "--host", "lab-pstore",
			"--pstore", ps, "--crash-dir", "", "--state", state, "--once", "--json")
	}
	out, err := agent(base).Output()
	if err != nil {
		t.Fatalf("agent: %v\n%s", err, out)
	}
	if ids := reportIDs(t, base); len(ids) != 1 || ids[0] != live[0] {
		t.Fatalf("reports after the agent: %v, want only %d", ids, live[0])
	}
	var rep agentAPIReport
	agentGetJSON(t, base+"/api/reports/"+itoa(live[0]), &rep)
	if rep.Report.Sources != "live,pstore" {
		t.Errorf("sources %q, want live,pstore", rep.Report.Sources)
	}
	page, _ := http.Get(base + "/reports/" + itoa(live[0]))
	body, _ := io.ReadAll(page.Body)
	page.Body.Close()
	if !strings.Contains(string(body), `source <span id="source">live,pstore</span>`) {
		t.Errorf("the report page does not show the sources")
	}
	if ents, _ := os.ReadDir(ps); len(ents) != 0 {
		t.Errorf("%d records left after the acknowledgement", len(ents))
	}
	t.Logf("agent: %s", strings.TrimSpace(string(out)))
}

// TestAgentKilledMidUpload: the agent is killed with SIGKILL while its upload is in
// flight (the collector has stored the report; the answer is held back by a proxy),
// and with the collector down at first; the next runs deliver it once.
func TestAgentKilledMidUpload(t *testing.T) {
	records, _ := pstoreScenario(t)
	dir := t.TempDir()
	ps := copyRecords(t, records)
	state := filepath.Join(dir, "agent.json")
	agent := func(server string, once bool) *exec.Cmd {
		args := []string{"agent", "--server", server, "--token", "tok", "--host", "lab-pstore",
			"--pstore", ps, "--crash-dir", "", "--state", state, "--retry-max", "200ms"}
		if once {
			args = append(args, "--once")
		}
		return exec.Command(kcrashBin, args...)
	}
	// The collector is down: the agent keeps retrying (not --once) and delivers
	// when it comes up on the address it was given.
	port := freePort(t, "tcp")
	httpAddr := "127.0.0.1:" + itoa(int64(port))
	a := agent("http://"+httpAddr, false)
	a.Stderr = new(strings.Builder)
	if err := a.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1500 * time.Millisecond)
	if ents, _ := os.ReadDir(ps); len(ents) != len(records) {
		t.Fatalf("records removed while the collector was down")
	}
	s := &server{udp: "127.0.0.1:" + itoa(int64(freePort(t, "udp"))), http: httpAddr}
	s.cmd = exec.Command(kcrashBin, "serve", "--udp", s.udp, "--http", httpAddr, "--db", filepath.Join(dir, "kcrash.db"),
		"--logs", filepath.Join(dir, "logs"), "--token", "tok")
	s.stderr = new(bytes.Buffer)
	s.cmd.Stderr = s.stderr
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.stop(t) })
	done := make(chan error, 1)
	go func() { done <- a.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("agent: %v\n%s", err, a.Stderr)
		}
	case <-time.After(30 * time.Second):
		a.Process.Kill()
		t.Fatalf("the agent did not deliver once the collector was up:\n%s", a.Stderr)
	}
	base := "http://" + httpAddr
	if ids := reportIDs(t, base); len(ids) != 1 {
		t.Fatalf("reports after the collector came back: %v", ids)
	}

	// A new crash (the same records as another host's): the proxy forwards the
	// upload, the collector stores it, and the agent is killed before the answer.
	for _, p := range records {
		data, _ := os.ReadFile(p)
		os.WriteFile(filepath.Join(ps, strings.TrimPrefix(filepath.Base(p), "pstore.")), data, 0o644)
	}
	target, _ := url.Parse(base)
	forwarded := make(chan struct{}, 4)
	hold := make(chan struct{})
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := httptest.NewRecorder()
		httputil.NewSingleHostReverseProxy(target).ServeHTTP(rec, r)
		forwarded <- struct{}{}
		<-hold
	}))
	defer proxy.Close()
	defer close(hold)
	victim := exec.Command(kcrashBin, "agent", "--server", proxy.URL, "--token", "tok", "--host", "lab-pstore-2",
		"--pstore", ps, "--crash-dir", "", "--state", state, "--once")
	if err := victim.Start(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-forwarded:
	case <-time.After(20 * time.Second):
		victim.Process.Kill()
		t.Fatal("the upload never reached the collector")
	}
	victim.Process.Kill() // SIGKILL, mid-upload: stored, not acknowledged
	victim.Wait()
	if ents, _ := os.ReadDir(ps); len(ents) != len(records) {
		t.Fatalf("records removed without an acknowledgement")
	}
	if ids := reportIDs(t, base); len(ids) != 2 {
		t.Fatalf("reports after the killed upload: %v (want the first and the new one)", ids)
	}
	again := exec.Command(kcrashBin, "agent", "--server", base, "--token", "tok", "--host", "lab-pstore-2",
		"--pstore", ps, "--crash-dir", "", "--state", state, "--once")
	if out, err := again.CombinedOutput(); err != nil {
		t.Fatalf("agent after the kill: %v\n%s", err, out)
	}
	if ids := reportIDs(t, base); len(ids) != 2 {
		t.Errorf("reports after the rerun: %v, want 2 (no duplicate)", ids)
	}
	if ents, _ := os.ReadDir(ps); len(ents) != 0 {
		t.Errorf("%d records left", len(ents))
	}
}

func itoa(n int64) string {
	b, _ := json.Marshal(n)
	return string(b)
}

// TestPstoreScenarioAgent checks the pstore scenario's agent runs: kcrash agent in the
// guest delivered the oops after the warm reset, once, with its source, both with the
// collector up and with it down at the first attempt, and removed the records.
func TestPstoreScenarioAgent(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(lab.DefaultDir(), "scenarios", "pstore", "result.json"))
	if err != nil {
		needLab(t, "no pstore scenario result: %v (kcrash lab scenario pstore)", err)
	}
	var res struct {
		Result lab.PstoreResult `json:"result"`
	}
	if err := json.Unmarshal(data, &res); err != nil {
		t.Fatal(err)
	}
	r := res.Result
	if r.Agent == nil || r.AgentCollectorDown == nil {
		needLab(t, "the pstore scenario result predates the agent runs (kcrash lab scenario pstore)")
	}
	if len(r.CollectorReports) != 1 {
		t.Fatalf("collector_reports %+v, want one report", r.CollectorReports)
	}
	for _, run := range []*lab.AgentRun{r.Agent, r.AgentCollectorDown} {
		if len(run.Reports) != 1 || run.Reports[0].Source != "pstore" || !strings.Contains(run.Reports[0].Title, "lkdtm_"+r.Trigger) {
			t.Errorf("collector down %v: reports %+v, want one %s report from pstore", run.CollectorDown, run.Reports, r.Trigger)
		}
		if run.AgentExit != "0" || len(run.RecordsLeft) != 0 {
			t.Errorf("collector down %v: agent exit %q, records left %v", run.CollectorDown, run.AgentExit, run.RecordsLeft)
		}
	}
	if !r.AgentCollectorDown.CollectorDown {
		t.Error("the second run did not start with the collector down")
	}
	t.Logf("delivered %.1f s after the warm reset (collector up), %.1f s (collector down at first)",
		r.Agent.SecondsToDelivery, r.AgentCollectorDown.SecondsToDelivery)
}

// TestAgentKdumpVmcore: a kdump crash directory (the lab's vmcore-dmesg.txt and its
// kdump-lzo dump) goes up with --upload-vmcore; the report page links the dump and
// shows sys, bt and explain run on it, the vmlinux found by the dump's build ID in
// --symbols.
func TestAgentKdumpVmcore(t *testing.T) {
	m := manifest(t)
	dmesg := labArtifact(t, m, "ACCESS_NULL", lab.ArtVmcoreDmesg, "")
	core := labArtifact(t, m, "ACCESS_NULL", lab.ArtVmcore, "kdump-lzo")
	dir := t.TempDir()
	syms := filepath.Join(dir, "symbols", m.Kernel.Release)
	os.MkdirAll(syms, 0o755)
	os.Symlink(m.Path(m.Kernel.Vmlinux), filepath.Join(syms, "vmlinux"))
	crash := filepath.Join(dir, "crash", "202611301012")
	os.MkdirAll(crash, 0o755)
	for src, dst := range map[string]string{dmesg: "dmesg.202611301012", core: "dump.202611301012"} {
		data, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(crash, dst), data, 0o644)
	}
	s := startServe(t, filepath.Join(dir, "kcrash.db"), filepath.Join(dir, "logs"), "--token", "tok",
		"--dumps", filepath.Join(dir, "dumps"), "--symbols", filepath.Join(dir, "symbols"))
	base := "http://" + s.http
	start := time.Now()
	out, err := exec.Command(kcrashBin, "agent", "--server", base, "--token", "tok", "--host", "lab-kdump",
		"--pstore", "", "--crash-dir", filepath.Join(dir, "crash"), "--state", filepath.Join(dir, "agent.json"),
		"--upload-vmcore", "--once", "--json").CombinedOutput()
	if err != nil {
		t.Fatalf("agent: %v\n%s", err, out)
	}
	took := time.Since(start)
	ids := reportIDs(t, base)
	if len(ids) != 1 {
		t.Fatalf("reports %v", ids)
	}
	var rep agentAPIReport
	agentGetJSON(t, base+"/api/reports/"+itoa(ids[0]), &rep)
	if rep.Report.Sources != "kdump" {
		t.Errorf("sources %q", rep.Report.Sources)
	}
	resp, err := http.Get(base + "/reports/" + itoa(ids[0]) + "/vmcore")
	if err != nil {
		t.Fatal(err)
	}
	n, _ := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	fi, _ := os.Stat(core)
	if resp.StatusCode != 200 || n != fi.Size() {
		t.Errorf("the dump link gave %s with %d bytes, want %d", resp.Status, n, fi.Size())
	}
	page, err := http.Get(base + "/reports/" + itoa(ids[0]))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(page.Body)
	page.Body.Close()
	for _, want := range []string{`id="vmcore"`, "crash&gt; sys", "RELEASE: " + m.Kernel.Release, "crash&gt; bt", "lkdtm_ACCESS_NULL", "crash&gt; explain"} {
		if !strings.Contains(string(body), want) {
			t.Errorf("the report page lacks %q", want)
		}
	}
	if t.Failed() {
		t.Logf("page:\n%s", body)
	}
	t.Logf("kdump log and %d MB dump delivered in %v", fi.Size()>>20, took.Round(time.Millisecond))
}
