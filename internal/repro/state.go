package repro

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"time"
)

// Verdicts of a soak.
const (
	VerdictFixed      = "fixed"
	VerdictNotFixed   = "not fixed"
	VerdictIncomplete = "incomplete"
)

// SoakState is a soak's state file: written after every step, so a controller
// that restarts continues the soak where it stopped.
type SoakState struct {
	Version   int    `json:"version"`
	Host      string `json:"host"`
	Signature string `json:"signature,omitempty"`
	Any       bool   `json:"any,omitempty"`
	// MTTC is the pessimistic mean time to crash the soak is sized on (seconds);
	// Rate the rate the reduction is stated against (per second).
	MTTC       float64 `json:"mttc_s"`
	Rate       float64 `json:"rate_per_s"`
	Confidence float64 `json:"confidence"`
	Required   float64 `json:"required_s"`
	// Watched is the clean time watched so far; Voided the time not counted (the
	// collector not answering, the host silent or rebooting) with each Gap.
	Watched float64   `json:"watched_s"`
	Voided  float64   `json:"voided_s"`
	Gaps    []Gap     `json:"gaps,omitempty"`
	Crash   *Crash    `json:"crash,omitempty"`
	Others  []Crash   `json:"others,omitempty"`
	Verdict string    `json:"verdict"`
	Started time.Time `json:"started"`
	Updated time.Time `json:"updated"`
	// Campaign is the soak's id in the crash database (0: not recorded).
	Campaign int64 `json:"campaign,omitempty"`
}

// Gap is a stretch of a soak that was not watched and does not count.
type Gap struct {
	From   time.Time `json:"from"`
	To     time.Time `json:"to"`
	Reason string    `json:"reason"`
}

// StateVersion is the state file's format version.
const StateVersion = 1

// maxState bounds a state file.
const maxState = 4 << 20

// maxGaps bounds the gaps kept (the voided time still counts them all).
const maxGaps = 1000

// ReadState reads and checks a soak state file's contents.
func ReadState(r io.Reader) (*SoakState, error) {
	data, err := io.ReadAll(io.LimitReader(r, maxState+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxState {
		return nil, fmt.Errorf("soak state: larger than %d bytes", maxState)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var st SoakState
	if err := dec.Decode(&st); err != nil {
		return nil, fmt.Errorf("soak state: %w", err)
	}
	if err := st.check(); err != nil {
		return nil, fmt.Errorf("soak state: %w", err)
	}
	return &st, nil
}

func (st *SoakState) check() error {
	finite := func(name string, v float64) error {
		if math.IsNaN(v) || math.IsInf(v, 0) || v < 0 {
			return fmt.Errorf("%s %v is not a finite non-negative number", name, v)
		}
		return nil
	}
	switch {
	case st.Version != StateVersion:
		return fmt.Errorf("version %d, want %d", st.Version, StateVersion)
	case st.Host == "":
		return errors.New("no host")
	case !(st.Confidence > 0 && st.Confidence < 1):
		return fmt.Errorf("confidence %v is not between 0 and 1", st.Confidence)
	case st.Verdict != VerdictFixed && st.Verdict != VerdictNotFixed && st.Verdict != VerdictIncomplete:
		return fmt.Errorf("verdict %q", st.Verdict)
	case len(st.Gaps) > maxGaps:
		return fmt.Errorf("%d gaps", len(st.Gaps))
	case st.Verdict == VerdictNotFixed && st.Crash == nil:
		return errors.New("not fixed without a crash")
	case st.Campaign < 0:
		return fmt.Errorf("campaign %d", st.Campaign)
	}
	for _, f := range []struct {
		name string
		v    float64
	}{{"mttc_s", st.MTTC}, {"rate_per_s", st.Rate}, {"required_s", st.Required}, {"watched_s", st.Watched}, {"voided_s", st.Voided}} {
		if err := finite(f.name, f.v); err != nil {
			return err
		}
	}
	if st.Required <= 0 {
		return errors.New("required_s is 0")
	}
	return nil
}

// LoadState reads a state file; a missing file is (nil, nil).
func LoadState(path string) (*SoakState, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := ReadState(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return st, nil
}

// Save writes the state file atomically (a temporary file renamed over it).
func (st *SoakState) Save(path string) error {
	data, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".soak-*")
	if err != nil {
		return err
	}
	_, werr := tmp.Write(append(data, '\n'))
	cerr := tmp.Close()
	if err := errors.Join(werr, cerr); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// SoakResult is `kcrash soak --json`: the contract is exactly these keys.
type SoakResult struct {
	Required   Num    `json:"required_s"`
	Watched    Num    `json:"watched_s"`
	Crashed    bool   `json:"crashed"`
	Verdict    string `json:"verdict"`
	Confidence Num    `json:"confidence"`
	// Reduction is the least factor the rate dropped by if the bug is still there (95%).
	Reduction Num `json:"rate_reduction_at_least"`
}

// Result is the state's verdict in the JSON contract's shape. Confidence is the
// confidence the clean watched time gives (the target once the soak is complete).
func (st *SoakState) Result() SoakResult {
	r := SoakResult{Required: Num(round3(st.Required)), Watched: Num(round3(st.Watched)), Crashed: st.Crash != nil, Verdict: st.Verdict}
	if st.Crash == nil {
		r.Confidence = Num(SoakConfidence(st.Watched, st.MTTC))
		r.Reduction = Num(RateReduction(st.Rate, st.Watched))
	}
	return r
}
