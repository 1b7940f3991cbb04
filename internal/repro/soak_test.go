package repro

import (
	"bytes"
	"context"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func newState(required float64) *SoakState {
	return &SoakState{Version: StateVersion, Host: "h", MTTC: required / 3, Rate: 3 / required, Confidence: 0.95, Required: required, Verdict: VerdictIncomplete}
}

func TestSoak(t *testing.T) {
	for _, tc := range []struct {
		name       string
		script     []step
		match      Matcher
		maxSilence time.Duration
		during     func(h *fakeHost) // runs 30 ms into the soak
		verdict    string
		err        string
		gap        string
	}{
		{name: "clean", verdict: VerdictFixed},
		{name: "the crash", script: []step{{after: 30 * ms, sig: "v1:aa", panicked: true}}, match: Matcher{Signature: "v1:aa"}, verdict: VerdictNotFixed},
		{name: "a warning of another bug", script: []step{{after: 30 * ms, sig: "v1:bb"}}, match: Matcher{Signature: "v1:aa"}, verdict: VerdictFixed},
		{name: "another bug's panic", script: []step{{after: 30 * ms, sig: "v1:bb", panicked: true}}, match: Matcher{Signature: "v1:aa"},
			verdict: VerdictIncomplete, err: "crashed of another bug", gap: "another bug"},
		{name: "load fails", script: []step{{after: 30 * ms, loadErr: errors.New("boom")}}, verdict: VerdictIncomplete, err: "load failed: boom"},
		{name: "load does not start", script: []step{{startErr: errors.New("boom")}}, verdict: VerdictIncomplete, err: "load did not start: boom"},
		{name: "collector goes away", during: func(h *fakeHost) { h.setDown(true) }, verdict: VerdictIncomplete, err: "collector unreachable", gap: "did not answer"},
		{name: "collector blinks", during: func(h *fakeHost) { h.setDown(true); time.Sleep(40 * ms); h.setDown(false) },
			verdict: VerdictFixed, gap: "did not answer"},
		{name: "silent host", maxSilence: 20 * ms, verdict: VerdictFixed, gap: "no netconsole line"},
		{name: "silent reboot", during: func(h *fakeHost) { h.mu.Lock(); h.lastBoot = time.Now(); h.mu.Unlock() },
			verdict: VerdictFixed, gap: "rebooted without a report"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := &fakeHost{script: tc.script}
			st := newState(0.2)
			stop := make(chan struct{})
			defer close(stop)
			go func() {
				tick := time.NewTicker(10 * ms)
				defer tick.Stop()
				started := time.Now()
				for {
					select {
					case <-stop:
						return
					case now := <-tick.C:
						if tc.maxSilence == 0 || now.Sub(started) < 60*ms || now.Sub(started) > 120*ms {
							h.heard()
						}
						if tc.during != nil && now.Sub(started) >= 30*ms {
							tc.during(h)
							tc.during = nil
						}
					}
				}
			}()
			m := tc.match
			saves := 0
			s := &Soak{Load: h, Watch: h, Match: &m, State: st, MaxSilence: tc.maxSilence, Poll: 5 * ms, Unreachable: 500 * ms, Step: 20 * ms,
				Save: func(*SoakState) error { saves++; return nil }}
			got, err := s.Execute(context.Background())
			if tc.err == "" && err != nil || tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
				t.Fatalf("err %v, want %q", err, tc.err)
			}
			if got.Verdict != tc.verdict || saves < 2 {
				t.Errorf("verdict %q (%d saves), want %q", got.Verdict, saves, tc.verdict)
			}
			if got.Verdict == VerdictFixed && got.Watched < got.Required {
				t.Errorf("fixed after %g of %g s", got.Watched, got.Required)
			}
			var reasons []string
			for _, g := range got.Gaps {
				reasons = append(reasons, g.Reason)
			}
			if tc.gap == "" && len(reasons) > 0 || tc.gap != "" && !strings.Contains(strings.Join(reasons, "|"), tc.gap) {
				t.Errorf("gaps %q, want %q", reasons, tc.gap)
			}
			if tc.gap != "" && got.Voided <= 0 {
				t.Errorf("a gap voided nothing")
			}
			res := got.Result()
			if res.Crashed != (got.Verdict == VerdictNotFixed) || got.Verdict == VerdictFixed && (float64(res.Confidence) < 0.95 || float64(res.Reduction) < 1) {
				t.Errorf("result %+v", res)
			}
		})
	}
}

// TestSoakResume: a soak stopped half-way continues from its state file.
func TestSoakResume(t *testing.T) {
	path := filepath.Join(t.TempDir(), "soak.json")
	st := newState(1)
	h := &fakeHost{}
	ctx, cancel := context.WithTimeout(context.Background(), 600*ms)
	s := &Soak{Load: h, Watch: h, State: st, Poll: 5 * ms, Save: func(st *SoakState) error { return st.Save(path) }}
	if _, err := s.Execute(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err %v", err)
	}
	cancel()
	back, err := LoadState(path)
	if err != nil || back == nil || back.Verdict != VerdictIncomplete || back.Watched < 0.3 || back.Watched > 0.7 {
		t.Fatalf("state %+v, %v", back, err)
	}
	start := time.Now()
	s = &Soak{Load: h, Watch: h, State: back, Poll: 5 * ms, Save: func(st *SoakState) error { return st.Save(path) }}
	got, err := s.Execute(context.Background())
	if err != nil || got.Verdict != VerdictFixed {
		t.Fatalf("resumed: %+v, %v", got, err)
	}
	if d := time.Since(start); d > 900*ms {
		t.Errorf("the resumed soak took %s, as if from the start", d)
	}
}

func TestReadState(t *testing.T) {
	good := newState(100)
	var b bytes.Buffer
	path := filepath.Join(t.TempDir(), "s.json")
	if err := good.Save(path); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(path)
	b.Write(data)
	if _, err := ReadState(&b); err != nil {
		t.Fatalf("good state: %v", err)
	}
	if st, err := LoadState(filepath.Join(t.TempDir(), "none")); st != nil || err != nil {
		t.Errorf("missing file: %v %v", st, err)
	}
	for _, tc := range []struct{ name, in, err string }{
		{"empty", "", "EOF"},
		{"not JSON", "soak", "invalid"},
		{"old version", `{"version":0,"host":"h","confidence":0.9,"required_s":1,"verdict":"fixed"}`, "version 0"},
		{"no host", `{"version":1,"confidence":0.9,"required_s":1,"verdict":"fixed"}`, "no host"},
		{"confidence 1", `{"version":1,"host":"h","confidence":1,"required_s":1,"verdict":"fixed"}`, "confidence"},
		{"bad verdict", `{"version":1,"host":"h","confidence":0.9,"required_s":1,"verdict":"maybe"}`, "verdict"},
		{"negative", `{"version":1,"host":"h","confidence":0.9,"required_s":1,"watched_s":-1,"verdict":"fixed"}`, "watched_s"},
		{"no requirement", `{"version":1,"host":"h","confidence":0.9,"verdict":"fixed"}`, "required_s is 0"},
		{"not fixed without crash", `{"version":1,"host":"h","confidence":0.9,"required_s":1,"verdict":"not fixed"}`, "without a crash"},
		{"unknown field", `{"version":1,"host":"h","confidence":0.9,"required_s":1,"verdict":"fixed","x":1}`, "unknown field"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := ReadState(strings.NewReader(tc.in)); err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("err %v, want %q", err, tc.err)
			}
		})
	}
}

// FuzzReadState: the state reader never panics, and what it accepts is sane and
// survives a write and a read.
func FuzzReadState(f *testing.F) {
	f.Add(`{"version":1,"host":"h","mttc_s":60,"rate_per_s":0.02,"confidence":0.99,"required_s":276,"watched_s":10,"verdict":"incomplete"}`)
	f.Add(`{"version":1,"host":"h","confidence":0.5,"required_s":1,"verdict":"not fixed","crash":{"id":3,"signature":"v1:aa"},"gaps":[{"reason":"x"}]}`)
	f.Add(`{"version":1,"host":"h","confidence":0.5,"required_s":1e308,"watched_s":1e308,"verdict":"fixed"}`)
	f.Fuzz(func(t *testing.T, in string) {
		st, err := ReadState(strings.NewReader(in))
		if err != nil {
			return
		}
		if st.Host == "" || math.IsNaN(st.Watched) || st.Required <= 0 || !(st.Confidence > 0 && st.Confidence < 1) {
			t.Fatalf("accepted %+v", st)
		}
		path := filepath.Join(t.TempDir(), "s.json")
		if err := st.Save(path); err != nil {
			t.Fatal(err)
		}
		if _, err := LoadState(path); err != nil {
			t.Fatalf("saved state does not read back: %v", err)
		}
		_ = st.Result()
	})
}
