package lab

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
)

// PrintScenario writes a scenario's JSON result for people.
func PrintScenario(w io.Writer, name string, raw json.RawMessage) error {
	switch name {
	case "race":
		var r RaceResult
		if err := json.Unmarshal(raw, &r); err != nil {
			return err
		}
		fmt.Fprintf(w, "kernel %s, flood %d pps\n", r.ABI, r.PPS)
		for _, m := range []RaceMeasure{r.Loaded, r.Idle, r.Fixed} {
			mttc := "no crash"
			if m.Crashes > 0 {
				mttc = fmt.Sprintf("mean time to crash %.1fs", m.MTTCS)
			}
			fmt.Fprintf(w, "  %-16s %-12s %d runs, %d crashes in %.1fs watched (%s); times %v\n",
				m.Module, m.Load, m.Runs, m.Crashes, m.WatchedS, mttc, m.TimesS)
		}
		if r.LoadedOverIdle > 0 {
			fmt.Fprintf(w, "  the flood crashes it %.1fx more often than idle\n", r.LoadedOverIdle)
		} else {
			fmt.Fprintf(w, "  idle survived %.1fx the loaded mean time to crash; fixed=1 survived %.1fx\n", r.IdleWatchedOverMTTC, r.FixedWatchedOverMTTC)
		}
	case "regression":
		var r RegressionResult
		if err := json.Unmarshal(raw, &r); err != nil {
			return err
		}
		fmt.Fprintf(w, "race gated at %s, flood %d pps, runs of at most %.0fs (%s)\n", r.GatedAt, r.PPS, r.LimitS, r.Note)
		for _, t := range r.Targets {
			fmt.Fprintf(w, "  %-8s %-28s gated=%-5v %d/%d runs crashed, times %v\n", t.Name, t.ABI, t.Gated, t.Crashes, t.Runs, t.TimesS)
		}
	case "hardware":
		var r HardwareResult
		if err := json.Unmarshal(raw, &r); err != nil {
			return err
		}
		fmt.Fprintf(w, "kernel %s\n", r.ABI)
		for _, t := range r.Targets {
			for _, run := range t.Runs {
				what := "no crash"
				if run.Crash != nil {
					what = run.Crash.Title
				}
				fmt.Fprintf(w, "  %-8s %-10s %-9s %5.1fs  mce lines %-3d %s\n", t.Name, t.Role, run.Fault, run.Seconds, run.MCELines, what)
			}
		}
		fmt.Fprintf(w, "  bit flips crashed in %d functions: %s; fatal machine check read as %q\n",
			r.DistinctFunctions, strings.Join(r.Functions, ", "), r.FatalMCEKind)
	case "pstore":
		var r PstoreResult
		if err := json.Unmarshal(raw, &r); err != nil {
			return err
		}
		fmt.Fprintf(w, "kernel %s, %s; the console showed %q\n", r.ABI, r.Trigger, r.SerialTitles)
		for _, p := range r.PstoreRecords {
			fmt.Fprintf(w, "  %-20s %6d bytes  %q  %s\n", p.Name, p.Bytes, p.Titles, p.Path)
		}
		fmt.Fprintf(w, "  %d oops lines of the console found byte for byte in the records: %v\n", r.OopsLines, r.OopsLinesMatched)
	default:
		fmt.Fprintf(w, "%s\n", raw)
	}
	return nil
}
