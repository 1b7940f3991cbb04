package oops

import (
	"regexp"
	"strconv"
	"strings"
)

// Two CPUs that crash at once print their reports into the same console, line by line
// interleaved. With CONFIG_PRINTK_CALLER each line names its CPU or task and the line
// model keeps the first report's lines (spanLines, collect). Without caller ids the
// lines are told apart by content: every report prints its parts in one order (header,
// module list, CPU line, RIP, Code, RSP, the register rows in their fixed order, the
// call trace, the end marker, the repeated RIP and registers, the panic), so a line goes
// to the report for which it is the nearest next part. Module-name fragments
// (pr_cont pieces of a module list) never end a trace.
//
// demux runs on repaired lines. When two report headers start within a few lines of
// each other, it rewrites the region as the first report's lines followed by the
// second's, and marks the lines it moved as an uncertain repair.

// demuxWindow bounds the lines read after two interleaved headers, maxDemuxTries the
// header pairs tried: the work stays linear in the input.
const (
	demuxWindow   = 600
	maxDemuxTries = 8
)

// part is a position in a report's printing order.
type part int

const (
	partNone part = iota - 1
	partHeader
	partOops
	partCPU
	partHW
	partWQ
	partRIP
	partCode
	partRSP
	partRAX
	partRDX
	partRBP
	partR10
	partR13
	partFS
	partCS
	partCR2
	partDR0
	partDR3
	partPKRU
	partTrace
	partFrame       // frames and <IRQ>/<TASK> markers inside the trace
	partTraceClosed // after </TASK>
	partEnd
	partPost    // RIP … PKRU printed again after the end marker: partPost + (p - partRIP)
	partPanic   = partPost + partPKRU - partRIP + 1
	partOffset  = partPanic + 1
	partEndPnc  = partPanic + 2
	partModules = 1000 // placed by its own rule
	partFrag    = 1001 // a module-list fragment
)

// mandatory parts are printed by every x86 report that has them at all: skipping one
// costs 1, skipping an optional one nothing.
var mandatory = map[part]bool{partCPU: true, partRIP: true, partRSP: true, partRAX: true, partRDX: true,
	partRBP: true, partR10: true, partR13: true, partFS: true, partCS: true, partCR2: true, partEnd: true}

var regRows = map[string]part{"RAX:": partRAX, "RDX:": partRDX, "RBP:": partRBP, "R10:": partR10, "R13:": partR13,
	"FS:": partFS, "CS:": partCS, "CR2:": partCR2, "DR0:": partDR0, "DR3:": partDR3, "PKRU:": partPKRU}

var cpuOfLine = regexp.MustCompile(`^(?:WARNING: )?CPU: ([0-9]+) `)

// partOf classifies a line body.
func partOf(b string) part {
	t := strings.TrimSpace(b)
	switch {
	case t == "":
		return partNone
	case strings.HasPrefix(t, "Modules linked in:"):
		return partModules
	case strings.HasPrefix(t, "CPU: "):
		return partCPU
	case strings.HasPrefix(t, "Hardware name:"):
		return partHW
	case strings.HasPrefix(t, "Workqueue:"):
		return partWQ
	case strings.HasPrefix(t, "RIP: ") || strings.HasPrefix(t, "EIP: "):
		return partRIP
	case strings.HasPrefix(t, "Code: "):
		return partCode
	case strings.HasPrefix(t, "RSP: ") || strings.HasPrefix(t, "ESP: "):
		return partRSP
	case t == "Call Trace:" || t == "Call trace:":
		return partTrace
	case strings.HasPrefix(t, "---[ end trace"):
		return partEnd
	case strings.HasPrefix(t, "Kernel panic - not syncing"):
		return partPanic
	case strings.HasPrefix(t, "Kernel Offset:"):
		return partOffset
	case strings.HasPrefix(t, "---[ end Kernel panic"):
		return partEndPnc
	case strings.HasPrefix(t, "invalid opcode:") || strings.HasPrefix(t, "Oops: "):
		return partOops
	case t[0] == '<' && t[len(t)-1] == '>' || frameName([]byte(strings.TrimPrefix(t, "? "))) != nil:
		return partFrame
	case moduleList(t) && !strings.Contains(t, "+0x"):
		return partFrag
	}
	if i := strings.IndexByte(t, ' '); i > 0 {
		if p, ok := regRows[t[:i]]; ok {
			return p
		}
	}
	return partNone
}

// skipped counts the mandatory parts strictly between from and to.
func skipped(from, to part) int {
	n := 0
	for p := from + 1; p < to; p++ {
		q := p
		if p >= partPost && p < partPanic {
			q = p - partPost + partRIP
		}
		if mandatory[q] {
			n++
		}
	}
	return n
}

// stream is one report being separated out.
type stream struct {
	at      part
	cpu     int // -1 when unknown
	mods    bool
	lines   []int
	shape   int // CPU line, RIP and Call Trace seen
	lastMod bool
}

// place maps p to its position for s: registers inside the trace belong to an
// exception frame, after the end marker to the repeated dump.
func (s *stream) place(p part) (part, bool) {
	inTrace := s.at >= partTrace && s.at < partTraceClosed
	if inTrace && (p == partFrame || p >= partRIP && p < partTrace) {
		return s.at, true
	}
	if s.at >= partEnd && p >= partRIP && p < partTrace {
		p = partPost + p - partRIP
	}
	return p, p >= s.at
}

// cost says how well a line of part p continues s; ok is false when it cannot.
func (s *stream) cost(p part, cpu int) (int, bool) {
	switch p {
	case partModules:
		// An oops prints its modules after the trace, a WARN before its CPU line.
		return 0, !s.mods && (s.at <= partOops || s.at >= partTrace)
	case partFrag:
		if s.lastMod {
			return 0, true
		}
		return 5, s.mods
	case partCPU:
		if s.cpu >= 0 && cpu >= 0 && s.cpu != cpu {
			return 0, false
		}
	}
	q, ok := s.place(p)
	if !ok {
		return 0, false
	}
	return skipped(s.at, q), true
}

func (s *stream) take(i int, p part, cpu int) {
	s.lines = append(s.lines, i)
	s.lastMod = p == partModules || p == partFrag && s.lastMod
	switch p {
	case partModules:
		s.mods = true
		return
	case partFrag, partNone:
		return
	case partCPU:
		if cpu >= 0 {
			s.cpu = cpu
		}
		s.shape++
	case partRIP, partTrace:
		if s.at < partTrace {
			s.shape++
		}
	}
	if q, ok := s.place(p); ok {
		s.at = q
	}
}

// demux separates two interleaved reports (see the comment at the top of the file).
func demux(lines []rline) []rline {
	var headers []int
	for i := range lines {
		if lines[i].text == "\x00" {
			continue
		}
		ctx, n := lineContext([]byte(lines[i].text))
		if ctx != ctxNone && ctx != ctxConsole {
			continue // caller ids separate the CPUs already
		}
		b := []byte(lines[i].text[n:])
		if rec := claim(b); rec != nil && !rec.continues && !matchAny(b, startIgnores) {
			headers = append(headers, i)
		}
	}
	for k, tries := 0, 0; k+1 < len(headers) && tries < maxDemuxTries; k++ {
		i, j := headers[k], headers[k+1]
		if j-i > 4 || j == i {
			continue
		}
		tries++
		if out, ok := split(lines, i, j); ok {
			return out
		}
	}
	return lines
}

// split assigns the lines from header i on to the report of header i or of header j.
func split(lines []rline, i, j int) ([]rline, bool) {
	a := &stream{at: partHeader, cpu: -1}
	b := &stream{at: partHeader, cpu: -1}
	if m := cpuOfLine.FindStringSubmatch(lines[j].body()); m != nil {
		b.cpu, _ = strconv.Atoi(m[1])
	}
	end := min(len(lines), i+demuxWindow)
	last := a
	for k := i; k < end; k++ {
		body := lines[k].body()
		switch {
		case k == i:
			a.take(k, partHeader, -1)
			continue
		case k == j:
			b.take(k, partHeader, -1)
			last = b
			continue
		case k < j:
			a.take(k, partOf(body), -1)
			continue
		}
		p := partOf(body)
		if t := strings.TrimSpace(body); p == partFrame && (t == "</TASK>" || t == "<EOE>") {
			// The end of the task stack closes the trace.
			for _, sa := range []*stream{a, b} {
				if sa.at >= partTrace && sa.at < partTraceClosed {
					sa.take(k, p, -1)
					sa.at, last = partTraceClosed, sa
					break
				}
			}
			if last.at == partTraceClosed && last.lines[len(last.lines)-1] == k {
				continue
			}
		}
		cpu := -1
		if m := cpuOfLine.FindStringSubmatch(strings.TrimSpace(body)); m != nil && p == partCPU {
			cpu, _ = strconv.Atoi(m[1])
		}
		if p == partNone {
			if strings.TrimSpace(body) == "" || claim([]byte(body)) == nil {
				last.take(k, p, cpu)
				continue
			}
			end = k // a third report: stop here
			break
		}
		ca, oka := a.cost(p, cpu)
		cb, okb := b.cost(p, cpu)
		switch {
		case oka && (!okb || ca <= cb):
			a.take(k, p, cpu)
			last = a
		case okb:
			b.take(k, p, cpu)
			last = b
		default:
			end = k // neither report can take it: the interleaving is over
		}
		if end == k {
			break
		}
	}
	if a.shape < 2 || b.shape < 2 {
		return nil, false
	}
	out := make([]rline, 0, len(lines))
	out = append(out, lines[:i]...)
	for _, s := range []*stream{a, b} {
		for _, k := range s.lines {
			l := lines[k]
			if s == b {
				l.events = append(l.events, repDemux)
			}
			out = append(out, l)
		}
	}
	return append(out, lines[end:]...), true
}
