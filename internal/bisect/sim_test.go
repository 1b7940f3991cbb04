package bisect

import (
	"context"
	"testing"
)

func TestSimQuick(t *testing.T) {
	for _, p := range []float64{0.9, 0.5, 0.3, 0.1} {
		rows, err := Simulate(context.Background(), SimOptions{Candidates: 1024, CrashProb: p, Trials: 200, Seed: 1}, []string{"kcrash"})
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rows {
			t.Logf("%+v", r)
		}
	}
}
