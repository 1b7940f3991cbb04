package crashcmd

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/kcrash/kcrash/internal/decode"
	"github.com/kcrash/kcrash/internal/oops"
)

func init() {
	register(&Command{Name: "explain", Synopsis: "the panic's report from the dump's own log, decoded and explained", Run: runExplain})
}

// LogText renders the log as dmesg would ("[ts] text" lines), the input oops.Parse expects.
func (s *Session) LogText() ([]byte, error) {
	recs, err := s.K.Log()
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	for _, r := range recs {
		for _, line := range bytes.Split(r.Text, []byte("\n")) {
			fmt.Fprintf(&b, "[%5d.%06d] %s\n", r.TsNsec/1e9, r.TsNsec%1e9/1000, line)
		}
	}
	return b.Bytes(), nil
}

// Explanation is explain's answer: the reports found in the dump's log and,
// for the one that led to the panic, the decoder's result.
type Explanation struct {
	Reports []*oops.Report `json:"reports"`
	Decoded *decode.Result `json:"decoded,omitempty"`
	Error   string         `json:"decode_error,omitempty"`
}

// Explain finds the reports in the log and decodes the main one: the last
// report that panicked, else the last report.
func (s *Session) Explain() (*Explanation, error) {
	text, err := s.LogText()
	if err != nil {
		return nil, err
	}
	ex := &Explanation{Reports: oops.Parse(text)}
	if len(ex.Reports) == 0 {
		return ex, nil
	}
	main := ex.Reports[len(ex.Reports)-1]
	for _, r := range ex.Reports {
		if r.Panicked {
			main = r
			break
		}
	}
	// --- decoder plug-in point (internal/decode, the decode issue) ---
	// The report taken from the dump's log is handed to the decoder with the
	// session's vmlinux and module directory; everything above is independent
	// of the decoder.
	modDir, cleanup, err := s.decoderModules()
	if err != nil {
		ex.Error = err.Error()
		return ex, nil
	}
	defer cleanup()
	d, err := decode.New(decode.Options{Vmlinux: s.VmlinuxPath, ModulesDir: modDir})
	if err != nil {
		ex.Error = err.Error()
		return ex, nil
	}
	defer d.Close()
	if main.Arch == "arm64" && main.IP != nil && main.IP.Addr == 0 && main.IP.Func != "" {
		// arm64 prints its pc symbolized; the dump knows where that symbol is,
		// so the Code words get their addresses (absolute branch targets).
		if a, err := s.addrOrSymbol(main.IP.Func); err == nil {
			ip := *main.IP
			ip.Addr = a + ip.Offset
			r := *main
			r.IP = &ip
			main = &r
		}
	}
	ex.Decoded = d.Decode(main)
	// --- end of the decoder plug-in point ---
	return ex, nil
}

// decoderModules is the module directory for the decoder: ModulesDir alone,
// or, when `mod -s` registered debug files, a temporary directory linking
// ModulesDir and each registered file as NAME.ko (the decoder searches one
// directory tree by module name); cleanup removes it.
func (s *Session) decoderModules() (string, func(), error) {
	if len(s.ModFiles) == 0 {
		return s.ModulesDir, func() {}, nil
	}
	dir, err := os.MkdirTemp("", "kcrash-modules-")
	if err != nil {
		return "", nil, err
	}
	cleanup := func() { os.RemoveAll(dir) }
	link := func(target, name string) error {
		abs, err := filepath.Abs(target)
		if err != nil {
			return err
		}
		return os.Symlink(abs, filepath.Join(dir, name))
	}
	if s.ModulesDir != "" {
		if err := link(s.ModulesDir, "modules"); err != nil {
			cleanup()
			return "", nil, err
		}
	}
	for name, file := range s.ModFiles {
		if err := link(file, name+".ko"); err != nil {
			cleanup()
			return "", nil, err
		}
	}
	return dir, cleanup, nil
}

func runExplain(s *Session, w io.Writer, args []string) error {
	ex, err := s.Explain()
	if err != nil {
		return err
	}
	if s.JSON {
		return json.NewEncoder(w).Encode(ex)
	}
	if len(ex.Reports) == 0 {
		fmt.Fprintln(w, "explain: no crash report in the dump's log")
		return nil
	}
	for i, r := range ex.Reports {
		fmt.Fprintf(w, "REPORT %d: %s\n", i+1, r.Title)
		fmt.Fprintf(w, "  kind: %s  panicked: %v\n", r.Kind, r.Panicked)
		if r.Comm != "" && r.PID != nil {
			fmt.Fprintf(w, "  task: %s (PID %d)\n", r.Comm, *r.PID)
		}
		if r.IP != nil {
			fmt.Fprintf(w, "  ip: %s\n", r.IP.Raw)
		}
		if r.PanicMsg != "" {
			fmt.Fprintf(w, "  panic: %s\n", r.PanicMsg)
		}
	}
	if ex.Error != "" {
		fmt.Fprintf(w, "\ndecode: %s\n", ex.Error)
		return nil
	}
	res := ex.Decoded
	if res == nil {
		return nil
	}
	fmt.Fprintf(w, "\nDECODED: %s\n", res.Report.Title)
	if res.IP != nil {
		fmt.Fprintf(w, "  RIP: %s%s\n", res.IP.Raw, locs(res.IP))
	}
	for _, f := range res.Frames {
		fmt.Fprintf(w, "  %s%s\n", strings.TrimSpace(f.Raw), locs(&f))
	}
	if len(res.Code) > 0 {
		fmt.Fprintln(w, "  code:")
		for _, in := range res.Code {
			mark := ""
			if in.Trap {
				mark = "    <-- trapping instruction"
			}
			fmt.Fprintf(w, "    %+4d: %-40s %x%s\n", in.Offset, in.Text, in.Bytes, mark)
		}
	}
	if e := res.Explanation; e != nil {
		fmt.Fprintf(w, "\nEXPLANATION: %s\n", e.Summary)
		if e.Cause != "" {
			fmt.Fprintf(w, "  cause: %s\n", e.Cause)
		}
		for _, st := range e.Steps {
			mark := "?"
			if st.Certain {
				mark = "-"
			}
			fmt.Fprintf(w, "  %s %s\n", mark, st.Text)
		}
	}
	return nil
}

func locs(f *decode.Frame) string {
	var parts []string
	for _, l := range f.Locations {
		p := fmt.Sprintf("%s (%s:%d)", l.Function, l.ShortFile(), l.Line)
		if l.Inlined {
			p += " [inline]"
		}
		parts = append(parts, p)
	}
	if len(parts) == 0 {
		return ""
	}
	return "  => " + strings.Join(parts, " <- ")
}
