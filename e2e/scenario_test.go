package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/kcrash/kcrash/internal/lab"
)

// scenario runs `kcrash lab scenario NAME --json` (test.sh ran it first, so this
// reads the cached result of the same recipe) and decodes it into v.
func scenario(t *testing.T, name string, v any) {
	t.Helper()
	if _, err := lab.LoadKernel(lab.DefaultDir() + "/current"); err != nil {
		needLab(t, "%v", err)
	}
	cmd := exec.Command(kcrashBin, "lab", "scenario", name, "--json")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("kcrash lab scenario %s --json: %v\n%s", name, err, stderr.Bytes())
	}
	if err := json.Unmarshal(out, v); err != nil {
		t.Fatalf("kcrash lab scenario %s --json: %v\n%.800s", name, err, out)
	}
}

// TestLabKernels: kcrash lab kernels --json lists real Debian ABIs of 6.1 and 6.12
// in version order, the default one cached.
func TestLabKernels(t *testing.T) {
	out, err := exec.Command(kcrashBin, "lab", "kernels", "--json").Output()
	if err != nil {
		t.Fatalf("kcrash lab kernels --json: %v", err)
	}
	var list []struct {
		ABI     string `json:"abi"`
		Release string `json:"release"`
		Version string `json:"version"`
		Cached  bool   `json:"cached"`
	}
	if err := json.Unmarshal(out, &list); err != nil {
		t.Fatal(err)
	}
	def, err := lab.ResolveABI(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	series := map[string]int{}
	defCached := false
	for i, k := range list {
		series[lab.Series(k.ABI)]++
		if k.Version == "" || k.Release == "" || !strings.HasPrefix(k.Version, k.Release) {
			t.Errorf("%+v: release and version disagree", k)
		}
		if i > 0 && lab.CompareDebianVersions(list[i-1].Version, k.Version) > 0 {
			t.Errorf("%s (%s) listed after %s (%s)", k.ABI, k.Version, list[i-1].ABI, list[i-1].Version)
		}
		if k.ABI == def {
			defCached = k.Cached
		}
	}
	if series["6.1"] < 2 || series["6.12"] < 1 {
		t.Errorf("kernels by series %v, want several 6.1 and a 6.12", series)
	}
	if !defCached {
		t.Errorf("the default kernel %s is not listed as cached", def)
	}
	t.Logf("%d kernels: %v", len(list), series)
}

type raceMeasure struct {
	Load     string    `json:"load"`
	Module   string    `json:"module"`
	Runs     int       `json:"runs"`
	Crashes  int       `json:"crashes"`
	TimesS   []float64 `json:"times_s"`
	WatchedS float64   `json:"watched_s"`
	RatePerS float64   `json:"rate_per_s"`
	MTTCS    float64   `json:"mttc_s"`
	Details  []struct {
		Crashed bool       `json:"crashed"`
		Seconds float64    `json:"seconds"`
		Crash   *lab.Crash `json:"crash"`
		Serial  string     `json:"serial"`
	} `json:"details"`
}

// TestRaceUnderLoad: the receive-path race crashes under the flood, in netrace_rcv
// as a NULL dereference from the NIC's receive softirq, at least 10x as often as
// idle; fixed=1 survives the same flood for at least 10x the loaded mean time to crash.
func TestRaceUnderLoad(t *testing.T) {
	var r struct {
		ABI    string      `json:"abi"`
		PPS    int         `json:"pps"`
		Loaded raceMeasure `json:"loaded"`
		Idle   raceMeasure `json:"idle"`
		Fixed  raceMeasure `json:"fixed"`
	}
	scenario(t, "race", &r)
	for _, m := range []raceMeasure{r.Loaded, r.Idle, r.Fixed} {
		t.Logf("%-16s %-14s runs %d crashes %d watched %.1fs rate %.4f/s times %v", m.Module, m.Load, m.Runs, m.Crashes, m.WatchedS, m.RatePerS, m.TimesS)
	}
	if r.Loaded.Crashes < 3 || r.Loaded.MTTCS <= 0 {
		t.Fatalf("loaded: %d crashes in %d runs", r.Loaded.Crashes, r.Loaded.Runs)
	}
	if r.Loaded.RatePerS < 10*r.Idle.RatePerS || r.Idle.WatchedS < 10*r.Loaded.MTTCS {
		t.Errorf("loaded rate %.4f/s, idle %.4f/s over %.1fs: want >= 10x, watched >= 10 loaded MTTCs (%.1fs)",
			r.Loaded.RatePerS, r.Idle.RatePerS, r.Idle.WatchedS, r.Loaded.MTTCS)
	}
	if r.Fixed.Crashes != 0 || r.Fixed.WatchedS < 10*r.Loaded.MTTCS {
		t.Errorf("fixed=1: %d crashes in %.1fs under the same flood, want none in >= %.1fs", r.Fixed.Crashes, r.Fixed.WatchedS, 10*r.Loaded.MTTCS)
	}
	for _, d := range r.Loaded.Details {
		if !d.Crashed {
			continue
		}
		if d.Crash == nil || d.Crash.Kind != "null-ptr-deref" || d.Crash.Function != "netrace_rcv" {
			t.Errorf("%s: crash %+v, want a NULL dereference in netrace_rcv", d.Serial, d.Crash)
			continue
		}
		// The oops is in the receive path, in softirq under the NIC's NAPI poll (on
		// an interrupt's exit or in ksoftirqd).
		data, err := os.ReadFile(d.Serial)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range []string{"__netif_receive_skb", "net_rx_action", "virtnet_poll"} {
			if !bytes.Contains(data, []byte(f)) {
				t.Errorf("%s: call trace lacks %s", d.Serial, f)
			}
		}
	}
}

// TestRegressionGate: on real packaged kernels under the same flood, the race
// crashes the ABIs at or after the gate and never the ones before it (at least
// two ABIs on each side of the answer... one before, two from).
func TestRegressionGate(t *testing.T) {
	var r struct {
		GatedAt string `json:"gated_at"`
		Targets []struct {
			Name    string    `json:"name"`
			ABI     string    `json:"abi"`
			Gated   bool      `json:"gated"`
			Load    string    `json:"load"`
			Runs    int       `json:"runs"`
			Crashes int       `json:"crashes"`
			TimesS  []float64 `json:"times_s"`
		} `json:"targets"`
	}
	scenario(t, "regression", &r)
	gated, clean := 0, 0
	for _, tg := range r.Targets {
		t.Logf("%s %s gated=%v %d/%d crashed, times %v", tg.Name, tg.ABI, tg.Gated, tg.Crashes, tg.Runs, tg.TimesS)
		if tg.Gated != (lab.CompareABIs(tg.ABI, r.GatedAt) >= 0) {
			t.Errorf("%s: gated=%v but the gate is %s", tg.ABI, tg.Gated, r.GatedAt)
		}
		switch {
		case tg.Gated && tg.Crashes == 0:
			t.Errorf("%s is at or after the gate %s but never crashed under %s", tg.ABI, r.GatedAt, tg.Load)
		case !tg.Gated && tg.Crashes > 0:
			t.Errorf("%s is before the gate %s but crashed %d times", tg.ABI, r.GatedAt, tg.Crashes)
		case tg.Gated:
			gated++
		default:
			clean++
		}
	}
	if gated < 1 || clean < 1 || len(r.Targets) < 3 {
		t.Errorf("%d gated and %d clean ABIs of %d, want both sides", gated, clean, len(r.Targets))
	}
}

// TestHardwareFaults: corrected machine checks reach the console, a fatal one
// panics as kind mce, and bit flips crash in at least 3 different functions over
// 5 boots; the healthy host never crashes.
func TestHardwareFaults(t *testing.T) {
	var r struct {
		ABI     string `json:"abi"`
		Targets []struct {
			Name string `json:"name"`
			Role string `json:"role"`
			Runs []struct {
				Fault    string     `json:"fault"`
				Crashed  bool       `json:"crashed"`
				Seconds  float64    `json:"seconds"`
				Crash    *lab.Crash `json:"crash"`
				MCELines int        `json:"mce_lines"`
				Serial   string     `json:"serial"`
			} `json:"runs"`
		} `json:"targets"`
		Functions         []string `json:"bitflip_functions"`
		DistinctFunctions int      `json:"distinct_functions"`
		FatalMCEKind      string   `json:"fatal_mce_kind"`
	}
	scenario(t, "hardware", &r)
	flips := 0
	for _, tg := range r.Targets {
		for _, run := range tg.Runs {
			t.Logf("%s %s %s crashed=%v %.1fs mce lines %d %+v", tg.Name, tg.Role, run.Fault, run.Crashed, run.Seconds, run.MCELines, run.Crash)
			data, err := os.ReadFile(run.Serial)
			if err != nil {
				t.Fatal(err)
			}
			switch run.Fault {
			case "none":
				if run.Crashed {
					t.Errorf("the healthy host crashed: %+v", run.Crash)
				}
			case "bitflip":
				flips++
				if !run.Crashed {
					t.Errorf("%s: no crash from the bit flips in %.0fs", run.Serial, run.Seconds)
				}
				fallthrough
			case "mce-fatal":
				// Bank 1 holds the injected corrected error (with the overflow bit when the
				// second one arrived before the poller read the first).
				if !bytes.Contains(data, []byte("mce: [Hardware Error]: CPU 0: Machine Check: 0 Bank 1: ")) {
					t.Errorf("%s: the corrected machine check is not on the console", run.Serial)
				}
			}
			if run.Fault == "mce-fatal" && !regexp.MustCompile(`Kernel panic - not syncing: Fatal (local )?machine check`).Match(data) {
				t.Errorf("%s: no machine-check panic", run.Serial)
			}
		}
	}
	if flips < 5 || r.DistinctFunctions < 3 {
		t.Errorf("bit flips: %d boots crashed in %d functions %q, want 5 boots and 3 functions", flips, r.DistinctFunctions, r.Functions)
	}
	if r.FatalMCEKind != "mce" {
		t.Errorf("the fatal machine check was read as %q, want mce", r.FatalMCEKind)
	}
}

// TestPstoreAfterReboot: the oops the console showed is read back from ramoops
// after a warm reset, every text line of it byte for byte, with the same title.
func TestPstoreAfterReboot(t *testing.T) {
	var r struct {
		SerialTitles  []string `json:"serial_titles"`
		PstoreRecords []struct {
			Name   string   `json:"name"`
			Bytes  int      `json:"bytes"`
			Titles []string `json:"titles"`
			Path   string   `json:"path"`
		} `json:"pstore_records"`
		OopsLinesMatched bool     `json:"oops_lines_matched"`
		OopsLines        int      `json:"oops_lines"`
		Missing          []string `json:"missing_lines"`
	}
	scenario(t, "pstore", &r)
	if len(r.SerialTitles) == 0 || len(r.PstoreRecords) == 0 {
		t.Fatalf("serial titles %q, %d pstore records", r.SerialTitles, len(r.PstoreRecords))
	}
	same := false
	for _, p := range r.PstoreRecords {
		t.Logf("%s %d bytes %q", p.Name, p.Bytes, p.Titles)
		if st, err := os.Stat(p.Path); err != nil || int(st.Size()) != p.Bytes {
			t.Errorf("%s: %v (size %d)", p.Path, err, p.Bytes)
		}
		same = same || (len(p.Titles) > 0 && p.Titles[0] == r.SerialTitles[0])
	}
	if !same {
		t.Errorf("no pstore record has the console's title %q", r.SerialTitles[0])
	}
	if !r.OopsLinesMatched || r.OopsLines < 10 {
		t.Errorf("%d oops lines, matched=%v; missing %q", r.OopsLines, r.OopsLinesMatched, r.Missing)
	}
}

// TestTargetLifecycle: a target boots in the background, a flood from kcrash lab
// load crashes it, it stays crashed until rebooted (into another ABI), and stops.
func TestTargetLifecycle(t *testing.T) {
	if _, err := lab.LoadKernel(lab.DefaultDir() + "/current"); err != nil {
		needLab(t, "%v", err)
	}
	cached := lab.CachedKernels(lab.DefaultDir())
	def, err := lab.ResolveABI(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	other := ""
	for _, abi := range cached {
		if abi != def && lab.FlavorOf(abi) == lab.DefaultFlavor {
			other = abi
		}
	}
	if other == "" {
		needLab(t, "a second cached cloud kernel (the regression scenario prepares them)")
	}
	name := fmt.Sprintf("e2e-%d", os.Getpid())
	kcrash := func(args ...string) map[string]any {
		t.Helper()
		out, err := exec.Command(kcrashBin, append(args, "--json")...).Output()
		if err != nil {
			var stderr []byte
			if ee, ok := err.(*exec.ExitError); ok {
				stderr = ee.Stderr
			}
			t.Fatalf("kcrash %s: %v\n%s", strings.Join(args, " "), err, stderr)
		}
		var v map[string]any
		if err := json.Unmarshal(out, &v); err != nil {
			t.Fatalf("kcrash %s: %v: %s", strings.Join(args, " "), err, out)
		}
		return v
	}
	t.Cleanup(func() { exec.Command(kcrashBin, "lab", "target", "stop", name).Run() })
	st := kcrash("lab", "target", "start", name, "--args", "lab_load=netrace")
	if st["state"] != "running" || st["abi"] != def {
		t.Fatalf("after start: %v", st)
	}
	start := time.Now()
	load := kcrash("lab", "load", "--to", name, "--pps", "20000", "--seconds", "120")
	t.Logf("load: %v after %.1fs", load, time.Since(start).Seconds())
	if load["stopped"] != "target crashed" {
		t.Errorf("the flood ended %v, want target crashed", load["stopped"])
	}
	time.Sleep(time.Second)
	if st = kcrash("lab", "target", "status", name); st["state"] != "crashed" {
		t.Errorf("after the flood: %v, want crashed", st)
	}
	st = kcrash("lab", "target", "reboot", name, "--kernel", other)
	if st["state"] != "running" || st["abi"] != other || st["boots"] != float64(2) {
		t.Errorf("after reboot into %s: %v", other, st)
	}
	if st = kcrash("lab", "target", "stop", name); st["state"] != "stopped" {
		t.Errorf("after stop: %v", st)
	}
}
