package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"github.com/kcrash/kcrash/internal/oops"
)

func init() {
	register(&command{
		name:     "parse",
		synopsis: "find every kernel crash report in logs and print it structured",
		usage:    "kcrash parse [--json] FILE|- ...",
		run:      runParse,
	})
}

// maxLogBytes bounds how much of one input is read; larger logs are an error, not a hang.
const maxLogBytes = 1 << 30

func runParse(env *cmdEnv, args []string) error {
	c := commands["parse"]
	fs := newFlagSet(env, c)
	asJSON := fs.Bool("json", false, "print one JSON object {\"reports\":[…]} per input")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	files := fs.Args()
	if len(files) == 0 {
		fs.Usage()
		return errUsage
	}
	failed := false
	for _, name := range files {
		data, err := readInput(env, name)
		if err != nil {
			fmt.Fprintf(env.stderr, "kcrash parse: %v\n", err)
			failed = true
			continue
		}
		reports := oops.Parse(data)
		if *asJSON {
			if reports == nil {
				reports = []*oops.Report{}
			}
			out, err := json.Marshal(struct {
				Reports []*oops.Report `json:"reports"`
			}{reports})
			if err != nil {
				return err
			}
			fmt.Fprintf(env.stdout, "%s\n", out)
			continue
		}
		printReports(env.stdout, name, reports)
	}
	if failed {
		return exitError{1}
	}
	return nil
}

func readInput(env *cmdEnv, name string) ([]byte, error) {
	var r io.Reader
	if name == "-" {
		r = env.stdin
		name = "standard input"
	} else {
		f, err := os.Open(name)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		r = f
	}
	data, err := io.ReadAll(io.LimitReader(r, maxLogBytes+1))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", name, err)
	}
	if len(data) > maxLogBytes {
		return nil, fmt.Errorf("%s: larger than %d bytes", name, maxLogBytes)
	}
	return data, nil
}

// printReports writes reports for people: the headline facts first, then registers,
// code and the call trace as the kernel printed them.
func printReports(w io.Writer, name string, reports []*oops.Report) {
	if len(reports) == 0 {
		fmt.Fprintf(w, "%s: no kernel crash report found\n", name)
		return
	}
	for i, r := range reports {
		if i > 0 {
			fmt.Fprintln(w)
		}
		fmt.Fprintf(w, "%s: report %d of %d, bytes %d-%d\n", name, i+1, len(reports), r.Start, r.End)
		fmt.Fprintf(w, "  title:     %s\n", r.Title)
		for _, t := range r.AltTitles {
			fmt.Fprintf(w, "  alt title: %s\n", t)
		}
		fmt.Fprintf(w, "  kind:      %s", r.Kind)
		if r.Type != "" {
			fmt.Fprintf(w, " (%s)", r.Type)
		}
		fmt.Fprintln(w)
		if r.Corrupted {
			fmt.Fprintf(w, "  CORRUPTED: %s\n", r.CorruptedReason)
		}
		fmt.Fprintf(w, "  message:   %s\n", r.Message)
		if rep := r.Repairs.String(); rep != "" {
			fmt.Fprintf(w, "  repaired:  %s\n", rep)
		}
		if r.IP != nil {
			fmt.Fprintf(w, "  ip:        %s\n", r.IP.Raw)
		}
		if r.FaultAddress != nil {
			fmt.Fprintf(w, "  address:   %#x\n", *r.FaultAddress)
		}
		if r.AddressHint != "" {
			fmt.Fprintf(w, "  hint:      %s\n", r.AddressHint)
		}
		if r.Source != "" {
			fmt.Fprintf(w, "  source:    %s\n", r.Source)
		}
		var task []string
		if r.CPU != nil {
			task = append(task, fmt.Sprintf("CPU %d", *r.CPU))
		}
		if r.PID != nil {
			task = append(task, fmt.Sprintf("PID %d", *r.PID))
		}
		if r.Comm != "" {
			task = append(task, "comm "+r.Comm)
		}
		if len(task) > 0 {
			fmt.Fprintf(w, "  task:      %s\n", strings.Join(task, ", "))
		}
		if r.Release != "" {
			fmt.Fprintf(w, "  kernel:    %s %s\n", r.Release, r.Build)
		}
		if r.Taint != "" {
			fmt.Fprintf(w, "  tainted:   %s\n", r.Taint)
		}
		if r.Hardware != "" {
			fmt.Fprintf(w, "  hardware:  %s\n", r.Hardware)
		}
		if r.Panicked {
			fmt.Fprintf(w, "  panic:     %s\n", r.PanicMsg)
		}
		fmt.Fprintf(w, "  signature: %s\n", r.Signature)
		if len(r.Registers) > 0 {
			fmt.Fprintf(w, "  registers:\n")
			printRegisters(w, r.Registers)
		}
		if r.Code != nil {
			fmt.Fprintf(w, "  code:      %s\n", r.Code.Raw)
		}
		if len(r.Frames) > 0 {
			fmt.Fprintf(w, "  call trace:\n")
			sec := ""
			for _, f := range r.Frames {
				if f.Section != sec {
					if f.Section != "" {
						fmt.Fprintf(w, "    <%s>\n", f.Section)
					}
					sec = f.Section
				}
				fmt.Fprintf(w, "    %s\n", f.Raw)
			}
		}
		if len(r.Modules) > 0 {
			fmt.Fprintf(w, "  modules:   %s\n", strings.Join(r.Modules, " "))
		}
	}
}

func printRegisters(w io.Writer, regs map[string]uint64) {
	names := make([]string, 0, len(regs))
	for n := range regs {
		names = append(names, n)
	}
	sort.Slice(names, func(i, j int) bool { return oops.RegisterOrder(names[i]) < oops.RegisterOrder(names[j]) })
	for i, n := range names {
		if i%3 == 0 {
			fmt.Fprintf(w, "   ")
		}
		fmt.Fprintf(w, " %-7s %016x", n+":", regs[n])
		if i%3 == 2 || i == len(names)-1 {
			fmt.Fprintln(w)
		}
	}
}
