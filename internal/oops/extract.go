package oops

import (
	"bytes"
	"fmt"
	"regexp"
	"regexp/syntax"
	"strings"
	"sync"
)

// Limits that bound the work and memory spent on one report, whatever the input.
const (
	maxReportLines = 4000    // lines scanned after a report's first line
	maxReportBytes = 1 << 20 // bytes of report text kept
	gapLines       = 12      // non-report lines that end a report without an end marker
)

var (
	allNeedlesOnce sync.Once
	allNeedles     *prefilter
)

func needles() *prefilter {
	allNeedlesOnce.Do(func() {
		var ns []string
		for _, r := range recognizers {
			ns = append(ns, r.header)
		}
		ns = append(ns, infoWithStack...)
		allNeedles = newPrefilter(ns)
	})
	return allNeedles
}

// oopsLine is a line that starts (or continues) a report.
type oopsLine struct {
	pos, end int
	rec      *recognizer // nil for infoWithStack lines
	// starts is false for lines that never start a second report inside another one.
	starts bool
}

// findOopsLines returns the report lines of text in order.
func findOopsLines(text []byte) []oopsLine {
	var out []oopsLine
	for _, pos := range needles().lines(text) {
		end := lineEnd(text, pos)
		line := text[pos:end]
		if rec := claim(line); rec != nil {
			if truncatedByReplay(text, end) || namedInProse(line, rec.header) {
				continue
			}
			starts := !rec.continues && !matchAny(line, startIgnores) && !bugTrap(text, out, pos, line)
			out = append(out, oopsLine{pos: pos, end: end, rec: rec, starts: starts})
			continue
		}
		for _, s := range infoWithStack {
			if bytes.Contains(line, []byte(s)) {
				out = append(out, oopsLine{pos: pos, end: end, starts: true})
				break
			}
		}
	}
	return out
}

// bugTrap reports whether line is the fault by which an old arm kernel's BUG() stopped,
// right after its "kernel BUG at" line (BUG() stored to address 0 before 2.6.37): it
// belongs to that report.
func bugTrap(text []byte, prev []oopsLine, pos int, line []byte) bool {
	if len(prev) == 0 || prev[len(prev)-1].end+1 != pos || !bytes.Contains(line, []byte("Unable to handle kernel NULL pointer")) {
		return false
	}
	p := prev[len(prev)-1]
	return bytes.Contains(text[p.pos:p.end], []byte("kernel BUG at "))
}

// namedInProse reports whether the header on line is a report named by a person, not
// printed by a kernel: inside Markdown inline code ("`kernel BUG at …`") or as the
// value of a mail or bug-tracker field ("Subject: Re: BUG: …", "Summary: BUG: …").
func namedInProse(line []byte, header string) bool {
	i := bytes.Index(line, []byte(header))
	if i <= 0 {
		return false
	}
	if bytes.Count(line[:i], []byte("`"))%2 == 1 {
		return true
	}
	before := bytes.TrimRight(line[:i], " ")
	for _, f := range [][]byte{[]byte("Summary:"), []byte("Subject:"), []byte("Re:")} {
		if bytes.HasSuffix(before, f) {
			return true
		}
	}
	return false
}

// recognizerHeaders holds each recognizer's header as bytes, for claim: a []byte(string)
// conversion longer than 32 bytes allocates, and claim runs on every candidate line.
var recognizerHeaders = func() [][]byte {
	hs := make([][]byte, len(recognizers))
	for i, r := range recognizers {
		hs[i] = []byte(r.header)
	}
	return hs
}()

// claim returns the first recognizer whose header is in line, or nil.
func claim(line []byte) *recognizer {
	for i, r := range recognizers {
		if !bytes.Contains(line, recognizerHeaders[i]) {
			continue
		}
		if r.match != nil && !r.match.Match(line) {
			continue
		}
		if matchAny(line, r.ignore) {
			continue
		}
		return r
	}
	return nil
}

// truncatedByReplay reports whether the line after end says the console replayed an
// earlier message, which cuts the report short (printk's "** replaying previous printk
// message **").
func truncatedByReplay(text []byte, end int) bool {
	if end >= len(text) {
		return false
	}
	next := text[end+1 : lineEnd(text, end+1)]
	return bytes.Contains(next, []byte("** replaying previous printk message **"))
}

// reportText is a report's lines with console prefixes removed, as the title logic and
// the field parser see them.
type reportText struct {
	full     []byte // kept lines, stripped, each ending in '\n'
	titleLen int    // bytes of full in the title region
	spanEnd  int    // end offset in text of the report span
	panicMsg string
}

// collect gathers the report starting at oops line idx, following the kernel's console
// conventions: only lines of the same printk context count (all CPUs after "Sending
// NMI"), questionable frames are dropped, a second report ends the title region, and a
// panic after a long enough report is left out of it (panic_on_warn adds a second stack).
//
// After the report's own span, at most tail more lines are read: the first report of a
// log reads on as far as syzkaller does (its corruption check looks at them), later ones
// a little, which keeps logs made of many reports linear.
//
// scratch, when not nil, is reused for the report text, which must then not outlive the
// next call.
func collect(text []byte, ols []oopsLine, idx int, tail int, scratch []byte) *reportText {
	start := ols[idx].pos
	firstLine := text[start:ols[idx].end]
	ctx, _ := lineContext(firstLine)
	minLines := 22
	if bytes.Contains(firstLine, []byte("BUG: KMSAN:")) {
		minLines = 16 // KMSAN reports are short: no call-trace header
	}
	// handle_bad_stack() prints the registers, then its panic carries the trace.
	badStack := bytes.Contains(firstLine, []byte("Insufficient stack space"))
	rt := &reportText{}
	next := idx + 1
	second := -1 // position of the next report start
	skipText, cpuTraceback := false, false
	textLines, gap := 0, 0
	rt.full = scratch[:0]
	spanDone := false
	rt.spanEnd = ols[idx].end
	after := 0
	for pos, n := start, 0; pos < len(text) && n < maxReportLines && after <= tail; n++ {
		if spanDone {
			after++
		}
		end := lineEnd(text, pos)
		line := text[pos:end]
		first := pos == start
		isOops := false
		for next < len(ols) && ols[next].pos < pos {
			next++
		}
		if next < len(ols) && ols[next].pos == pos {
			isOops = true
			if !first && second < 0 && ols[next].starts {
				second = pos
				spanDone = true
			}
		}
		lctx, pn := lineContext(line)
		stripped, questionable := stripLine(line, lctx, pn)
		sameCtx := lctx == ctx || cpuTraceback && len(lctx) > 0 && lctx[0] == 'C'
		if !spanDone {
			switch {
			case bytes.HasPrefix(stripped, []byte("---[ end Kernel panic")):
				rt.spanEnd, spanDone = end, true
			case isOops || questionable || reportish(stripped):
				rt.spanEnd, gap = end, 0
			default:
				if gap++; gap >= gapLines {
					spanDone = true
				}
			}
			if rt.panicMsg == "" {
				if _, msg, ok := bytes.Cut(stripped, []byte("Kernel panic - not syncing: ")); ok {
					rt.panicMsg = string(bytes.TrimSpace(msg))
				}
			}
		}
		if !first && (questionable || !sameCtx) {
			pos = end + 1
			continue
		}
		textLines++
		skipLine := skipText
		switch {
		case bytes.Contains(line, []byte("Disabling lock debugging due to kernel taint")):
			skipLine = true
		case bytes.Contains(line, []byte("Sending NMI from CPU")):
			cpuTraceback = true
		case (bytes.Contains(line, []byte("Kernel panic - not syncing")) && !(badStack && bytes.Contains(line, []byte("tack overflow"))) ||
			bytes.Contains(line, []byte("WARNING: possible circular locking dependency detected"))) && textLines > minLines:
			skipText, skipLine = true, true
		}
		if !first && skipLine {
			pos = end + 1
			continue
		}
		if len(rt.full) < maxReportBytes {
			rt.full = append(rt.full, stripped...)
			rt.full = append(rt.full, '\n')
			if second < 0 || ctx != ctxNone && ctx != ctxConsole {
				rt.titleLen = len(rt.full)
			}
		}
		pos = end + 1
	}
	return rt
}

// reportish tells lines that belong to a crash report from ordinary log messages, to
// find where a report without an end marker stops.
func reportish(s []byte) bool {
	if len(s) == 0 {
		return false
	}
	if s[0] == ' ' || s[0] == '\t' || s[0] == '<' || s[0] == '>' || s[0] == '=' || s[0] == '[' || s[0] == '#' || s[0] == '-' {
		return true
	}
	// Register dumps: "RAX: …", "R10: …", "x29: …", "pc : …".
	if i := bytes.IndexByte(s, ':'); i > 0 && i <= 6 {
		allCaps := true
		for _, c := range s[:i] {
			if !(c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == ' ' || c >= 'a' && c <= 'z' && i <= 4) {
				allCaps = false
				break
			}
		}
		if allCaps {
			return true
		}
	}
	for _, p := range reportishPrefixes {
		if bytes.HasPrefix(s, p) {
			return true
		}
	}
	return frameName(s) != nil
}

var reportishPrefixes = func() [][]byte {
	var out [][]byte
	for _, s := range []string{"Hardware name:", "Call Trace:", "Call trace:", "Modules linked in:", "Kernel Offset:",
		"Kernel panic", "PGD ", "Oops", "Workqueue:", "Mem abort info:", "Data abort info:", "Internal error:",
		"Memory state around", "The buggy address", "Allocated by task", "Freed by task", "Last potentially",
		"Second to last", "page:", "page ", "flags:", "raw:", "Object ", "Redzone ", "Padding ", "Bytes b4", "Slab ",
		"FIX ", "INFO:", "BUG", "WARNING", "Disabling lock debugging", "irq event stamp", "hardirqs", "softirqs",
		"other info", "stack backtrace", "Possible unsafe", "*** DEADLOCK", "the existing dependency", "Chain exists",
		"lock held", "locks held", "no locks held", "NMI backtrace", "Sending NMI", "rcu:", "task:", "Showing",
		"Uninit was", "Local variable", "CPU:", "CPU ", "Read of size", "Write of size", "usercopy:", "list_add corruption",
		"list_del corruption", "kernel BUG", "Unable to handle", "general protection", "KASAN:", "Fixing recursive fault",
		"note:", "Rebooting in", "ESR", "EC ", "SET ", "FSC ", "ISV ", "CM ", "WnR", "user pgtable", "swapper pgtable",
		"Code:", "RIP:", "invalid opcode", "Dumping ftrace", "Shutting down cpus", "Kernel stack", "CR2:", "caller is",
		"preempt_count", "in_atomic", "watchdog:", "Unhandled fault", "refcount_t:", "PANIC:", "stack segment",
		"divide error", "int3", "UBSAN", "KFENCE", "KMSAN", "KCSAN", "Backtrace", "Exception stack", "Stack:",
		"Process ", "Register", "usb ", "ODEBUG", "unreferenced object", "comm ", "hex dump", "backtrace"} {
		out = append(out, []byte(s))
	}
	return out
}()

// describe computes the title of a report the way syzkaller's pkg/report does, so
// titles agree with the syzbot dashboard.
func describe(rec *recognizer, output, full []byte) (title, corrupted string, alts []string, fm *format) {
	startPos := len(output)
	matchedTitle := false
	hdr := headerLines(output, rec.header)
	for i := range rec.formats {
		f := &rec.formats[i]
		match := findTitleIn(f.title, output, rec.header, hdr)
		if match == nil || match[0] > startPos {
			continue
		}
		if match[0] == startPos && title != "" {
			continue
		}
		if match[0] < startPos {
			title, fm, startPos = "", nil, match[0]
		}
		matchedTitle = true
		if f.report != nil {
			if match = f.report.FindSubmatchIndex(output); match == nil {
				continue
			}
		}
		var args []any
		for j := 2; j+1 < len(match); j += 2 {
			if match[j] < 0 {
				args = append(args, "")
				continue
			}
			args = append(args, string(output[match[j]:match[j+1]]))
		}
		corrupted = ""
		var frames []keyFrame
		if f.stack != nil {
			var ok bool
			frames, ok = findFrames(f.stack, output[match[0]:])
			if !ok {
				corrupted = "no frames"
			}
		}
		canon := append([]any{}, args...)
		for _, fr := range frames {
			canon = append(canon, fr.canonical)
		}
		title = fmt.Sprintf(f.fmt, canon...)
		for _, a := range f.alt {
			alts = append(alts, fmt.Sprintf(a, canon...))
		}
		// Titles with partly stripped syscall prefixes help match older reports.
		for p := -1; p < len(syscallPrefixes); p++ {
			list := append([]any{}, args...)
			changed := p < 0
			for _, fr := range frames {
				s := fr.raw
				if p >= 0 {
					if t, ok := cutPrefix(s, syscallPrefixes[p]); ok {
						s, changed = t, true
					}
				}
				list = append(list, s)
			}
			if !changed {
				continue
			}
			if t := fmt.Sprintf(f.fmt, list...); t != title {
				alts = append(alts, t)
			}
			for _, a := range f.alt {
				alts = append(alts, fmt.Sprintf(a, list...))
			}
		}
		fm = f
	}
	alts = unique(alts)
	if title == "" {
		if matchedTitle {
			corrupted = "matched title but not report regexp"
		}
		pos := bytes.Index(output, []byte(rec.header))
		if pos < 0 {
			return
		}
		end := bytes.IndexByte(output[pos:], '\n')
		if end < 0 {
			end = len(output) - pos
		}
		title = string(output[pos : pos+end])
	}
	if corrupted == "" && fm != nil && fm.corrupted {
		corrupted = "report format is marked as corrupted"
	}
	return
}

// titleScan caches, per title regexp, its literal prefix and whether it can only match
// within one line (no newline, \s, anchors or TASK macro in its source).
type titleScan struct {
	prefix     []byte
	need       []byte // a literal every match contains (the longest top-level one)
	singleLine bool
}

// requiredLiteral returns the longest literal that a top-level concatenation of the
// pattern requires, or nil.
func requiredLiteral(src string) []byte {
	t, err := syntax.Parse(src, syntax.Perl)
	if err != nil {
		return nil
	}
	t = t.Simplify()
	if t.Op == syntax.OpLiteral && t.Flags&syntax.FoldCase == 0 {
		return []byte(string(t.Rune))
	}
	var best []byte
	if t.Op == syntax.OpConcat {
		for _, c := range t.Sub {
			if c.Op == syntax.OpLiteral && c.Flags&syntax.FoldCase == 0 && len(string(c.Rune)) > len(best) {
				best = []byte(string(c.Rune))
			}
		}
	}
	return best
}

var titleScans sync.Map // *regexp.Regexp → titleScan

func scanOf(r *regexp.Regexp) titleScan {
	if v, ok := titleScans.Load(r); ok {
		return v.(titleScan)
	}
	p, _ := r.LiteralPrefix()
	src := r.String()
	ts := titleScan{prefix: []byte(p), need: requiredLiteral(src),
		singleLine: p != "" && !strings.ContainsAny(src, "^$") && !strings.Contains(src, `\n`) &&
			!strings.Contains(src, `\s`) && !strings.Contains(src, "space")}
	titleScans.Store(r, ts)
	return ts
}

// headerLines returns the [start, end) ranges of the lines of output holding header.
func headerLines(output []byte, header string) [][2]int {
	var out [][2]int
	h := []byte(header)
	for from := 0; from < len(output); {
		i := bytes.Index(output[from:], h)
		if i < 0 {
			break
		}
		at := from + i
		ls := bytes.LastIndexByte(output[:at], '\n') + 1
		le := lineEnd(output, at)
		out = append(out, [2]int{ls, le})
		from = le + 1
	}
	return out
}

// findTitleIn is findTitle for a pattern whose literal prefix contains the family
// header: a one-line match can only be on a line holding the header.
func findTitleIn(r *regexp.Regexp, output []byte, header string, hdr [][2]int) []int {
	ts := scanOf(r)
	if !ts.singleLine || !bytes.Contains(ts.prefix, []byte(header)) {
		return findTitle(r, output)
	}
	for _, l := range hdr {
		line := output[l[0]:l[1]]
		if !bytes.Contains(line, ts.prefix) || len(ts.need) > 0 && !bytes.Contains(line, ts.need) {
			continue
		}
		if m := r.FindSubmatchIndex(line); m != nil {
			return shift(m, l[0])
		}
	}
	return nil
}

// findTitle is r.FindSubmatchIndex(output), made cheap: the regexp only runs where its
// literal prefix occurs, and for one-line patterns only on the lines holding it.
func findTitle(r *regexp.Regexp, output []byte) []int {
	ts := scanOf(r)
	at := 0
	if len(ts.prefix) > 0 {
		if at = bytes.Index(output, ts.prefix); at < 0 {
			return nil
		}
	}
	if !ts.singleLine {
		return shift(r.FindSubmatchIndex(output[at:]), at)
	}
	for at >= 0 {
		ls := bytes.LastIndexByte(output[:at], '\n') + 1
		le := lineEnd(output, at)
		if m := r.FindSubmatchIndex(output[ls:le]); m != nil {
			return shift(m, ls)
		}
		if le >= len(output) {
			return nil
		}
		next := bytes.Index(output[le:], ts.prefix)
		if next < 0 {
			return nil
		}
		at = le + next
	}
	return nil
}

func shift(m []int, by int) []int {
	for k := range m {
		if m[k] >= 0 {
			m[k] += by
		}
	}
	return m
}

func cutPrefix(s, p string) (string, bool) {
	if len(s) >= len(p) && s[:len(p)] == p {
		return s[len(p):], true
	}
	return s, false
}

func unique(ss []string) []string {
	var out []string
	seen := map[string]bool{}
	for _, s := range ss {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}

// firstMatch returns the start of the first match of key in text, or -1. key matches
// within one line and contains lit: only lines holding lit are tried.
func firstMatch(key *regexp.Regexp, lit, text []byte) int {
	for from := 0; from < len(text); {
		i := bytes.Index(text[from:], lit)
		if i < 0 {
			return -1
		}
		at := from + i
		ls := bytes.LastIndexByte(text[:at], '\n') // the newline before the line, or -1
		le := lineEnd(text, at)
		lo := max(ls, 0)
		if m := key.FindIndex(text[lo:le]); m != nil {
			return lo + m[0]
		}
		from = le
	}
	return -1
}

// stackStartLiterals[i] is a substring every match of stackStarts[i] contains.
var stackStartLiterals = [][]byte{[]byte("Call "), []byte("Allocated:"), []byte("Allocated by task "), []byte("Freed:"),
	[]byte("Freed by task "), []byte("backtrace"), []byte("Backtrace:"), []byte("Uninit was stored"), []byte("badaddr: ")}

var timestampInTitle = regexp.MustCompile(`\[ *[0-9]+\.[0-9]+\]`)

// checkCorrupted applies syzkaller's rules: a title with a timestamp in it is
// interleaved; a report that announces a stack must show a frame soon after.
func checkCorrupted(title string, report []byte, fm *format) string {
	if timestampInTitle.MatchString(title) {
		return "title matches corrupted regexp"
	}
	if fm == nil || fm.noStack {
		return ""
	}
	hasStack := false
	for ki, key := range stackStarts {
		at := firstMatch(key, stackStartLiterals[ki], report)
		if at < 0 {
			continue
		}
		// The next 15 lines (without splitting the whole rest of the report).
		var frames [16][]byte
		nf := 0
		for p := at; p <= len(report) && nf < len(frames); nf++ {
			e := lineEnd(report, p)
			frames[nf] = report[p:e]
			p = e + 1
		}
		if nf < 4 {
			return "call trace is missed"
		}
		bad := true
	scan:
		for i := 1; i < nf; i++ {
			if isStackStart(frames[i]) {
				break scan
			}
			if bytes.Contains(frames[i], []byte("(stack is not available)")) || lineFrames(frames[i]) != nil {
				hasStack, bad = true, false
				break
			}
		}
		if key != riscvStackStart && bad {
			return "no frames in a stack trace"
		}
	}
	if !hasStack {
		return "no stack trace in report"
	}
	return ""
}

// titleType maps a title to syzkaller's bug class.
func titleType(title string) string {
	for _, t := range titleTypes {
		for _, p := range t.prefixes {
			if len(title) >= len(p) && title[:len(p)] == p {
				return t.typ
			}
		}
	}
	return ""
}
