package lab

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"time"
)

// Machine checks injected with QEMU's monitor command "mce CPU BANK STATUS
// MCG_STATUS ADDR MISC" (hmp-commands.hx), with IA32_MCi_STATUS laid out as in the
// Intel SDM vol. 3B 16.3.2.2 (VAL 63, UC 61, EN 60, MISCV 59, ADDRV 58, PCC 57; the
// low 16 bits are the MCA error code, 0x009f a memory read error) and
// IA32_MCG_STATUS bits RIPV 0, EIPV 1, MCIP 2. They need a kernel built with
// CONFIG_X86_MCE, which Debian's cloud flavour lacks: the scenario boots the
// generic amd64 flavour.
const (
	// MCECorrected is a corrected memory read error in bank 1 (VAL|EN|MISCV|ADDRV),
	// logged by the guest's machine-check poller.
	MCECorrected = "mce 0 1 0x9c0000000000009f 0 0x2a5f000 0x86"
	// MCEFatal is an uncorrected error with processor context corrupt in bank 0
	// (VAL|UC|EN|MISCV|ADDRV|PCC) delivered as #MC with MCIP|EIPV: the kernel panics.
	MCEFatal = "mce 0 0 0xbe0000000000009f 0x6 0x2a5f000 0x86"
)

// HardwareRun is one boot of the hardware scenario.
type HardwareRun struct {
	Fault   string  `json:"fault"` // "bitflip", "mce-fatal" or "none"
	Crashed bool    `json:"crashed"`
	Seconds float64 `json:"seconds"` // to the crash, or watched
	Crash   *Crash  `json:"crash,omitempty"`
	// MCELines counts the console lines of this boot that the machine-check code
	// printed ("[Hardware Error]", "mce:").
	MCELines int    `json:"mce_lines"`
	Serial   string `json:"serial"`
}

// HardwareTarget is one host of the hardware scenario.
type HardwareTarget struct {
	Name string        `json:"name"`
	Role string        `json:"role"` // "faulty" or "healthy"
	Runs []HardwareRun `json:"runs"`
}

// HardwareResult is the hardware scenario's result.
type HardwareResult struct {
	ABI     string           `json:"abi"`
	Targets []HardwareTarget `json:"targets"`
	// Functions are the distinct functions the bit-flip crashes landed in.
	Functions         []string `json:"bitflip_functions"`
	DistinctFunctions int      `json:"distinct_functions"`
	CorrectedMCELines int      `json:"corrected_mce_lines"`
	FatalMCEKind      string   `json:"fatal_mce_kind"`
}

func mceLines(log []byte) int {
	n := 0
	for _, l := range bytes.Split(log, []byte("\n")) {
		if bytes.Contains(l, []byte("[Hardware Error]")) || bytes.Contains(l, []byte(" mce: ")) {
			n++
		}
	}
	return n
}

// hardwareRun boots the faulty host once: corrected machine checks first, then the
// fault (bit flips from hwfault, or a fatal machine check), watched up to limit.
func hardwareRun(ctx context.Context, k *Kernel, dir, name, fault string, limit time.Duration) (HardwareRun, error) {
	args := "oops=panic lab_mce_poll=1 lab_busy=1"
	if fault == "bitflip" {
		// The flips start once the corrected machine checks below are in the log.
		args += " lab_load=hwfault hwfault.start_ms=4000"
	}
	g, err := bootScenarioGuest(ctx, bootSpec{Name: name, Kernel: k, Dir: dir, Args: args})
	if err != nil {
		return HardwareRun{}, err
	}
	defer g.Quit()
	run := HardwareRun{Fault: fault, Serial: g.Serial}
	start := time.Now()
	if fault != "none" {
		// A failing DIMM announces itself with corrected errors first.
		for i := 0; i < 2; i++ {
			if out, err := g.HMP(ctx, MCECorrected); err != nil || strings.TrimSpace(out) != "" {
				return run, fmt.Errorf("%s: injecting a corrected machine check: %v %s", name, err, out)
			}
			time.Sleep(1500 * time.Millisecond)
		}
	}
	if fault == "mce-fatal" {
		if out, err := g.HMP(ctx, MCEFatal); err != nil || strings.TrimSpace(out) != "" {
			return run, fmt.Errorf("%s: injecting a fatal machine check: %v %s", name, err, out)
		}
	}
	outcome, err := g.Wait(ctx, limit)
	if err != nil {
		return run, err
	}
	w, err := g.endOf(outcome, start)
	run.Crashed, run.Seconds, run.Crash, run.MCELines = w.Crashed, w.Seconds, w.Crash, mceLines(w.Console)
	if err != nil {
		return run, err
	}
	return run, nil
}

// runHardwareScenario runs a faulty host (five boots with bit flips, one with a
// fatal machine check, all after corrected machine checks) and a healthy one.
func runHardwareScenario(ctx context.Context, cfg *Config, o ScenarioOptions, dir string) (any, error) {
	k, err := kernelFor(ctx, cfg, o.Kernel, true)
	if err != nil {
		return nil, err
	}
	flips := o.Runs
	if flips <= 0 {
		flips = 5
	}
	const limit = 120 * time.Second
	res := &HardwareResult{ABI: k.Release, Functions: []string{}}
	faulty := HardwareTarget{Name: "bad-dimm", Role: "faulty", Runs: make([]HardwareRun, flips+1)}
	healthy := HardwareTarget{Name: "healthy", Role: "healthy", Runs: make([]HardwareRun, 1)}
	var jobs []func(context.Context) error
	for i := range flips + 1 {
		fault, name := "bitflip", fmt.Sprintf("bad-dimm-flip-%d", i+1)
		if i == flips {
			fault, name = "mce-fatal", "bad-dimm-mce"
		}
		jobs = append(jobs, func(ctx context.Context) error {
			r, err := hardwareRun(ctx, k, dir, name, fault, limit)
			faulty.Runs[i] = r
			cfg.progress("scenario hardware: %s crashed=%v after %.1fs in %v", name, r.Crashed, r.Seconds, r.Crash)
			return err
		})
	}
	jobs = append(jobs, func(ctx context.Context) error {
		r, err := hardwareRun(ctx, k, dir, "healthy", "none", 60*time.Second)
		healthy.Runs[0] = r
		cfg.progress("scenario hardware: healthy crashed=%v after %.1fs", r.Crashed, r.Seconds)
		return err
	})
	if err := runJobs(ctx, o.Parallel, jobs); err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	for _, r := range faulty.Runs {
		res.CorrectedMCELines += r.MCELines
		if r.Fault == "bitflip" && r.Crash != nil {
			fn := r.Crash.Function
			if fn == "" {
				fn = r.Crash.Title
			}
			seen[fn] = true
		}
		if r.Fault == "mce-fatal" && r.Crash != nil {
			res.FatalMCEKind = r.Crash.Kind
		}
	}
	res.Functions = sortedKeys(seen)
	res.DistinctFunctions = len(res.Functions)
	res.Targets = []HardwareTarget{faulty, healthy}
	return res, nil
}
