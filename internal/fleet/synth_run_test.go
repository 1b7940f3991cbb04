package fleet

import (
	"testing"
	"time"
)

// TestSynthFleet measures the verdicts over the synthetic fleet (seeded, 10,000
// hosts) and holds them to the bar. go test -run TestSynthFleet -v prints
// the figures.
func TestSynthFleet(t *testing.T) {
	for _, seed := range []uint64{1, 2, 3} {
		f := newSynthFleet(seed, 10_000)
		e := New(Options{})
		start := time.Now()
		f.feed(e)
		took := time.Since(start)
		s := f.score(e)
		t.Logf("seed %d: %d hosts, %d reports fed in %v (%.1f µs/report)", seed, s.Hosts, s.Reports, took.Round(time.Millisecond),
			float64(took.Microseconds())/float64(max(1, s.Reports)))
		t.Logf("  software groups: %d/%d right (%.1f%%), %d called hardware", s.SoftwareRight, s.SoftwareGroups,
			pct(s.SoftwareRight, s.SoftwareGroups), s.SoftwareAsHardware)
		t.Logf("  hardware hosts: %d/%d right (%.1f%%)", s.HardwareHostsRight, s.HardwareHosts, pct(s.HardwareHostsRight, s.HardwareHosts))
		t.Logf("  hardware groups: %d/%d called hardware (%.1f%%)", s.HardwareGroupsRight, s.HardwareGroups, pct(s.HardwareGroupsRight, s.HardwareGroups))
		t.Logf("  single-host bit-flip groups: %d, called software: %d", s.FlipSingleHost, s.FlipSingleHostAsSoftware)
		t.Logf("  healthy hosts that crashed: %d, called hardware: %d (%.2f%%)", s.HealthyCrashed, s.HealthyAsHardware, pct(s.HealthyAsHardware, s.HealthyCrashed))
		if s.SoftwareGroups == 0 || s.HardwareHosts == 0 || s.FlipSingleHost == 0 {
			t.Fatalf("seed %d: degenerate fleet %+v", seed, s)
		}
		if s.FlipSingleHostAsSoftware > 0 {
			t.Errorf("seed %d: %d single-host bit-flip groups called software", seed, s.FlipSingleHostAsSoftware)
		}
		if pct(s.SoftwareRight, s.SoftwareGroups) < 90 {
			t.Errorf("seed %d: software groups %.1f%% right, want ≥ 90%%", seed, pct(s.SoftwareRight, s.SoftwareGroups))
		}
		if pct(s.HardwareHostsRight, s.HardwareHosts) < 90 {
			t.Errorf("seed %d: hardware hosts %.1f%% right, want ≥ 90%%", seed, pct(s.HardwareHostsRight, s.HardwareHosts))
		}
		if pct(s.HealthyAsHardware, s.HealthyCrashed) > 1 {
			t.Errorf("seed %d: %.2f%% of healthy crashed hosts called hardware, want ≤ 1%%", seed, pct(s.HealthyAsHardware, s.HealthyCrashed))
		}
	}
}

func pct(a, b int) float64 {
	if b == 0 {
		return 0
	}
	return 100 * float64(a) / float64(b)
}

// BenchmarkAdd is the verdict recomputation per report in a 10,000-host fleet: each
// op adds one report (its group's and host's verdicts recomputed, alerts checked)
// to an engine already holding the whole fleet.
func BenchmarkAdd(b *testing.B) {
	f := newSynthFleet(1, 10_000)
	e := New(Options{})
	f.feed(e)
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		r := f.reports[i%len(f.reports)]
		r.Time = r.Time.Add(30 * 24 * time.Hour)
		e.Add(r)
	}
}
