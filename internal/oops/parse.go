package oops

import (
	"bytes"
	"regexp"
	"strings"
	"sync"
)

// Parse finds every crash report in log, in order, and parses each one.
//
// log may be console or serial text, dmesg output, a plain netconsole stream, extended
// netconsole or /dev/kmsg records, or a syslog/journal export. The first report's title
// agrees with syzkaller's parser on the same log; later reports are those that start
// after the previous one ends. Cost: one pass over log at memory speed to find
// candidate lines, then work proportional to the reports found (each report reads at
// most maxReportLines lines). Parse never panics and returns nil when log holds no report.
func Parse(log []byte) []*Report {
	text, m := normalize(log)
	ols := findOopsLines(text)
	if len(ols) == 0 {
		return nil
	}
	var events []repairEvent
	if damaged(text) {
		var rm mapping
		text, rm, events = repair(text)
		m = rm.then(m)
		ols = findOopsLines(text)
	}
	var reports []*Report
	spanEnd := -1
	disconnected := bytes.Contains(text, vmDisconnected)
	scratch := scratchPool.Get().([]byte)[:0] // report text buffer, reused from report to report
	defer func() {
		if cap(scratch) <= 1<<20 {
			scratchPool.Put(scratch[:0])
		}
	}()
	for i, ol := range ols {
		if ol.rec == nil || ol.pos <= spanEnd {
			continue
		}
		tail := maxReportLines
		if len(reports) > 0 {
			tail = laterTail
		}
		r := build(text, ols, i, tail, &scratch)
		if r == nil {
			continue
		}
		spanEnd = r.End
		r.Repairs = repairsIn(events, r.Start, r.End)
		r.Start, r.End = m.toInput(r.Start, false), m.toInput(r.End, true)
		if disconnected {
			// GCE's serial console prints this when it drops: the report is cut short.
			r.Corrupted, r.CorruptedReason = true, "console disconnected"
		}
		reports = append(reports, r)
	}
	return dropEchoes(reports)
}

// dropEchoes removes a report that only echoes another one: the same Code bytes (and
// IP, when the echo has one) printed twice (syslogd's wall copy of the emergency lines,
// a second console replaying the headline), where the echo has no frames.
func dropEchoes(reports []*Report) []*Report {
	if len(reports) < 2 {
		return reports
	}
	out := reports[:0]
	for i, r := range reports {
		echo := false
		if len(r.Frames) == 0 && r.Code != nil && len(r.Code.Bytes) > 0 {
			for j, o := range reports {
				if j != i && o.Code != nil && bytes.Equal(o.Code.Bytes, r.Code.Bytes) && len(o.Frames) > 0 &&
					(r.IP == nil || o.IP != nil && o.IP.Func == r.IP.Func && o.IP.Offset == r.IP.Offset) {
					echo = true
					break
				}
			}
		}
		if !echo {
			out = append(out, r)
		}
	}
	return out
}

// Detect reports whether log holds at least one crash report. It is the fast path of
// Parse: one scan of the log, no report parsing.
func Detect(log []byte) bool {
	text, _ := normalize(log)
	for _, ol := range findOopsLines(text) {
		if ol.rec != nil {
			return true
		}
	}
	return false
}

var vmDisconnected = []byte("serialport: VM disconnected.")

// scratchPool holds report text buffers between Parse calls (the text never outlives a
// report's analysis).
var scratchPool = sync.Pool{New: func() any { return make([]byte, 0, 16<<10) }}

func build(text []byte, ols []oopsLine, idx, tail int, scratch *[]byte) *Report {
	ol := ols[idx]
	rt := collect(text, ols, idx, tail, *scratch)
	defer func() { *scratch = rt.full }()
	full := rt.full
	titleText := full[:rt.titleLen]
	title, corrupted, alts, fm := describe(ol.rec, titleText, full)
	if title == "" {
		// The filtered text lost the header (another context): use the raw span.
		raw := text[ol.pos:rt.spanEnd]
		title, corrupted, alts, fm = describe(ol.rec, raw, raw)
		if title == "" {
			title = string(bytes.TrimSpace(text[ol.pos:ol.end]))
		}
	}
	if corrupted == "" {
		corrupted = checkCorrupted(title, full, fm)
	}
	if ol.rec.kind == KindMCE {
		title = fatalMCETitle(title, full)
	}
	r := &Report{
		Title:     cleanTitle(title),
		Corrupted: corrupted != "",
		Kind:      ol.rec.kind,
		Start:     ol.pos,
		End:       rt.spanEnd,
		Frames:    make([]Frame, 0, 32),
		AltTitles: []string{},
	}
	r.CorruptedReason = corrupted
	for _, a := range alts {
		r.AltTitles = append(r.AltTitles, cleanTitle(a))
	}
	r.AltTitles = unique(r.AltTitles)
	if r.AltTitles == nil {
		r.AltTitles = []string{}
	}
	if fm != nil && fm.kind != "" {
		r.Kind = fm.kind
	}
	r.Type = titleType(r.Title)
	if m := titleFrame.FindStringSubmatch(r.Title); m != nil {
		r.Frame = m[1]
	}
	// Fields come from the lines inside the report's span, questionable frames included
	// (titling drops them).
	lines, joined := spanLines(text, ol.pos, rt.spanEnd)
	r.Message = strings.TrimSpace(lines[0])
	r.Context = contextBefore(text, ol.pos, 5)
	r.Text = joined
	fill(r, lines)
	if rt.panicMsg != "" {
		r.Panicked, r.PanicMsg = true, rt.panicMsg
	}
	refineKind(r, r.Context, lines)
	if r.Registers == nil {
		r.Registers = map[string]uint64{}
	}
	r.Signature = signature(r)
	return r
}

// laterTail is how far past its span a report after the first one is read.
const laterTail = 64

// spanLines returns the lines of text[start:end] of the first line's printk context, with
// console prefixes removed and questionable frames kept (marked "? "), and those lines
// joined with "\n" (the report's Text). The lines are substrings of the joined text: one
// copy of the span, not one for the lines and another for the Text.
func spanLines(text []byte, start, end int) (lines []string, joined string) {
	end = min(end, len(text))
	var b strings.Builder
	b.Grow(end - start)
	kept := 0
	ctx, _ := lineContext(text[start:lineEnd(text, start)])
	cpuTraceback := false
	for pos := start; pos <= end && pos < len(text); {
		e := min(lineEnd(text, pos), end)
		line := text[pos:e]
		lctx, n := lineContext(line)
		if kept == 0 || lctx == ctx || cpuTraceback && len(lctx) > 0 && lctx[0] == 'C' {
			if bytes.Contains(line, []byte("Sending NMI from CPU")) {
				cpuTraceback = true
			}
			if kept > 0 {
				b.WriteByte('\n')
			}
			b.Write(line[n:])
			kept++
		}
		pos = e + 1
	}
	if kept == 0 {
		return nil, ""
	}
	joined = b.String()
	// No line holds a '\n', so splitting the joined text gives the lines back.
	return strings.Split(joined, "\n"), joined
}

// contextBefore returns up to n non-empty lines before pos that share its printk
// context, oldest first, with console prefixes removed.
func contextBefore(text []byte, pos, n int) []string {
	ctx, _ := lineContext(text[pos:lineEnd(text, pos)])
	var out []string
	for end, seen := pos-1, 0; end > 0 && len(out) < n && seen < 10*n; seen++ {
		start := bytes.LastIndexByte(text[:end], '\n') + 1
		line := text[start:end]
		end = start - 1
		lctx, k := lineContext(line)
		if lctx != ctx || len(bytes.TrimSpace(line[k:])) == 0 {
			continue
		}
		out = append([]string{string(line[k:])}, out...)
	}
	return out
}

// refineKind sharpens the kind from what the report says beyond its title: the lines of
// its context, then its own (two slices, read in that order without joining them).
func refineKind(r *Report, context, lines []string) {
	for _, l := range context {
		refineKindLine(r, l)
	}
	for _, l := range lines {
		refineKindLine(r, l)
	}
	if r.Kind == KindPageFault && r.FaultAddress != nil && *r.FaultAddress < 4096 {
		r.Kind = KindNullDeref
	}
}

func refineKindLine(r *Report, l string) {
	switch {
	case strings.Contains(l, " corruption") && (strings.Contains(l, "list_add corruption") || strings.Contains(l, "list_del corruption")):
		if r.Kind == KindBUG || r.Kind == KindWarning {
			r.Kind = KindListCorruption
		}
	case strings.HasPrefix(strings.TrimSpace(l), "refcount_t: "):
		if r.Kind == KindWarning {
			r.Kind = KindRefcount
		}
	}
}

var (
	mceException = regexp.MustCompile(`\[Hardware Error\]: (?:CPU [0-9]+: )?Machine Check Exception`)
	mceRIP       = regexp.MustCompile(`\[Hardware Error\]: RIP (?:[0-9a-f]+:)?<[0-9a-f]+> \{([A-Za-z0-9_.]+)\+`)
)

// fatalMCETitle titles a machine-check report by its fatal exception when one follows
// the corrected-error notice the report starts with ("Machine check events logged",
// printed by the poller for earlier, corrected errors): "MCE: Machine Check Exception
// in copy_process", the function from the exception's RIP line when it names one.
func fatalMCETitle(title string, text []byte) string {
	if !strings.Contains(title, "events logged") && title != "MCE: Machine Check Exception" {
		return title
	}
	loc := mceException.FindIndex(text)
	if loc == nil {
		return title
	}
	title = "MCE: Machine Check Exception"
	if m := mceRIP.FindSubmatch(text[loc[1]:]); m != nil {
		title += " in " + string(m[1])
	}
	return title
}
