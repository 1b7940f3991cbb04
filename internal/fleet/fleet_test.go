package fleet

import (
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kcrash/kcrash/internal/oops"
	"github.com/kcrash/kcrash/internal/store"
)

func TestCompareReleases(t *testing.T) {
	for _, c := range []struct {
		a, b string
		want int
	}{
		{"6.1.0-55-cloud-amd64", "6.1.0-56-cloud-amd64", -1},
		{"6.1.0-9-cloud-amd64", "6.1.0-55-cloud-amd64", -1},
		{"6.1.0-57-cloud-amd64", "6.1.0-57-cloud-amd64", 0},
		{"6.12.117+deb12-cloud-amd64", "6.1.0-57-cloud-amd64", 1},
		{"6.1", "6.1.0", -1},
		{"6.01", "6.1", 0},
	} {
		if got := CompareReleases(c.a, c.b); got != c.want {
			t.Errorf("CompareReleases(%q, %q) = %d, want %d", c.a, c.b, got, c.want)
		}
		if got := CompareReleases(c.b, c.a); got != -c.want {
			t.Errorf("CompareReleases(%q, %q) = %d, want %d", c.b, c.a, got, -c.want)
		}
	}
	if f := Flavour("6.1.0-56-cloud-amd64"); f != "cloud-amd64" {
		t.Errorf("Flavour = %q", f)
	}
}

func TestBitFlip(t *testing.T) {
	neighbours := map[string]uint64{"RBX": 0xffff8d9e0614a100, "RDI": 0xffff8d9e06269428}
	for _, c := range []struct {
		name   string
		addr   uint64
		regs   map[string]uint64
		ok     bool
		bit    int
		region string
		score  float64
	}{
		{"non-canonical, one bit from the direct map", 0xfff7888012345678, nil, true, 51, "direct-map", 0.5},
		{"non-canonical, one bit from kernel text", 0xfffbffff81234567, nil, true, 50, "kernel-text", 0.8},
		{"one bit from NULL+0x38", 0x0000000001000038, nil, true, 24, "null", 0.6},
		{"one bit from the registers' neighbourhood", 0xffff8f9e0485b9a0, neighbours, true, 41, "direct-map", 0.9},
		{"one bit from a register's object", 0xffff83b886176310, map[string]uint64{"RBX": 0xffff8bb886176310}, true, 43, "direct-map", 0.95},
		{"NULL+0x38 is a NULL dereference", 0x38, nil, false, 0, "", 0},
		{"LIST_POISON2 is software's marker", 0xdead000000000122, nil, false, 0, "", 0},
		{"among the registers' pointers", 0xffff8d9e07000000, neighbours, false, 0, "", 0},
		{"canonical, nothing to compare with", 0xffff8d9e07000000, nil, false, 0, "", 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			f, ok := BitFlip("CR2", c.addr, c.regs)
			if ok != c.ok {
				t.Fatalf("BitFlip(%#x) ok=%v (%v), want %v", c.addr, ok, f, c.ok)
			}
			if ok && (f.Bit != c.bit || f.Region != c.region || f.Score != c.score) {
				t.Errorf("BitFlip(%#x) = %v, want bit %d in %s scoring %.2f", c.addr, f, c.bit, c.region, c.score)
			}
		})
	}
}

// labReports reads a lab serial console capture as the collector would store it:
// each report with the 8 KiB of log before it.
func labReports(t testing.TB, host, file string) ([]Report, float64) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata/lab", file))
	if err != nil {
		t.Fatal(err)
	}
	var out []Report
	for _, p := range oops.Parse(b) {
		ctx := string(b[max(0, p.Start-8192):p.Start])
		r := FromOops(p, ctx)
		r.Host, r.Time = host, time.Unix(int64(len(out)), 0)
		out = append(out, r)
	}
	// The last console timestamp is how long the guest ran.
	ts := regexp.MustCompile(`(?m)^\[\s*(\d+\.\d+)\]`).FindAllSubmatch(b, -1)
	up := 0.0
	if len(ts) > 0 {
		up, _ = strconv.ParseFloat(string(ts[len(ts)-1][1]), 64)
	}
	return out, up / 3600
}

func TestLabFlips(t *testing.T) {
	for _, c := range []struct {
		file   string
		flip   bool
		bit    int
		wildIP bool
		hw     bool // hardware error lines before the crash
	}{
		{"bad-dimm-flip-1.serial", false, 0, false, true},
		{"bad-dimm-flip-2.serial", true, 41, false, true},
		{"bad-dimm-flip-3.serial", false, 0, false, true},
		{"bad-dimm-flip-4.serial", false, 0, true, true},
		{"bad-dimm-flip-5.serial", true, 43, false, true},
		{"host-2-run-1.serial", false, 0, false, false},
		{"host-3-run-2.serial", false, 0, false, false},
	} {
		rs, _ := labReports(t, "h", c.file)
		// The corrected machine checks before the crash are a report of their own.
		for len(rs) > 0 && rs[0].Kind == "mce" {
			rs = rs[1:]
		}
		if len(rs) == 0 {
			t.Fatalf("%s: no report", c.file)
		}
		r := rs[0]
		if (r.Flip != nil) != c.flip || (c.flip && r.Flip.Bit != c.bit) {
			t.Errorf("%s: flip %v, want %v bit %d", c.file, r.Flip, c.flip, c.bit)
		}
		if r.WildIP != c.wildIP {
			t.Errorf("%s: wild IP %v, want %v", c.file, r.WildIP, c.wildIP)
		}
		if (len(r.HWLines) > 0) != c.hw {
			t.Errorf("%s: hardware lines %q, want some: %v", c.file, r.HWLines, c.hw)
		}
	}
}

// labWatched is how long the regression scenario watched each run under load
// (its result.json's watched_s): a quiet guest prints nothing, so its console's
// last timestamp says little about its uptime.
var labWatched = map[string]float64{
	"host-1-run-1.serial": 60.001, "host-1-run-2.serial": 60.005,
	"host-2-run-1.serial": 11.008, "host-2-run-2.serial": 10.591,
	"host-3-run-1.serial": 5.876, "host-3-run-2.serial": 0.8,
	"healthy.serial": 60,
}

// labEngine is the crash lab's regression hosts (the race gated at
// 6.1.0-56-cloud-amd64) and hardware hosts (a bad DIMM and a healthy host) in one
// engine, from their real serial consoles.
func labEngine(t testing.TB) *Engine {
	e := New(Options{})
	for _, h := range []struct {
		id, release string
		files       []string
	}{
		{"host-1", "6.1.0-55-cloud-amd64", []string{"host-1-run-1.serial", "host-1-run-2.serial"}},
		{"host-2", "6.1.0-56-cloud-amd64", []string{"host-2-run-1.serial", "host-2-run-2.serial"}},
		{"host-3", "6.1.0-57-cloud-amd64", []string{"host-3-run-1.serial", "host-3-run-2.serial"}},
		{"bad-dimm", "6.1.0-57-amd64", []string{"bad-dimm-flip-1.serial", "bad-dimm-flip-2.serial", "bad-dimm-flip-3.serial",
			"bad-dimm-flip-4.serial", "bad-dimm-flip-5.serial", "bad-dimm-mce.serial"}},
		{"healthy", "6.1.0-57-amd64", []string{"healthy.serial"}},
	} {
		for _, f := range h.files {
			rs, up := labReports(t, h.id, f)
			if w, ok := labWatched[f]; ok {
				up = w / 3600
			}
			e.AddUptime(h.id, h.release, up)
			for _, r := range rs {
				if r.Release != h.release && r.Kind != "mce" {
					t.Fatalf("%s: release %q, want %q", f, r.Release, h.release)
				}
				e.Add(r)
			}
		}
	}
	return e
}

func TestLabVerdicts(t *testing.T) {
	e := labEngine(t)
	race, ok := e.Group(raceSig(t))
	if !ok {
		t.Fatal("no race group")
	}
	if race.Verdict.Class != Software {
		t.Errorf("race group: %+v, want software", race.Verdict)
	}
	if b := race.BisectRange; b == nil || b.Good != "6.1.0-55-cloud-amd64" || b.Bad != "6.1.0-56-cloud-amd64" {
		t.Errorf("race bisect range %+v, want 6.1.0-55 → 6.1.0-56", b)
	}
	if !hasSignal(race.Verdict, "starts-at-release") {
		t.Errorf("race verdict has no release gate: %+v", race.Verdict)
	}
	if h := e.Host("bad-dimm", ""); h.Verdict == nil || h.Verdict.Class != Hardware {
		t.Errorf("bad-dimm host: %+v, want hardware", h.Verdict)
	}
	for sig := range e.Host("bad-dimm", "").Signatures {
		if g, _ := e.Group(sig); g.Verdict.Class != Hardware {
			t.Errorf("bad-dimm group %s: %+v, want hardware", sig, g.Verdict)
		}
	}
	if h := e.Host("healthy", ""); h.Verdict != nil {
		t.Errorf("healthy host has a verdict: %+v", h.Verdict)
	}
	for _, id := range []string{"host-2", "host-3"} {
		if h := e.Host(id, ""); h.Verdict == nil || h.Verdict.Class != Software {
			t.Errorf("%s: %+v, want software", id, h.Verdict)
		}
	}
}

func raceSig(t testing.TB) string {
	rs, _ := labReports(t, "x", "host-2-run-1.serial")
	if len(rs) == 0 || !strings.Contains(rs[0].Title, "netrace_rcv") {
		t.Fatalf("host-2-run-1: %+v", rs)
	}
	return rs[0].Signature
}

func hasSignal(v Verdict, s string) bool {
	for _, e := range v.Evidence {
		if e.Signal == s {
			return true
		}
	}
	return false
}

// TestSpoofedHardwareLines: a host printing fake machine-check lines before crashes
// of a software bug moves its own verdict, and the group only by its own reports.
func TestSpoofedHardwareLines(t *testing.T) {
	e := labEngine(t)
	sig := raceSig(t)
	before, _ := e.Group(sig)
	rs, up := labReports(t, "spoofer", "host-3-run-1.serial")
	e.AddUptime("spoofer", "6.1.0-57-cloud-amd64", up)
	r := rs[0]
	r.HWLines = []string{"mce: [Hardware Error]: Machine check events logged", "EDAC MC0: 1 UE memory read error"}
	r.Taint = "M"
	e.Add(r)
	after, _ := e.Group(sig)
	if after.Verdict.Class != Software {
		t.Errorf("race group after one spoofed report: %+v (was %+v)", after.Verdict, before.Verdict)
	}
	for _, id := range []string{"host-2", "host-3", "bad-dimm"} {
		if e.HostClass(id) == "" {
			t.Errorf("%s lost its verdict", id)
		}
	}
	if c := e.HostClass("host-2"); c != Software {
		t.Errorf("host-2 became %s", c)
	}
}

func TestInventory(t *testing.T) {
	inv, err := ParseInventory(strings.NewReader("# fleet\n10.0.0.5 web-01 rack=r12 model=R640\n\n10.0.0.6:6665 web-02 # spare\nbuild-7 build-7 role=ci\n"))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ id, name, rack string }{
		{"10.0.0.5:6666", "web-01", "r12"}, {"10.0.0.6:6665", "web-02", ""}, {"build-7", "build-7", ""}, {"10.0.0.6:1", "", ""},
	} {
		e, ok := inv.Lookup(c.id)
		if ok != (c.name != "") || e.Name != c.name || e.Labels["rack"] != c.rack {
			t.Errorf("Lookup(%s) = %+v %v", c.id, e, ok)
		}
	}
	_, err = ParseInventory(strings.NewReader("10.0.0.5 web-01\nlonely\n10.0.0.7 web<3>\n10.0.0.8 ok rack\n10.0.0.5 again\n"))
	if err == nil {
		t.Fatal("bad inventory accepted")
	}
	for _, want := range []string{"line 2:", "line 3:", "line 4:", "line 5:"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %s", err, want)
		}
	}
	if strings.Contains(err.Error(), "line 1:") {
		t.Errorf("error %q blames a good line", err)
	}
}

func FuzzParseInventory(f *testing.F) {
	f.Add([]byte("10.0.0.5 web-01 rack=r12\n10.0.0.6:6665 web-02\n"))
	f.Add([]byte("::1 lo a=b\n# c\n\nx y z\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		inv, err := ParseInventory(strings.NewReader(string(b)))
		if err == nil {
			inv.Lookup("10.0.0.5:1")
		}
	})
}

func TestRateJumpAndEvents(t *testing.T) {
	e := New(Options{})
	t0 := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	r := Report{Host: "a", Signature: "s", Title: "WARNING in f", Kind: "warning", Site: "f+0x1", CPU: -1}
	var got []string
	// One a day for three days, then ten in an hour.
	for i := 0; i < 3; i++ {
		r.Time = t0.Add(time.Duration(i) * 24 * time.Hour)
		for _, ev := range e.Add(r) {
			got = append(got, ev.Type)
		}
	}
	for i := 0; i < 10; i++ {
		r.Time = t0.Add(72*time.Hour + time.Duration(i)*time.Minute)
		for _, ev := range e.Add(r) {
			got = append(got, ev.Type)
		}
	}
	if strings.Join(got, ",") != "new_signature,rate_jump" {
		t.Errorf("events %v, want new_signature then one rate_jump", got)
	}
}

func TestHostHours(t *testing.T) {
	if u := ConsoleUptime("[   12.500000] BUG: x\n"); u != 12.5 {
		t.Errorf("ConsoleUptime = %v", u)
	}
	if u := ConsoleUptime("<4>[ 3.25] WARNING: y"); u != 3.25 {
		t.Errorf("ConsoleUptime = %v", u)
	}
	if u := ConsoleUptime("BUG: no stamp [ 1.0]"); u != 0 {
		t.Errorf("ConsoleUptime = %v", u)
	}
	e := New(Options{})
	rel := "6.1.0-56-cloud-amd64"
	for _, up := range []float64{10, 20, 5} { // two reports of one boot, then a new boot
		e.Add(Report{Host: "h", Signature: "s", Release: rel, CPU: -1, Uptime: up})
	}
	if got := e.ReleaseHours()[rel] * 3600; math.Abs(got-25) > 1e-6 {
		t.Errorf("%.3f s counted from report uptimes, want 25", got)
	}
	// Observed uptime covering the same boots is not added to it: the larger counts.
	e.AddUptime("h", rel, 10.0/3600)
	if got := e.ReleaseHours()[rel] * 3600; math.Abs(got-25) > 1e-6 {
		t.Errorf("%.3f s after 10 s observed, want 25", got)
	}
	e.AddUptime("h", rel, 30.0/3600)
	if got := e.ReleaseHours()[rel] * 3600; math.Abs(got-40) > 1e-6 {
		t.Errorf("%.3f s after 40 s observed, want 40", got)
	}
}

// FuzzFromStore: a stored report's text and context are whatever a host sent; reading
// them never panics and keeps at most maxHWLines hardware lines.
func FuzzFromStore(f *testing.F) {
	b, _ := os.ReadFile("testdata/lab/bad-dimm-flip-2.serial")
	f.Add(string(b[len(b)/2:]), string(b[:len(b)/2]))
	f.Add("[ 1.0] general protection fault, probably for non-canonical address 0xfff7888012345678\nRAX: fff7888012345678\n", "mce: [Hardware Error]: x\nHostname set to <a>\n")
	f.Fuzz(func(t *testing.T, text, ctx string) {
		r := FromStore(&store.Report{Text: text, Context: ctx, Host: "h", Signature: "s"})
		if len(r.HWLines) > maxHWLines {
			t.Fatalf("%d hardware lines", len(r.HWLines))
		}
		New(Options{}).Add(r)
	})
}
