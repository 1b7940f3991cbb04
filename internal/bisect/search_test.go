package bisect

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"hash/fnv"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"testing"
	"time"
)

func names(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = "v" + strconv.Itoa(i)
	}
	return out
}

// world is a deterministic fake range: whether a test crashes depends only on the
// step number, the candidate and the seed, so a search killed and resumed sees
// the same answers as one that ran through.
type world struct {
	bad        func(i int) bool
	rate       float64
	seed       uint64
	untestable map[int]bool
	calls      int
}

func (w *world) predicate(st *State) Predicate {
	return func(ctx context.Context, t Test) (Observation, error) {
		w.calls++
		if w.untestable[t.Candidate] {
			return Observation{Outcome: Untestable, Note: "does not boot"}, nil
		}
		if w.bad(t.Candidate) {
			h := fnv.New64a()
			h.Write([]byte(strconv.Itoa(len(st.Steps)) + "/" + strconv.Itoa(t.Candidate) + "/" + strconv.FormatUint(w.seed, 10)))
			u := (float64(h.Sum64()>>11) + 0.5) / (1 << 53)
			if tc := -math.Log(u) / w.rate; tc < t.Seconds {
				return Observation{Outcome: Crash, Seconds: tc, Signature: "sig"}, nil
			}
		}
		return Observation{Outcome: Survived, Seconds: t.Seconds}, nil
	}
}

func newTestState(t *testing.T, n int, firstGood bool) *State {
	t.Helper()
	st, err := NewState(Config{Candidates: names(n), FirstIsGood: firstGood, MinTest: 1, MaxTest: 600, Overhead: 30, Verify: true})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func TestSearchVerdicts(t *testing.T) {
	cases := []struct {
		name       string
		n          int
		bad        func(int) bool
		untestable map[int]bool
		status     string
		culprit    int
	}{
		{"culprit", 12, func(i int) bool { return i >= 7 }, nil, VerdictCulprit, 7},
		{"culprit right after the good end", 12, func(i int) bool { return i >= 1 }, nil, VerdictCulprit, 1},
		{"culprit is the bad end", 12, func(i int) bool { return i >= 11 }, nil, VerdictCulprit, 11},
		{"the good end crashes", 8, func(i int) bool { return true }, nil, VerdictGoodEndBad, 0},
		{"nothing crashes", 8, func(i int) bool { return false }, nil, VerdictNoCulprit, -1},
		{"nothing boots", 5, func(i int) bool { return i >= 3 }, map[int]bool{0: true, 1: true, 2: true, 3: true, 4: true}, VerdictNoneBoots, -1},
		// 5 and 6 do not boot: the first bad is 5, 6 or 7 and nothing can tell.
		{"untestable culprit", 12, func(i int) bool { return i >= 5 }, map[int]bool{5: true, 6: true}, VerdictAmbiguous, -2},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			st := newTestState(t, c.n, true)
			w := &world{bad: c.bad, rate: 1.0 / 40, seed: 3, untestable: c.untestable}
			v, err := Run(context.Background(), st, w.predicate(st), Hooks{})
			if err != nil {
				t.Fatal(err)
			}
			if v.Status != c.status || (c.culprit != -2 && v.Culprit != c.culprit) {
				t.Fatalf("verdict %+v after %d steps, want %s %d", v, len(st.Steps), c.status, c.culprit)
			}
			if v.Status == VerdictAmbiguous && (v.Culprit < 5 || v.Culprit > 7) {
				t.Fatalf("ambiguous verdict names %d, not one of 5..7", v.Culprit)
			}
			if v.Status == VerdictCulprit && v.Confidence < st.Config.Confidence {
				t.Fatalf("confidence %v", v.Confidence)
			}
		})
	}
}

// A search killed at any point (the state saved before and after each test) and
// resumed from its file ends with the same steps as one that ran through.
func TestResumeExactly(t *testing.T) {
	bad := func(i int) bool { return i >= 9 }
	ref := newTestState(t, 16, true)
	w := &world{bad: bad, rate: 1.0 / 30, seed: 7}
	if _, err := Run(context.Background(), ref, w.predicate(ref), Hooks{}); err != nil {
		t.Fatal(err)
	}
	if ref.Verdict == nil || ref.Verdict.Culprit != 9 {
		t.Fatalf("reference verdict %+v", ref.Verdict)
	}
	saves := 2*len(ref.Steps) + 1
	errKill := errors.New("killed")
	path := filepath.Join(t.TempDir(), "state.json")
	for kill := 1; kill < saves; kill++ {
		st := newTestState(t, 16, true)
		st.Started, st.Updated = ref.Started, ref.Updated
		os.Remove(path)
		n := 0
		save := func(st *State) error {
			n++
			if err := st.Save(path); err != nil {
				return err
			}
			if n == kill {
				return errKill
			}
			return nil
		}
		w := &world{bad: bad, rate: 1.0 / 30, seed: 7}
		if _, err := Run(context.Background(), st, w.predicate(st), Hooks{Save: save}); !errors.Is(err, errKill) {
			t.Fatalf("kill at save %d: %v", kill, err)
		}
		back, err := LoadState(path)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Run(context.Background(), back, w.predicate(back), Hooks{Save: func(st *State) error { return st.Save(path) }}); err != nil {
			t.Fatal(err)
		}
		if !sameSteps(back.Steps, ref.Steps) || !reflect.DeepEqual(back.Verdict, ref.Verdict) {
			t.Fatalf("killed at save %d: resumed run differs:\n%+v\n%+v", kill, back.Verdict, ref.Verdict)
		}
	}
}

func sameSteps(a, b []Step) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		x, y := a[i], b[i]
		x.Start, y.Start = time.Time{}, time.Time{}
		if x != y {
			return false
		}
	}
	return true
}

func TestStateRefused(t *testing.T) {
	st := newTestState(t, 6, true)
	w := &world{bad: func(i int) bool { return i >= 3 }, rate: 0.1, seed: 1}
	if _, err := Run(context.Background(), st, w.predicate(st), Hooks{}); err != nil {
		t.Fatal(err)
	}
	good, _ := json.Marshal(st)
	mutate := func(f func(m map[string]any)) []byte {
		var m map[string]any
		json.Unmarshal(good, &m)
		f(m)
		b, _ := json.Marshal(m)
		return b
	}
	cases := map[string][]byte{
		"truncated":            good[:len(good)/2],
		"not json":             []byte("hello"),
		"another bisection":    mutate(func(m map[string]any) { m["config"].(map[string]any)["candidates"].([]any)[2] = "other" }),
		"step out of range":    mutate(func(m map[string]any) { m["steps"].([]any)[0].(map[string]any)["candidate"] = 99 }),
		"unknown outcome":      mutate(func(m map[string]any) { m["steps"].([]any)[0].(map[string]any)["outcome"] = "maybe" }),
		"negative time":        mutate(func(m map[string]any) { m["steps"].([]any)[0].(map[string]any)["watched_s"] = -1 }),
		"steps renumbered":     mutate(func(m map[string]any) { m["steps"].([]any)[0].(map[string]any)["n"] = 5 }),
		"unknown field":        mutate(func(m map[string]any) { m["extra"] = 1 }),
		"confidence 1":         mutate(func(m map[string]any) { m["config"].(map[string]any)["confidence"] = 1 }),
		"version":              mutate(func(m map[string]any) { m["version"] = 2 }),
		"two states in a file": append(append([]byte{}, good...), good...),
	}
	if _, err := ReadState(bytes.NewReader(good)); err != nil {
		t.Fatalf("the good state is refused: %v", err)
	}
	for name, data := range cases {
		if _, err := ReadState(bytes.NewReader(data)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func FuzzReadState(f *testing.F) {
	st, _ := NewState(Config{Candidates: names(4), FirstIsGood: true, RunLength: 10, Verify: true})
	s, _ := NewSearch(st)
	s.Record(Test{Candidate: 3, Seconds: 10, Phase: PhaseSearch}, Observation{Outcome: Crash, Seconds: 4}, st.Started)
	s.Record(Test{Candidate: 1, Seconds: 10, Phase: PhaseSearch}, Observation{Outcome: Survived, Seconds: 10}, st.Started)
	st.Pending = &Pending{Test: Test{Candidate: 2, Seconds: 10, Phase: PhaseSearch}}
	data, _ := json.Marshal(st)
	f.Add(data)
	f.Add([]byte(`{"version":1}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		st, err := ReadState(bytes.NewReader(data))
		if err != nil {
			return
		}
		// An accepted state must be usable: the search rebuilds and decides.
		s, err := NewSearch(st)
		if err != nil {
			t.Fatalf("accepted state has a bad config: %v", err)
		}
		if len(st.Config.Candidates) <= 64 && len(st.Steps) <= 64 {
			s.Next()
			Summarize(st)
			st.Result()
		}
	})
}

// Two quick crashes say the rate is high, so survivals of the candidates before
// them count for much under the posterior; the culprit verdict must also hold at
// the rate's lower bound, so the search goes on where the posterior alone would
// stop, and stops once the rate and the predecessor are known well enough.
func TestLowRateBoundHoldsVerdict(t *testing.T) {
	st, err := NewState(Config{Candidates: names(3), RunLength: 60, Verify: true})
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewSearch(st)
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range []struct {
		i       int
		outcome string
		secs    float64
	}{{2, Crash, 2}, {1, Crash, 1}, {0, Survived, 60}, {0, Survived, 30}} {
		s.Record(Test{Candidate: o.i, Seconds: 60, Phase: PhaseSearch}, Observation{Outcome: o.outcome, Seconds: o.secs}, time.Time{})
	}
	k, pk := Top(s.Probs())
	low := s.lowRateConfidence(k, pk)
	if k != 1 || pk < st.Config.Confidence || low >= st.Config.Confidence {
		t.Fatalf("top %d at %.4f, %.4f at the low rate: want 1 above %v and the low rate below", k, pk, low, st.Config.Confidence)
	}
	test, v := s.Next()
	if v != nil {
		t.Fatalf("verdict %+v at the low rate's %.4f", v, low)
	}
	for v == nil { // candidates 1 and 2 crash after 50 s, 0 survives
		o := Observation{Outcome: Survived, Seconds: test.Seconds}
		if test.Candidate > 0 {
			o = Observation{Outcome: Crash, Seconds: 50}
		}
		s.Record(test, o, time.Time{})
		if test, v = s.Next(); v == nil && len(st.Steps) > 40 {
			t.Fatalf("no verdict after %d steps", len(st.Steps))
		}
	}
	if v.Status != VerdictCulprit || v.Culprit != 1 || v.Confidence < st.Config.Confidence {
		t.Fatalf("verdict %+v", v)
	}
	if _, pk := Top(s.Probs()); v.Confidence > pk {
		t.Fatalf("stated %v, more than the posterior %v", v.Confidence, pk)
	}
}
