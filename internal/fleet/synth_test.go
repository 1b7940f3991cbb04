package fleet

import (
	"fmt"
	"math"
	"math/rand/v2"
	"sort"
	"strings"
	"time"

	"github.com/kcrash/kcrash/internal/oops"
)

// The synthetic fleet: a seeded generator of hosts, their uptime per release and
// their crash reports, with the truth about each (software bug or bad hardware).
//
//   - Hosts run one of several releases for days, on one of a few hardware models.
//   - Software bugs each have one crash site (function, offset, call chain), a
//     rate per host-hour and a release they start at (some are in every release);
//     every host running an affected release crashes as a Poisson process.
//   - About 1% of hosts have bad hardware: a few crashes each at sites that wander
//     over the whole kernel, some with a bit-flipped pointer (the good pointer's
//     neighbours stay in the registers), some after corrected machine checks or
//     EDAC lines, a few fatal machine checks.
//   - Noise: 2% of the healthy hosts log corrected memory errors that crash nothing,
//     and software bugs fault at NULL+offset, LIST_POISON or a use-after-free's
//     poison, none of which is a flip.

type synthTruth struct {
	software map[string]bool // signature → from a software bug
	hwHosts  map[string]bool
	// flipSingle: signatures of bad-hardware crashes with a bit flip.
	flipSigs map[string]bool
	bugs     int
}

type synthFleet struct {
	hosts   []synthHost
	reports []Report
	truth   synthTruth
}

type synthHost struct {
	id, release, model string
	hours              float64
	hardware, noisy    bool
}

var synthReleases = []string{
	"6.1.0-50-cloud-amd64", "6.1.0-51-cloud-amd64", "6.1.0-52-cloud-amd64", "6.1.0-53-cloud-amd64",
	"6.1.0-54-cloud-amd64", "6.1.0-55-cloud-amd64", "6.1.0-56-cloud-amd64", "6.1.0-57-cloud-amd64",
}

var synthModels = []string{"Dell Inc. PowerEdge R640", "HPE ProLiant DL360 Gen10", "Supermicro X11DPi-N", "QEMU Standard PC (i440FX + PIIX, 1996)"}

var synthKinds = []struct {
	kind  oops.Kind
	title string
}{
	{oops.KindNullDeref, "BUG: unable to handle kernel NULL pointer dereference in %s"},
	{oops.KindPageFault, "BUG: unable to handle kernel paging request in %s"},
	{oops.KindGPF, "general protection fault in %s"},
	{oops.KindBUG, "kernel BUG in %s"},
	{oops.KindWarning, "WARNING in %s"},
}

type synthBug struct {
	fn, kind string
	title    string
	offset   uint64
	chain    []string
	start    int     // first release index it is in
	rate     float64 // crashes per host-hour
}

func synthFunc(r *rand.Rand) string { return fmt.Sprintf("fn_%04d", r.IntN(5000)) }

// directMap returns a random direct-map pointer of this boot (KASLR base per host).
func directMap(r *rand.Rand, base uint64) uint64 {
	return base + uint64(r.Int64N(1<<32))&^7
}

func kaslrBase(r *rand.Rand) uint64 {
	// page_offset_base moves in 1 GiB steps over the randomised region.
	return 0xffff_8880_0000_0000 + uint64(r.IntN(1<<10))<<30
}

// synthReport builds one parsed report and the log lines before it.
func synthReport(r *rand.Rand, h synthHost, base uint64, kind oops.Kind, title, fn string, off uint64, chain []string,
	fault *uint64, regs map[string]uint64, ctx []string) Report {
	frames := make([]oops.Frame, len(chain))
	for i, c := range chain {
		frames[i] = oops.Frame{Func: c, Offset: uint64(0x10 + 4*i), Reliable: true}
	}
	cpu := r.IntN(32)
	if regs == nil {
		regs = map[string]uint64{}
	}
	for _, n := range []string{"RBX", "RDI", "RSI", "R12", "R13"} {
		if _, ok := regs[n]; !ok {
			regs[n] = directMap(r, base)
		}
	}
	p := &oops.Report{Kind: kind, Title: title, IP: &oops.Frame{Func: fn, Offset: off, Size: 0x200},
		Frames: frames, Registers: regs, FaultAddress: fault, CPU: &cpu, Release: h.release, Hardware: h.model}
	p.Signature = "v1:" + fmt.Sprintf("%x", hash(string(kind)+"|"+title+"|"+fn))
	rep := FromOops(p, strings.Join(ctx, "\n"))
	rep.Host = h.id
	return rep
}

func hash(s string) uint64 {
	var x uint64 = 1469598103934665603
	for i := 0; i < len(s); i++ {
		x = (x ^ uint64(s[i])) * 1099511628211
	}
	return x
}

func poisson(r *rand.Rand, mean float64) int {
	if mean > 30 {
		return max(0, int(math.Round(mean+math.Sqrt(mean)*r.NormFloat64())))
	}
	l, k, p := math.Exp(-mean), 0, 1.0
	for {
		p *= r.Float64()
		if p <= l {
			return k
		}
		k++
	}
}

var correctedLines = []string{
	"mce: [Hardware Error]: Machine check events logged",
	"EDAC MC0: 1 CE memory read error on CPU_SrcID#0_Ha#0_Chan#1_DIMM#0 (channel:1 slot:0 page:0x2a5f offset:0x0 grain:32 syndrome:0x0)",
	"{1}[Hardware Error]: Hardware error from APEI Generic Hardware Error Source: 0",
}

// corrected is one corrected-error line as a console prints it, timestamp included.
func corrected(r *rand.Rand) string {
	return fmt.Sprintf("[%6d.%06d] %s", r.IntN(3_000_000), r.IntN(1_000_000), correctedLines[r.IntN(len(correctedLines))])
}

// newSynthFleet generates a fleet of n hosts over 30 days.
func newSynthFleet(seed uint64, n int) *synthFleet {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	f := &synthFleet{truth: synthTruth{software: map[string]bool{}, hwHosts: map[string]bool{}, flipSigs: map[string]bool{}}}
	start := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	for i := range n {
		h := synthHost{id: fmt.Sprintf("10.%d.%d.%d:6665", i>>16, (i>>8)&255, i&255),
			release: synthReleases[r.IntN(len(synthReleases))], model: synthModels[r.IntN(len(synthModels))],
			hours: 24 * (5 + 25*r.Float64())}
		switch x := r.Float64(); {
		case x < 0.01:
			h.hardware = true
			f.truth.hwHosts[h.id] = true
		case x < 0.03:
			h.noisy = true
		}
		f.hosts = append(f.hosts, h)
	}
	bugs := make([]synthBug, 200)
	f.truth.bugs = len(bugs)
	for i := range bugs {
		k := synthKinds[r.IntN(len(synthKinds))]
		fn := fmt.Sprintf("bug_%03d_%s", i, synthFunc(r))
		b := synthBug{fn: fn, kind: string(k.kind), title: fmt.Sprintf(k.title, fn), offset: uint64(r.IntN(0x300)),
			start: 0}
		if r.Float64() < 0.6 {
			b.start = 1 + r.IntN(len(synthReleases)-1)
		}
		// Each bug is expected to crash 3 to 300 times over the month (log-uniform),
		// spread over the hosts running an affected release.
		affected := float64(n) * float64(len(synthReleases)-b.start) / float64(len(synthReleases))
		b.rate = math.Exp(math.Log(3)+r.Float64()*math.Log(100)) / (affected * 24 * 17.5)
		for j := 0; j < 4; j++ {
			b.chain = append(b.chain, synthFunc(r))
		}
		bugs[i] = b
	}
	relIndex := map[string]int{}
	for i, rel := range synthReleases {
		relIndex[rel] = i
	}
	for _, h := range f.hosts {
		base := kaslrBase(r)
		noise := func() []string {
			var ctx []string
			if h.noisy && r.Float64() < 0.5 {
				ctx = append(ctx, corrected(r))
			}
			return ctx
		}
		for _, b := range bugs {
			if relIndex[h.release] < b.start {
				continue
			}
			for c := poisson(r, b.rate*h.hours); c > 0; c-- {
				var fault *uint64
				regs := map[string]uint64{}
				switch oops.Kind(b.kind) {
				case oops.KindNullDeref:
					a := uint64(r.IntN(0x200)) &^ 7
					fault = &a
				case oops.KindPageFault:
					a := directMap(r, base) // a freed object's page, unmapped
					fault = &a
				case oops.KindGPF:
					regs["RAX"] = 0x6b6b6b6b6b6b6b6b // slab poison
					if r.IntN(2) == 0 {
						regs["RAX"] = 0xdead000000000122 // LIST_POISON2
					}
				}
				rep := synthReport(r, h, base, oops.Kind(b.kind), b.title, b.fn, b.offset, b.chain, fault, regs, noise())
				rep.Time = start.Add(time.Duration(r.Float64() * float64(30*24*time.Hour)))
				f.reports = append(f.reports, rep)
				f.truth.software[rep.Signature] = true
			}
		}
		if !h.hardware {
			continue
		}
		logsErrors := r.Float64() < 0.6
		for c := 1 + poisson(r, 3); c > 0; c-- {
			k := synthKinds[r.IntN(3)]
			fn := synthFunc(r)
			var ctx []string
			if logsErrors && r.Float64() < 0.7 {
				ctx = append(ctx, corrected(r), corrected(r))
			}
			regs := map[string]uint64{}
			var fault *uint64
			flip := false
			switch x := r.Float64(); {
			case x < 0.08:
				// A fatal machine check.
				rep := synthReport(r, h, base, oops.KindMCE, "MCE: Fatal local machine check", "", 0, nil, nil, nil,
					append(ctx, "mce: [Hardware Error]: CPU 0: Machine Check: 0 Bank 0: be0000000000009f", "Kernel panic - not syncing: Fatal local machine check"))
				rep.Site, rep.Signature = "", "v1:mce-fatal"
				rep.Time = start.Add(time.Duration(r.Float64() * float64(30*24*time.Hour)))
				rep.Taint = "M"
				f.reports = append(f.reports, rep)
				continue
			case x < 0.45:
				// A pointer with one bit flipped: its object's neighbours are in registers.
				good := directMap(r, base)
				regs["RBX"] = good + uint64(r.IntN(64))*8
				bit := 12 + r.IntN(52)
				a := good ^ 1<<bit
				flip = true
				if k.kind == oops.KindGPF && !Canonical(a) {
					regs["RAX"] = a
				} else {
					k = synthKinds[1]
					fault = &a
				}
			default:
				// The flip hit data, or a pointer it no longer points near: a wild
				// crash with nothing to show for it.
				if k.kind == oops.KindNullDeref {
					a := uint64(r.IntN(0x1000))
					fault = &a
				}
			}
			chain := []string{synthFunc(r), synthFunc(r), synthFunc(r)}
			rep := synthReport(r, h, base, k.kind, fmt.Sprintf(k.title, fn), fn, uint64(r.IntN(0x300)), chain, fault, regs, ctx)
			rep.Time = start.Add(time.Duration(r.Float64() * float64(30*24*time.Hour)))
			f.reports = append(f.reports, rep)
			if flip {
				f.truth.flipSigs[rep.Signature] = true
			}
		}
	}
	sort.SliceStable(f.reports, func(i, j int) bool { return f.reports[i].Time.Before(f.reports[j].Time) })
	for i := range f.reports {
		f.reports[i].ID = int64(i + 1)
	}
	return f
}

// feed runs the fleet through an engine: every host's uptime, then the reports in
// arrival order.
func (f *synthFleet) feed(e *Engine) []Event {
	for _, h := range f.hosts {
		e.AddUptime(h.id, h.release, h.hours)
	}
	var events []Event
	for _, r := range f.reports {
		events = append(events, e.Add(r)...)
	}
	return events
}

// synthScore is the accuracy measured over a fed fleet.
type synthScore struct {
	SoftwareGroups, SoftwareRight, SoftwareAsHardware int
	HardwareHosts, HardwareHostsRight                 int
	HealthyCrashed, HealthyAsHardware                 int
	FlipSingleHost, FlipSingleHostAsSoftware          int
	HardwareGroups, HardwareGroupsRight               int
	Reports, Hosts                                    int
}

func (f *synthFleet) score(e *Engine) synthScore {
	s := synthScore{Reports: len(f.reports), Hosts: len(f.hosts)}
	crashed := map[string]bool{}
	for _, r := range f.reports {
		crashed[r.Host] = true
	}
	for sig := range f.truth.software {
		g, _ := e.Group(sig)
		s.SoftwareGroups++
		switch g.Verdict.Class {
		case Software:
			s.SoftwareRight++
		case Hardware:
			s.SoftwareAsHardware++
		}
	}
	seen := map[string]bool{}
	for _, r := range f.reports {
		if f.truth.software[r.Signature] || seen[r.Signature] {
			continue
		}
		seen[r.Signature] = true
		g, _ := e.Group(r.Signature)
		s.HardwareGroups++
		if g.Verdict.Class == Hardware {
			s.HardwareGroupsRight++
		}
		if f.truth.flipSigs[r.Signature] && len(g.Hosts) == 1 {
			s.FlipSingleHost++
			if g.Verdict.Class == Software {
				s.FlipSingleHostAsSoftware++
			}
		}
	}
	for _, h := range f.hosts {
		c := e.HostClass(h.id)
		switch {
		case h.hardware:
			s.HardwareHosts++
			if c == Hardware {
				s.HardwareHostsRight++
			}
		case crashed[h.id]:
			s.HealthyCrashed++
			if c == Hardware {
				s.HealthyAsHardware++
			}
		}
	}
	return s
}
