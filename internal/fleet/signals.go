package fleet

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/kcrash/kcrash/internal/oops"
	"github.com/kcrash/kcrash/internal/store"
)

// Report is what the verdicts need of one crash report.
type Report struct {
	ID        int64
	Host      string
	Time      time.Time
	Signature string
	Title     string
	Kind      string
	Release   string
	// Site is the faulting function and offset ("free_pipe_info+0x17"); Chain the
	// first reliable frames of the call trace.
	Site, Chain string
	CPU         int    // -1 when not printed
	Taint       string // flags as printed ("OE"), "" for Not tainted
	Hardware    string // the "Hardware name:" line: the machine model
	// HWLines are the machine-check, EDAC and [Hardware Error] lines in the log just
	// before the report (its context) and in it.
	HWLines []string
	// Flip is the best bit-flip explanation of the report's bad address, if any.
	Flip *Flip
	// WildIP: the kernel was executing outside kernel text and modules.
	WildIP bool
	// Hostname is a name the boot log gave the host ("Hostname set to <…>").
	Hostname string
	// Uptime is the console timestamp of the report's first line: seconds since
	// its boot (0 when the log has none).
	Uptime float64
}

var (
	// Lines a healthy boot prints ("EDAC MC: Ver: 3.0.0", "MCE: In-kernel MCE
	// decoding enabled") do not match: only errors do.
	hwLine   = regexp.MustCompile(`\[Hardware Error\]|Machine check events logged|[Ff]atal( local)? machine check|\bEDAC\b.*\b(CE|UE|error)\b|Memory failure: |[Ss]oft offlin|Uncorrected hardware memory error`)
	hostLine = regexp.MustCompile(`Hostname set to <([A-Za-z0-9._-]{1,64})>`)
	stampRE  = regexp.MustCompile(`^(?:<\d+>)?\[\s*(\d{1,9}\.\d{1,9})\]`)
)

// maxHWLines bounds the hardware lines kept per report.
const maxHWLines = 8

// FromStore reads a stored report: its parsed form (parsing the text again when the
// row has none) and its context.
func FromStore(r *store.Report) Report {
	var p oops.Report
	if len(r.Parsed) == 0 || json.Unmarshal(r.Parsed, &p) != nil {
		if ps := oops.Parse([]byte(r.Text)); len(ps) > 0 {
			p = *ps[0]
		}
	}
	out := FromOops(&p, r.Context)
	out.ID, out.Host, out.Time, out.Signature, out.Title, out.Kind = r.ID, r.Host, r.Time, r.Signature, r.Title, r.Kind
	if r.Release != "" {
		out.Release = r.Release
	}
	out.HWLines = appendHW(out.HWLines, r.Text)
	out.Uptime = ConsoleUptime(r.Text)
	return out
}

// ConsoleUptime reads the console timestamp ("[   12.345678]") of a log's first line.
func ConsoleUptime(text string) float64 {
	m := stampRE.FindStringSubmatch(text)
	if m == nil {
		return 0
	}
	v, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		return 0
	}
	return v
}

// FromOops reads a parsed report and the log lines before it.
func FromOops(p *oops.Report, context string) Report {
	out := Report{Signature: p.Signature, Title: p.Title, Kind: string(p.Kind), Release: p.Release,
		Taint: p.Taint, Hardware: p.Hardware, CPU: -1}
	if p.CPU != nil {
		out.CPU = *p.CPU
	}
	if p.IP != nil {
		if p.IP.Func != "" {
			out.Site = fmt.Sprintf("%s+%#x", p.IP.Func, p.IP.Offset)
		}
		if p.IP.Func == "" && p.Arch != "arm64" {
			// "RIP: 0010:0xffd00000534": no symbol for the instruction pointer.
			ip := p.IP.Addr
			if v, ok := p.Registers["RIP"]; ok && ip == 0 {
				ip = v
			}
			r := RegionOf(ip)
			out.WildIP = ip != 0 && r != "kernel-text" && r != "modules"
		}
	}
	var chain []string
	for _, f := range p.Frames {
		if f.Reliable && f.Func != "" && len(chain) < 5 {
			chain = append(chain, f.Func)
		}
	}
	out.Chain = strings.Join(chain, "<")
	out.HWLines = appendHW(nil, context)
	if m := hostLine.FindAllStringSubmatch(context, -1); len(m) > 0 {
		out.Hostname = m[len(m)-1][1]
	}
	out.Flip = flipOf(p)
	return out
}

func appendHW(dst []string, text string) []string {
	for _, l := range strings.Split(text, "\n") {
		if len(dst) >= maxHWLines {
			break
		}
		if hwLine.MatchString(l) {
			dst = append(dst, strings.TrimSpace(l))
		}
	}
	return dst
}

// flipOf tries the report's fault address, then (for a general protection fault,
// which has none) every non-canonical register, then a wild instruction pointer.
func flipOf(p *oops.Report) *Flip {
	var best *Flip
	try := func(src string, a uint64) {
		if f, ok := BitFlip(src, a, p.Registers); ok && (best == nil || f.Score > best.Score) {
			best = &f
		}
	}
	if p.FaultAddress != nil {
		try("fault address", *p.FaultAddress)
	}
	for _, n := range NonCanonical(p.Registers) {
		try(n, p.Registers[n])
	}
	if p.IP != nil && p.IP.Func == "" && p.IP.Addr != 0 {
		try("RIP", p.IP.Addr)
	}
	return best
}

// hardwareTaint says whether taint flags include M (machine check) or B (bad page).
func hardwareTaint(t string) bool { return strings.ContainsAny(t, "MB") }
