package bisect

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"time"
)

// Config is what a bisection searches and how; it is fixed when the bisection
// starts and kept in its state.
type Config struct {
	// Candidates are the versions or commits in order, oldest first.
	Candidates []string `json:"candidates"`
	// FirstIsGood says Candidates[0] is the good end (presumed good; EndDoubt is
	// the prior weight of it being bad). The last candidate is the bad end; "no
	// culprit" also has prior weight EndDoubt. Every other candidate weighs 1.
	FirstIsGood bool    `json:"first_is_good"`
	EndDoubt    float64 `json:"end_doubt"`
	// Kind is "versions" or "git".
	Kind string `json:"kind,omitempty"`
	// Confidence is the posterior the top candidate must reach.
	Confidence float64 `json:"confidence"`
	// PriorShape and PriorRate are the Gamma prior of the crash rate λ (per second).
	PriorShape float64 `json:"prior_shape"`
	PriorRate  float64 `json:"prior_rate_s"`
	// RunLength fixes every test's length (seconds); 0 chooses it per test within
	// [MinTest, MaxTest], counting Overhead seconds per test (install, boot).
	RunLength float64 `json:"run_length_s,omitempty"`
	MinTest   float64 `json:"min_test_s,omitempty"`
	MaxTest   float64 `json:"max_test_s,omitempty"`
	Overhead  float64 `json:"overhead_s,omitempty"`
	MaxSteps  int     `json:"max_steps"`
	// Verify checks the culprit before the verdict: it crashed, and its
	// predecessor survived a soak since it became the top candidate.
	Verify bool `json:"verify"`
	// Settings are kcrash bisect's hooks and watcher (kept so --resume needs no
	// flags).
	Settings map[string]string `json:"settings,omitempty"`
}

// Defaults fills the unset fields.
func (c *Config) Defaults() {
	if c.Confidence == 0 {
		c.Confidence = defaultConfidence
	}
	if c.EndDoubt == 0 {
		c.EndDoubt = defaultEndDoubt
	}
	if c.MaxSteps == 0 {
		c.MaxSteps = defaultMaxSteps
	}
	if c.PriorShape == 0 {
		c.PriorShape = defaultShape
		ref := c.RunLength
		if ref <= 0 {
			ref = c.MaxTest / 4
		}
		c.PriorRate = defaultShape * ref // a prior mean time to crash of one run, or a quarter of the longest test
	}
	if c.RunLength <= 0 && c.MinTest <= 0 {
		c.MinTest = math.Min(1, c.MaxTest)
	}
}

func (c *Config) check() error {
	pos := func(v float64) bool { return v > 0 && !math.IsInf(v, 0) }
	nonneg := func(v float64) bool { return v >= 0 && !math.IsInf(v, 0) }
	switch {
	case len(c.Candidates) < 1:
		return errors.New("no candidates")
	case len(c.Candidates) > maxCandidates:
		return fmt.Errorf("%d candidates (at most %d)", len(c.Candidates), maxCandidates)
	case c.FirstIsGood && len(c.Candidates) < 2:
		return errors.New("a good end and no other candidate")
	case !(c.Confidence > 0 && c.Confidence < 1):
		return fmt.Errorf("confidence %v is not between 0 and 1", c.Confidence)
	case !pos(c.EndDoubt) || !pos(c.PriorShape) || !pos(c.PriorRate):
		return fmt.Errorf("end doubt %v, prior %v/%v: want positive numbers", c.EndDoubt, c.PriorShape, c.PriorRate)
	case !nonneg(c.RunLength) || !nonneg(c.MinTest) || !nonneg(c.MaxTest) || !nonneg(c.Overhead):
		return errors.New("test lengths must be finite and not negative")
	case c.RunLength == 0 && !(c.MinTest > 0 && c.MaxTest >= c.MinTest):
		return fmt.Errorf("test lengths %v..%v: want 0 < min ≤ max", c.MinTest, c.MaxTest)
	case c.MaxSteps <= 0 || c.MaxSteps > maxSteps:
		return fmt.Errorf("max steps %d", c.MaxSteps)
	}
	seen := map[string]bool{}
	for _, v := range c.Candidates {
		if v == "" || len(v) > 256 || seen[v] {
			return fmt.Errorf("candidate %q is empty, too long or repeated", v)
		}
		seen[v] = true
	}
	return nil
}

// ID identifies a bisection by what it searches: its candidates and ends. A
// state file of another ID is another bisection's.
func (c *Config) ID() string {
	h := sha256.New()
	fmt.Fprintf(h, "kind %q good %v\n", c.Kind, c.FirstIsGood)
	for _, v := range c.Candidates {
		fmt.Fprintf(h, "%q\n", v)
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// Step is one test and its observation.
type Step struct {
	N         int       `json:"n"`
	Candidate int       `json:"candidate"`
	Version   string    `json:"version"`
	Phase     string    `json:"phase"`
	Asked     float64   `json:"asked_s"`
	Watched   float64   `json:"watched_s"`
	Outcome   string    `json:"outcome"`
	Signature string    `json:"signature,omitempty"`
	Title     string    `json:"title,omitempty"`
	Report    int64     `json:"report,omitempty"`
	Note      string    `json:"note,omitempty"`
	Start     time.Time `json:"start"`
	// Top and TopP are the most likely first bad candidate after the step (index
	// len(Candidates): no culprit) and its posterior.
	Top  int     `json:"top"`
	TopP float64 `json:"top_p"`
}

// Pending is the test in progress: a controller killed during it runs it again.
type Pending struct {
	Test  Test      `json:"test"`
	Start time.Time `json:"start"`
}

// VerifyState is the verification of a culprit.
type VerifyState struct {
	Culprit int  `json:"culprit"`
	Soaked  bool `json:"soaked"` // its predecessor was soaked
}

// State is a bisection's state file: written before and after every test.
type State struct {
	Version int    `json:"version"`
	ID      string `json:"id"`
	Config  Config `json:"config"`
	// Target is the signature of the crash searched for ("" until the first
	// crash when none was given; "*": any crash).
	Target   string       `json:"target,omitempty"`
	Steps    []Step       `json:"steps"`
	Pending  *Pending     `json:"pending,omitempty"`
	Verify   *VerifyState `json:"verify,omitempty"`
	Verdict  *Verdict     `json:"verdict,omitempty"`
	Started  time.Time    `json:"started"`
	Updated  time.Time    `json:"updated"`
	Campaign int64        `json:"campaign,omitempty"` // its id in the crash database
}

// StateVersion is the state file's format version.
const StateVersion = 1

// Bounds of a state file.
const (
	maxState      = 16 << 20
	maxCandidates = 1 << 16
	maxSteps      = 100000
)

// NewState starts a bisection.
func NewState(c Config) (*State, error) {
	c.Defaults()
	if err := c.check(); err != nil {
		return nil, err
	}
	now := time.Now()
	return &State{Version: StateVersion, ID: c.ID(), Config: c, Steps: []Step{}, Started: now, Updated: now}, nil
}

// ReadState reads and checks a state file's contents: a file that does not hold
// a consistent bisection is refused.
func ReadState(r io.Reader) (*State, error) {
	data, err := io.ReadAll(io.LimitReader(r, maxState+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxState {
		return nil, fmt.Errorf("larger than %d bytes", maxState)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var st State
	if err := dec.Decode(&st); err != nil {
		return nil, err
	}
	if dec.More() {
		return nil, errors.New("data after the state")
	}
	if err := st.check(); err != nil {
		return nil, err
	}
	return &st, nil
}

func (st *State) check() error {
	if st.Version != StateVersion {
		return fmt.Errorf("version %d, want %d", st.Version, StateVersion)
	}
	if err := st.Config.check(); err != nil {
		return err
	}
	if st.ID != st.Config.ID() {
		return fmt.Errorf("id %q does not match its candidates (%s)", st.ID, st.Config.ID())
	}
	n := len(st.Config.Candidates)
	if len(st.Target) > 4096 || len(st.Config.Settings) > 64 {
		return errors.New("target or settings too long")
	}
	for k, v := range st.Config.Settings {
		if len(k) > 64 || len(v) > 4096 {
			return fmt.Errorf("setting %.64q too long", k)
		}
	}
	if len(st.Steps) > maxSteps {
		return fmt.Errorf("%d steps", len(st.Steps))
	}
	okTest := func(i int, secs float64) bool {
		return i >= 0 && i < n && secs >= 0 && !math.IsInf(secs, 0)
	}
	for j, s := range st.Steps {
		switch {
		case s.N != j+1:
			return fmt.Errorf("step %d is numbered %d", j+1, s.N)
		case !okTest(s.Candidate, s.Watched) || !okTest(s.Candidate, s.Asked):
			return fmt.Errorf("step %d: candidate %d, %v s", s.N, s.Candidate, s.Watched)
		case s.Version != st.Config.Candidates[s.Candidate]:
			return fmt.Errorf("step %d: version %q is not candidate %d", s.N, s.Version, s.Candidate)
		case s.Outcome != Crash && s.Outcome != Survived && s.Outcome != Other && s.Outcome != Untestable:
			return fmt.Errorf("step %d: outcome %q", s.N, s.Outcome)
		case s.Phase != PhaseSearch && s.Phase != PhaseVerify:
			return fmt.Errorf("step %d: phase %q", s.N, s.Phase)
		case s.Top < 0 || s.Top > n || !(s.TopP >= 0 && s.TopP <= 1):
			return fmt.Errorf("step %d: top %d (%v)", s.N, s.Top, s.TopP)
		}
	}
	if p := st.Pending; p != nil && (!okTest(p.Test.Candidate, p.Test.Seconds) || (p.Test.Phase != PhaseSearch && p.Test.Phase != PhaseVerify)) {
		return fmt.Errorf("pending test of candidate %d for %v s", p.Test.Candidate, p.Test.Seconds)
	}
	if v := st.Verify; v != nil && (v.Culprit < 0 || v.Culprit >= n) {
		return fmt.Errorf("verifying candidate %d", v.Culprit)
	}
	if v := st.Verdict; v != nil && (v.Culprit < -1 || v.Culprit >= n || !(v.Confidence >= 0 && v.Confidence <= 1) || v.Status == "") {
		return fmt.Errorf("verdict %q of candidate %d (%v)", v.Status, v.Culprit, v.Confidence)
	}
	if st.Campaign < 0 {
		return fmt.Errorf("campaign %d", st.Campaign)
	}
	return nil
}

// ErrCorrupt marks a state file that cannot be read back.
var ErrCorrupt = errors.New("corrupted or not a bisection state")

// LoadState reads a state file.
func LoadState(path string) (*State, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := ReadState(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w: %v", path, ErrCorrupt, err)
	}
	return st, nil
}

// Save writes the state file atomically (a temporary file renamed over it), the
// previous version kept as PATH.prev.
func (st *State) Save(path string) error {
	data, err := json.MarshalIndent(st, "", " ")
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".bisect-*")
	if err != nil {
		return err
	}
	_, werr := tmp.Write(append(data, '\n'))
	serr := tmp.Sync()
	cerr := tmp.Close()
	if err := errors.Join(werr, serr, cerr); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	if _, err := os.Stat(path); err == nil {
		os.Remove(path + ".prev")
		if err := os.Link(path, path+".prev"); err != nil {
			os.Remove(tmp.Name())
			return err
		}
	}
	return os.Rename(tmp.Name(), path)
}
