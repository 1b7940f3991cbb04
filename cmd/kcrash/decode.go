package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"

	"github.com/kcrash/kcrash/internal/decode"
	"github.com/kcrash/kcrash/internal/disasm"
	"github.com/kcrash/kcrash/internal/oops"
	"github.com/kcrash/kcrash/internal/symbols"
)

func init() {
	register(&command{
		name:     "decode",
		synopsis: "symbolize, disassemble and explain the oopses in a log (vmlinux and .ko debug info)",
		usage:    "kcrash decode [--vmlinux F] [--modules DIR] [--symbols DIR] [--debuginfod URLS] [--source DIR] [--json] [FILE|-]",
		run:      runDecode,
	})
}

func runDecode(env *cmdEnv, args []string) error {
	c := commands["decode"]
	fs := newFlagSet(env, c)
	vmlinux := fs.String("vmlinux", "", "vmlinux with DWARF debug info (default: found by the report's release, see --symbols, --debuginfod, --dbg-packages)")
	modules := fs.String("modules", "", "directory searched for the modules' .ko files with debug info")
	source := fs.String("source", "", "kernel source tree, to print the faulting source line")
	asJSON := fs.Bool("json", false, "print one JSON object {\"reports\":[…]} with the decoded reports")
	sf := addSymbolFlags(fs, "`directory` of debug files searched by release and build ID (RELEASE/vmlinux, vmlinux-RELEASE, .build-id/NN/…debug, modules under RELEASE/)", true)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	name := "-"
	if fs.NArg() > 1 {
		fs.Usage()
		return errUsage
	}
	if fs.NArg() == 1 {
		name = fs.Arg(0)
	}
	data, err := readInput(env, name)
	if err != nil {
		return err
	}
	// A one-shot decode allocates its indexes in a burst: collect less often (the
	// heap stays well under 100 MB on a distribution vmlinux).
	debug.SetGCPercent(200)
	if *vmlinux != "" && !flagSet(fs, "dbg-packages") {
		*sf.dbg = false // modules of a given vmlinux: only by build ID or --symbols
	}
	reports := oops.Parse(data)
	ds := &decoders{vmlinux: *vmlinux, modules: *modules, lookup: sf.lookup(env), byRelease: map[string]*decode.Decoder{}}
	defer ds.close()
	var results []*decode.Result
	for _, r := range reports {
		d, err := ds.forRelease(r.Release)
		if err != nil {
			return err
		}
		res := d.Decode(r)
		res.SymbolsErr = ds.errs[r.Release]
		results = append(results, res)
	}
	if *asJSON {
		if results == nil {
			results = []*decode.Result{}
		}
		out, err := json.Marshal(struct {
			Reports []*decode.Result `json:"reports"`
		}{results})
		if err != nil {
			return err
		}
		fmt.Fprintf(env.stdout, "%s\n", out)
		return nil
	}
	w := bufio.NewWriter(env.stdout)
	defer w.Flush()
	if len(results) == 0 {
		fmt.Fprintf(w, "%s: no kernel crash report found\n", name)
	}
	for i, res := range results {
		if i > 0 {
			fmt.Fprintln(w)
		}
		printDecoded(w, res, *source)
	}
	return nil
}

// printDecoded prints a report the way decode_stacktrace.sh does (each frame followed
// by its source location, inlined callers marked [inline]), then the disassembly, the
// registers and the explanation.
func printDecoded(w io.Writer, res *decode.Result, source string) {
	r := res.Report
	fmt.Fprintf(w, "%s\n", r.Title)
	fmt.Fprintf(w, "%s\n", r.Message)
	if rep := r.Repairs.String(); rep != "" {
		// Say what was undone in the text, so an uncertain field has a reason.
		fmt.Fprintf(w, "Repaired: %s\n", rep)
	}
	if r.CPU != nil || r.Release != "" {
		fmt.Fprintf(w, "CPU: %s PID: %s Comm: %s %s %s\n", intStr(r.CPU), intStr(r.PID), r.Comm, r.Release, r.Build)
	}
	if res.SymbolsErr != "" {
		fmt.Fprintf(w, "Symbols: %s\n", res.SymbolsErr)
	}
	if res.IP != nil {
		fmt.Fprintf(w, "RIP: %s\n", r.IP.Raw)
		printLocations(w, *res.IP)
		if source != "" && len(res.IP.Locations) > 0 {
			if line := sourceLine(source, res.IP.Locations[0].ShortFile(), res.IP.Locations[0].Line); line != "" {
				fmt.Fprintf(w, "    | %s\n", line)
			}
		}
	} else if r.IP != nil {
		fmt.Fprintf(w, "RIP: %s\n", r.IP.Raw)
	}
	if len(res.Code) > 0 {
		fmt.Fprintf(w, "Code:\n%s", indent(disasm.Format(res.Code), "  "))
	} else if res.CodeErr != "" {
		fmt.Fprintf(w, "Code: %s\n", res.CodeErr)
	}
	if len(r.Registers) > 0 {
		fmt.Fprintf(w, "Registers:\n")
		printRegisters(w, r.Registers)
	}
	if len(res.Frames) > 0 {
		fmt.Fprintf(w, "Call Trace:\n")
		sec := ""
		for _, f := range res.Frames {
			if f.Section != sec {
				if sec != "" {
					fmt.Fprintf(w, " </%s>\n", sec)
				}
				if f.Section != "" {
					fmt.Fprintf(w, " <%s>\n", f.Section)
				}
				sec = f.Section
			}
			fmt.Fprintf(w, " %s\n", f.Raw)
			printLocations(w, f)
		}
		if sec != "" {
			fmt.Fprintf(w, " </%s>\n", sec)
		}
	}
	if e := res.Explanation; e != nil {
		fmt.Fprintf(w, "Explanation: %s\n", e.Summary)
		for _, s := range e.Steps {
			mark := "-"
			if !s.Certain {
				mark = "? (uncertain)"
			}
			fmt.Fprintf(w, "  %s %s\n", mark, s.Text)
		}
	}
}

func printLocations(w io.Writer, f decode.Frame) {
	if f.Err != "" {
		fmt.Fprintf(w, "    (%s)\n", f.Err)
		return
	}
	for _, l := range f.Locations {
		inl := ""
		if l.Inlined {
			inl = " [inline]"
		}
		fmt.Fprintf(w, "    %s (%s:%d)%s\n", l.Function, l.ShortFile(), l.Line, inl)
	}
}

func intStr(p *int) string {
	if p == nil {
		return "?"
	}
	return fmt.Sprint(*p)
}

func indent(s, pre string) string {
	var b strings.Builder
	for _, l := range strings.SplitAfter(s, "\n") {
		if l != "" {
			b.WriteString(pre + l)
		}
	}
	return b.String()
}

func sourceLine(dir, file string, line int) string {
	f, err := os.Open(filepath.Join(dir, file))
	if err != nil {
		return ""
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for n := 1; s.Scan(); n++ {
		if n == line {
			return strings.TrimSpace(s.Text())
		}
	}
	return ""
}

// decoders keeps one Decoder per kernel release of the reports decoded: the vmlinux
// given, else the one the symbol sources find for the release.
type decoders struct {
	vmlinux, modules string
	lookup           *symbols.Lookup
	byRelease        map[string]*decode.Decoder
	errs             map[string]string // release → why its vmlinux was not found
}

func (ds *decoders) forRelease(release string) (*decode.Decoder, error) {
	if d, ok := ds.byRelease[release]; ok {
		return d, nil
	}
	ctx := context.Background()
	opts := decode.Options{Vmlinux: ds.vmlinux, ModulesDir: ds.modules, FindModule: findModule(ctx, ds.lookup, release)}
	if opts.Vmlinux == "" {
		p, err := ds.lookup.Find(ctx, symbols.Query{Release: release})
		if err != nil {
			if ds.errs == nil {
				ds.errs = map[string]string{}
			}
			ds.errs[release] = err.Error()
		}
		opts.Vmlinux = p
	}
	d, err := decode.New(opts)
	if err != nil {
		return nil, err
	}
	ds.byRelease[release] = d
	return d, nil
}

func (ds *decoders) close() {
	for _, d := range ds.byRelease {
		d.Close()
	}
}
