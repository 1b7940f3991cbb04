package oops

import (
	"bytes"
	"fmt"
	"regexp"
	"strings"
)

// Reports pasted into mails, forums and bug trackers reach kcrash damaged. repair turns
// such text back into console lines, one kernel line per line:
//
//   - transport prefixes are stripped: mail quoting ("> ", "> > "), syslog and journal
//     headers (with or without host, RFC 3339 stamps, the "kernel:" wall form),
//     `dmesg -T` stamps, raw "<N>" printk levels, indentation in front of a console
//     timestamp; a console timestamp glued to its text gets its space back;
//   - quoted-printable soft breaks ("=" at the end of a line) are undone and =XX escapes
//     decoded;
//   - lines a mailer, a forum or a terminal wrapped are re-joined to the line they
//     continue (see continues);
//   - "[]" left where a web page ate a "[<ffffffff…>]" address is removed, which leaves
//     the modern address-less frame layout.
//
// Every repair is recorded with its place in the output, so a report can say what was
// done to the text it was read from (Report.Repairs).

// repairKind is one kind of repair.
type repairKind uint8

const (
	repPrefix    repairKind = iota // transport prefix stripped
	repQuote                       // mail quoting removed
	repSoftBreak                   // quoted-printable soft break undone
	repRejoin                      // wrapped line re-joined
	repAddr                        // frame address lost ("[]")
	repUncertain                   // a line re-joined on width alone: could be read two ways
	repDemux                       // a line given to one of two interleaved reports by content
	repReversed                    // a newest-first log put back in printing order
	numRepairKinds
)

// repairEvent is a repair at an offset of the repaired text.
type repairEvent struct {
	off  int
	kind repairKind
}

// Repairs says what had to be undone in the text a report was read from, so a reader
// knows why a field may be uncertain. Zero values mean no repair of that kind.
type Repairs struct {
	PrefixesStripped int `json:"prefixes_stripped,omitempty"` // syslog/journal/dmesg -T/<N> prefixes
	Unquoted         int `json:"unquoted,omitempty"`          // lines with mail quoting removed
	SoftBreaks       int `json:"soft_breaks,omitempty"`       // quoted-printable soft breaks undone
	Rejoined         int `json:"rejoined,omitempty"`          // wrapped lines re-joined
	MissingAddresses int `json:"missing_addresses,omitempty"` // frame addresses lost ("[] func")
	// Uncertain counts re-joins decided on line width alone (the line could also be read
	// as a line of its own).
	Uncertain int `json:"uncertain,omitempty"`
	// Deinterleaved counts lines of two reports printed at once (no caller ids) that were
	// told apart by content; each is a judgement, so uncertain too.
	Deinterleaved int `json:"deinterleaved,omitempty"`
	// Reversed counts lines of a newest-first log put back in printing order.
	Reversed int `json:"reversed,omitempty"`
}

func (r *Repairs) add(k repairKind) {
	switch k {
	case repPrefix:
		r.PrefixesStripped++
	case repQuote:
		r.Unquoted++
	case repSoftBreak:
		r.SoftBreaks++
	case repRejoin:
		r.Rejoined++
	case repAddr:
		r.MissingAddresses++
	case repUncertain:
		r.Uncertain++
	case repDemux:
		r.Deinterleaved++
	case repReversed:
		r.Reversed++
	}
}

// String is the repairs in words, e.g. "re-joined 3 wrapped lines; 14 frame addresses
// missing"; "" when nothing was repaired.
func (r *Repairs) String() string {
	if r == nil {
		return ""
	}
	var parts []string
	plural := func(n int, one, many string) string {
		if n == 1 {
			return one
		}
		return many
	}
	if r.PrefixesStripped > 0 {
		parts = append(parts, fmt.Sprintf("stripped log prefixes from %d %s", r.PrefixesStripped, plural(r.PrefixesStripped, "line", "lines")))
	}
	if r.Unquoted > 0 {
		parts = append(parts, fmt.Sprintf("removed mail quoting from %d %s", r.Unquoted, plural(r.Unquoted, "line", "lines")))
	}
	if r.SoftBreaks > 0 {
		parts = append(parts, fmt.Sprintf("undid %d quoted-printable soft %s", r.SoftBreaks, plural(r.SoftBreaks, "break", "breaks")))
	}
	if r.Rejoined > 0 {
		parts = append(parts, fmt.Sprintf("re-joined %d wrapped %s", r.Rejoined, plural(r.Rejoined, "line", "lines")))
	}
	if r.Uncertain > 0 {
		parts = append(parts, fmt.Sprintf("%d of them on line width alone (uncertain)", r.Uncertain))
	}
	if r.Deinterleaved > 0 {
		parts = append(parts, fmt.Sprintf("told %d interleaved %s apart by content (uncertain)", r.Deinterleaved, plural(r.Deinterleaved, "line", "lines")))
	}
	if r.Reversed > 0 {
		parts = append(parts, fmt.Sprintf("put %d %s of a newest-first log back in order", r.Reversed, plural(r.Reversed, "line", "lines")))
	}
	if r.MissingAddresses > 0 {
		parts = append(parts, fmt.Sprintf("%d frame %s missing", r.MissingAddresses, plural(r.MissingAddresses, "address", "addresses")))
	}
	return strings.Join(parts, "; ")
}

var (
	// Syslog/journal headers in their common shapes: "Nov 22 01:47:00 host kernel: ",
	// "2025-11-25T02:05:51.266920+00:00 host kernel: ", " kernel:" (syslogd wall
	// messages), with the double space some daemons print, or a bare date and a tab (a
	// log viewer's export).
	loosePrefix = regexp.MustCompile(`^(?:(?:[A-Za-z][a-z]{2} +[0-9]{1,2} [0-9]{2}:[0-9]{2}:[0-9]{2}|[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9:.,+-]+Z?)(?:(?: +[^ :\[]+)?? +kernel: ?|[ \t]+)| *kernel: ?|` +
		` *[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]+)? +[^ :\[]+ +kernel: ?)`) // the last: a header whose date was cut
	monoKernel    = regexp.MustCompile(`^(\[ *[0-9]+\.[0-9]+\]) kernel: ?`)
	monoKernelAny = regexp.MustCompile(`(?m)^\[ *[0-9]+\.[0-9]+\] kernel: `) // kernelPrefixes checks it by hand (monoStamp)
	commentLeader = regexp.MustCompile(`^[ \t]{0,4}\* \[ *[0-9]+\.[0-9]+\]`)
	dmesgT        = regexp.MustCompile(`^\[(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun) [A-Z][a-z]{2} [ 0-9][0-9] [0-9:]{8} [0-9]{4}\](?: |$)`)
	// A console timestamp, maybe indented or glued to its text.
	tsGlued = regexp.MustCompile(`^[ \t]*(\[ *[0-9]+\.[0-9]+\](?:\[ *[CT][0-9]+\])?) ?`)
)

// damaged reports whether text shows transport damage worth repairing. It looks at the
// lines only, mostly at their first and last bytes: clean console text costs one scan.
func damaged(text []byte) bool {
	if emptyAddrs(text) || kernelPrefixes(text) {
		return true
	}
	quoted, soft, prevCode := 0, 0, false
	up, down := 0, 0
	var prevTS []byte
	for pos := 0; pos < len(text); {
		end := lineEnd(text, pos)
		line := text[pos:end]
		pos = end + 1
		if len(line) == 0 {
			prevCode = false
			continue
		}
		switch c := line[0]; c {
		case '>', '|':
			if quoted++; quoted >= 3 {
				return true
			}
		case '<':
			if len(line) > 3 && line[2] == '>' && line[1] >= '0' && line[1] <= '7' && line[3] != '[' {
				return true // a printk level without a timestamp
			}
		case ' ', '\t':
			i := 0
			for i < len(line) && (line[i] == ' ' || line[i] == '\t') {
				i++
			}
			if i < len(line) && line[i] == '[' {
				if _, _, n := contextSpan(line, i); n > 0 {
					return true // an indented console line
				}
			}
			if i <= 4 && i < len(line) && (line[i] == '>' || (line[i] == '|' || line[i] == '*' && i+2 < len(line) && line[i+2] == '[') &&
				i+1 < len(line) && line[i+1] == ' ') {
				if quoted++; quoted >= 3 {
					return true // indented quoting ("  |  ", "  > ")
				}
			}
		case '[':
			if len(line) > 1 && line[1] >= 'A' && line[1] <= 'Z' && dmesgT.Match(line) {
				return true
			}
		case '+', 'k':
			if bytes.HasPrefix(line, []byte("+0x")) || bytes.HasPrefix(line, []byte("knlGS:")) {
				return true
			}
		}
		if line[len(line)-1] == '=' {
			if soft++; soft >= 3 {
				return true
			}
		}
		n := prefixLen(line)
		body := line[n:]
		if n > 0 && line[0] == '[' {
			// Console stamps are fixed-width and space-padded ("[%5lu.%06lu]"): they
			// compare as bytes, a longer one being later.
			ts := line[:bytes.IndexByte(line, ']')+1]
			if prevTS != nil {
				if c := compareStamps(ts, prevTS); c < 0 {
					if down++; down >= 4 && down > 2*up {
						return true // newest first
					}
				} else if c > 0 {
					up++
				}
			}
			prevTS = ts
		}
		if prevCode && n == 0 && isHexBytes(body) {
			return true
		}
		tb := bytes.TrimLeft(body, " ")
		if prevCode && n == 0 && isHexBytes(tb) {
			return true
		}
		if len(tb) > 10 && tb[0] == 'C' && (bytes.Equal(tb, []byte("Call Trace:")) || bytes.Equal(tb, []byte("Call trace:"))) &&
			framesAbove(text, end-len(line), 2) {
			return true // frames above their "Call Trace:": a newest-first log
		}
		prevCode = len(tb) > 6 && tb[0] == 'C' && bytes.HasPrefix(tb, []byte("Code: "))
		if len(body) > 2 && body[len(body)-1] == ':' && regNameEnd(body[len(body)-2]) && danglingRegAt(body) {
			return true
		}
	}
	return false
}

// framesAbove reports whether the n non-empty lines above the line starting at pos are
// frame lines (console prefix, indentation, maybe "? ", then a frame). Only a "Call
// Trace:" line asks, so the lines are not checked one by one on the way.
func framesAbove(text []byte, pos, n int) bool {
	for end := pos - 1; n > 0; {
		if end < 0 {
			return false
		}
		start := bytes.LastIndexByte(text[:end], '\n') + 1
		line := text[start:end]
		end = start - 1
		if len(line) == 0 {
			continue // damaged skips empty lines
		}
		body := line[prefixLen(line):]
		tb := bytes.TrimLeft(body, " ")
		if !(len(body) > 1 && body[0] == ' ' && frameName(bytes.TrimPrefix(tb, []byte("? "))) != nil) {
			return false
		}
		n--
	}
	return true
}

// emptyAddrs reports whether a frame or IP line shows "[]" where HTML ate an address.
func emptyAddrs(text []byte) bool {
	for from := 0; ; {
		i := bytes.Index(text[from:], []byte("[] "))
		if i < 0 {
			return false
		}
		at := from + i
		ls := bytes.LastIndexByte(text[:at], '\n') + 1
		_, n := lineContext(text[ls:at])
		pre := bytes.TrimSpace(text[ls+n : at])
		if len(pre) == 0 || bytes.HasSuffix(pre, []byte("IP:")) || bytes.HasSuffix(pre, []byte(":")) || bytes.Equal(pre, []byte("RIP")) {
			return true
		}
		from = at + 3
	}
}

// kernelPrefixes reports whether lines carry syslog/journal "kernel:" headers the
// plain normalizer left (it rewrites only logs made mostly of them).
func kernelPrefixes(text []byte) bool {
	for from := 0; ; {
		i := bytes.Index(text[from:], []byte("kernel:"))
		if i < 0 {
			return false
		}
		at := from + i
		ls := bytes.LastIndexByte(text[:at], '\n') + 1
		if at+7 < len(text) && text[at+7] == ' ' && monoStamp(text[ls:at]) {
			return true // monoKernelAny: a "[  12.345678] kernel: " line
		}
		if at-ls < 80 && loosePrefix.Match(text[ls:lineEnd(text, at)]) {
			if loc := loosePrefix.FindIndex(text[ls:lineEnd(text, at)]); loc != nil && ls+loc[1] > at {
				return true
			}
		}
		from = at + 7
	}
}

// monoStamp reports whether b is "[ *[0-9]+\.[0-9]+\] ", the console stamp that
// monoKernelAny wants at the start of a line before its "kernel: ".
func monoStamp(b []byte) bool {
	if len(b) < 6 || b[0] != '[' || b[len(b)-2] != ']' || b[len(b)-1] != ' ' {
		return false
	}
	b = b[1 : len(b)-2]
	for len(b) > 0 && b[0] == ' ' {
		b = b[1:]
	}
	dot := bytes.IndexByte(b, '.')
	if dot <= 0 || dot == len(b)-1 {
		return false
	}
	for k, c := range b {
		if k != dot && (c < '0' || c > '9') {
			return false
		}
	}
	return true
}

// qpEscape is a quoted-printable escape ("=3D", "=20", "=C3=B6").
var qpEscape = regexp.MustCompile(`=[0-9A-F]{2}`)

// danglingReg is a register dump line whose last value was wrapped away ("… RCX:").
var danglingReg = regexp.MustCompile(`(?:^|\s)(?:R[A-Z0-9]{2}|E[A-Z]{2}|e(?:[a-d]x|[sd]i|[bs]p)|[CD]R[0-9]|x[0-9]{1,2} ?|[CDEFGS]S|knlGS|EFLAGS|ORIG_RAX): ?$`)

// danglingRegAt is danglingReg.Match(body) for a body ending in ':', written out (damaged
// asks it of every line ending in ':', as syzkaller's "executing program 0:"). The name
// before the colon is the line's last run of non-space bytes, since the pattern wants
// start or \s before it; only an "x12 " name may keep a space before the colon.
func danglingRegAt(body []byte) bool {
	s := body[:len(body)-1]
	space := len(s) > 0 && s[len(s)-1] == ' '
	if space {
		s = s[:len(s)-1]
	}
	k := len(s)
	for k > 0 && !isRESpace(s[k-1]) {
		k--
	}
	n := s[k:]
	isX := len(n) >= 2 && len(n) <= 3 && n[0] == 'x' && isDigit(n[1]) && (len(n) == 2 || isDigit(n[2]))
	if space || isX {
		return isX
	}
	upper := func(c byte) bool { return c >= 'A' && c <= 'Z' }
	switch len(n) {
	case 2:
		return n[1] == 'S' && strings.IndexByte("CDEFGS", n[0]) >= 0
	case 3:
		switch n[0] {
		case 'R':
			return (upper(n[1]) || isDigit(n[1])) && (upper(n[2]) || isDigit(n[2]))
		case 'E':
			return upper(n[1]) && upper(n[2])
		case 'e':
			return n[1] >= 'a' && n[1] <= 'd' && n[2] == 'x' || (n[1] == 's' || n[1] == 'd') && n[2] == 'i' ||
				(n[1] == 'b' || n[1] == 's') && n[2] == 'p'
		case 'C', 'D':
			return n[1] == 'R' && isDigit(n[2])
		}
	case 5:
		return string(n) == "knlGS"
	case 6:
		return string(n) == "EFLAGS"
	case 8:
		return string(n) == "ORIG_RAX"
	}
	return false
}

// isRESpace is regexp's \s: [\t\n\f\r ].
func isRESpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\f' || c == '\r'
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// isHexBytes reports whether s is a run of Code bytes: two-digit (or arm64 eight-digit)
// hex tokens, one possibly marked <..> or (..).
func isHexBytes(s []byte) bool {
	fs := bytes.Fields(s)
	if len(fs) == 0 {
		return false
	}
	for _, f := range fs {
		if len(f) > 2 && (f[0] == '<' && f[len(f)-1] == '>' || f[0] == '(' && f[len(f)-1] == ')') {
			f = f[1 : len(f)-1]
		}
		if len(f) != 2 && len(f) != 4 && len(f) != 8 || !isHex(string(f)) {
			return false
		}
	}
	return true
}

// rline is a line being repaired.
type rline struct {
	text      string // without transport prefixes
	in, inEnd int    // source span in the text given to repair
	depth     int    // mail quoting depth
	syslog    bool   // carried a syslog/journal header
	foreign   bool   // another program's syslog line: never a continuation
	ts        bool   // starts with a console timestamp
	rawLen    int    // length as it was posted
	events    []repairKind
}

// repair undoes transport damage in text (see the comment at the top of this file). It
// returns the repaired text, the map back to text, and the repairs made. Cost: linear in
// text; every line is copied once or twice.
func repair(text []byte) ([]byte, mapping, []repairEvent) {
	lines := splitRepairLines(text)
	undoSoftBreaks(lines)
	for i := range lines {
		stripTransport(&lines[i])
	}
	if newestFirst(lines) {
		reverseLines(lines)
	}
	lines = rejoin(lines)
	lines = demux(lines)
	var out bytes.Buffer
	out.Grow(len(text))
	var m mapping
	var ev []repairEvent
	for i := range lines {
		l := &lines[i]
		if n := stripEmptyAddrs(l); n > 0 {
			for k := 0; k < n; k++ {
				l.events = append(l.events, repAddr)
			}
		}
		m = append(m, segment{out: out.Len(), in: l.in, inEnd: l.inEnd})
		for _, k := range l.events {
			ev = append(ev, repairEvent{off: out.Len(), kind: k})
		}
		out.WriteString(l.text)
		out.WriteByte('\n')
	}
	return out.Bytes(), m, ev
}

func splitRepairLines(text []byte) []rline {
	out := make([]rline, 0, bytes.Count(text, []byte("\n"))+1)
	all := string(text) // one allocation; the lines are substrings of it
	for pos := 0; pos < len(text); {
		end := lineEnd(text, pos)
		s := strings.TrimRight(all[pos:end], "\r")
		out = append(out, rline{text: s, in: pos, inEnd: end, rawLen: len(s)})
		pos = end + 1
	}
	return out
}

// undoSoftBreaks joins quoted-printable soft breaks when the text is quoted-printable:
// several lines end in "=" and the text holds =XX escapes or most breaks are soft.
func undoSoftBreaks(lines []rline) {
	soft, escapes := 0, 0
	for _, l := range lines {
		if strings.HasSuffix(l.text, "=") && strings.Trim(l.text, "= ") != "" { // not a "=====" rule
			soft++
		}
		if qpEscape.MatchString(l.text) {
			escapes++
		}
	}
	if soft < 3 || escapes == 0 && soft*5 < len(lines) && soft < 6 {
		return
	}
	for i := range lines {
		l := &lines[i]
		l.text = qpDecode(l.text)
	}
	for i := 0; i < len(lines); i++ {
		l := &lines[i]
		for strings.HasSuffix(l.text, "=") && i+1 < len(lines) && lines[i+1].text != "\x00" && len(l.text) <= maxJoinedLine {
			next := &lines[i+1]
			l.text = l.text[:len(l.text)-1] + next.text
			l.inEnd = next.inEnd
			l.events = append(l.events, repSoftBreak)
			next.text = "\x00" // consumed
			i++
		}
	}
	n := 0
	for _, l := range lines {
		if l.text != "\x00" {
			lines[n] = l
			n++
		}
	}
	for i := n; i < len(lines); i++ {
		lines[i] = rline{text: "\x00"}
	}
}

func qpDecode(s string) string {
	if !strings.Contains(s, "=") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '=' && i+2 < len(s) && isUpperHex(s[i+1]) && isUpperHex(s[i+2]) {
			v := unhex(s[i+1])<<4 | unhex(s[i+2])
			b.WriteByte(v)
			i += 2
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func isUpperHex(c byte) bool { return c >= '0' && c <= '9' || c >= 'A' && c <= 'F' }

func unhex(c byte) byte {
	if c <= '9' {
		return c - '0'
	}
	return c - 'A' + 10
}

// stripTransport removes quoting and log headers from one line.
func stripTransport(l *rline) {
	s := l.text
	if s == "\x00" {
		return
	}
	// Mail quoting: ">", "> >", ">>" with optional spaces.
	d, i := 0, 0
	for i < len(s) {
		j := i
		for j < len(s) && (s[j] == ' ' || s[j] == '\t') && j-i < 4 {
			j++
		}
		if j < len(s) && (s[j] == '>' || s[j] == '|' && j+1 < len(s) && s[j+1] == ' ') {
			d++
			i = j + 1
			continue
		}
		break
	}
	if d > 0 {
		if i < len(s) && s[i] == ' ' {
			i++
		}
		s = s[i:]
		l.depth = d
		l.events = append(l.events, repQuote)
	}
	if strings.Contains(s, "* [") && commentLeader.MatchString(s) {
		// A log pasted into a C block comment: " * [   7.666305] …".
		s = s[strings.IndexByte(s, '*')+2:]
		l.events = append(l.events, repQuote)
	}
	stripped := false
	if loc := loosePrefixIndex(s); loc != nil && loc[1] > 0 && strings.Contains(s[:loc[1]], "kernel:") {
		s = s[loc[1]:]
		l.syslog, stripped = true, true
	} else if loc != nil && loc[1] > 0 && (strings.HasPrefix(s[loc[1]:], "[") || strings.HasPrefix(s[loc[1]:], "<") ||
		s[loc[1]-1] == '\t') && s[0] != ' ' {
		// "Feb 25 05:12:26  [20079.489376]": a header without "kernel:"; "2016-12-17
		// 00:21:07<TAB>": a console capture's own stamp.
		s = s[loc[1]:]
		l.syslog, stripped = true, true
	} else if loc != nil && loc[1] > 0 && s[0] != ' ' {
		// Another program's syslog line ("… host systemd[1]: …"): a line of its own.
		l.foreign = true
	}
	if len(s) > 1 && s[0] == '[' && s[1] >= 'A' && s[1] <= 'Z' {
		if loc := dmesgT.FindStringIndex(s); loc != nil {
			s, stripped = s[loc[1]:], true
			l.syslog = true // a log header like syslog's: unprefixed lines after it continue it
		}
	}
	if len(s) > 3 && s[0] == '<' && s[2] == '>' && s[1] >= '0' && s[1] <= '7' {
		s, stripped = s[3:], true
	}
	if len(s) > 0 && s[0] == '[' && strings.Contains(s, "] kernel:") {
		if m := monoKernel.FindStringSubmatchIndex(s); m != nil {
			// journalctl -o short-monotonic: "[35824.733029] kernel: …".
			s, stripped = s[:m[3]]+" "+s[m[1]:], true
			l.syslog = true
		}
	}
	if m, ok := tsGluedIndex(s); ok {
		// Re-print the timestamp at the start of the line with one space after it.
		if m[2] > 0 || m[1] == m[3] {
			s, stripped = s[m[2]:m[3]]+" "+s[m[1]:], true
		}
		l.ts = true
	}
	if stripped {
		l.events = append(l.events, repPrefix)
	}
	l.text = s
}

// loosePrefixIndex is loosePrefix.FindStringIndex(s), skipping the regexp for lines that
// cannot match: every alternative starts, after optional spaces, with a letter or digit
// (a console line starts with '[').
func loosePrefixIndex(s string) []int {
	i := 0
	for i < len(s) && s[i] == ' ' {
		i++
	}
	if i == len(s) || !(s[i] >= '0' && s[i] <= '9' || s[i] >= 'A' && s[i] <= 'Z' || s[i] >= 'a' && s[i] <= 'z') {
		return nil
	}
	return loosePrefix.FindStringIndex(s)
}

// tsGluedIndex is tsGlued.FindStringSubmatchIndex(s) written out (it runs on every line
// repair sees): [ \t]*, then the stamp "[ *[0-9]+\.[0-9]+\]" with an optional caller id
// "[ *[CT][0-9]+\]" as group 1, then an optional space.
func tsGluedIndex(s string) (m [4]int, ok bool) {
	i := 0
	for i < len(s) && (s[i] == ' ' || s[i] == '\t') {
		i++
	}
	start := i
	if i >= len(s) || s[i] != '[' {
		return m, false
	}
	j := i + 1
	for j < len(s) && s[j] == ' ' {
		j++
	}
	d := j
	for j < len(s) && s[j] >= '0' && s[j] <= '9' {
		j++
	}
	if j == d || j >= len(s) || s[j] != '.' {
		return m, false
	}
	j++
	d = j
	for j < len(s) && s[j] >= '0' && s[j] <= '9' {
		j++
	}
	if j == d || j >= len(s) || s[j] != ']' {
		return m, false
	}
	j++
	if j < len(s) && s[j] == '[' {
		k := j + 1
		for k < len(s) && s[k] == ' ' {
			k++
		}
		if k < len(s) && (s[k] == 'C' || s[k] == 'T') {
			k++
			d := k
			for k < len(s) && s[k] >= '0' && s[k] <= '9' {
				k++
			}
			if k > d && k < len(s) && s[k] == ']' {
				j = k + 1
			}
		}
	}
	end := j
	if j < len(s) && s[j] == ' ' {
		j++
	}
	return [4]int{0, j, start, end}, true
}

// body returns a line's text after its console prefix.
func (l *rline) body() string {
	_, n := lineContext([]byte(l.text))
	return l.text[n:]
}

// stripEmptyAddrs removes "[] " left where HTML ate "[<ffffffff…>]" and returns how
// many frame addresses were lost.
func stripEmptyAddrs(l *rline) int {
	if !strings.Contains(l.text, "[]") {
		return 0
	}
	_, n := lineContext([]byte(l.text))
	body := l.text[n:]
	t := strings.TrimLeft(body, " ")
	lost := 0
	switch {
	case strings.HasPrefix(t, "[] "):
		// A frame: " [] ? func+0x…".
		lost = 1
	case strings.HasPrefix(t, "IP: [] ") || strings.HasPrefix(t, "RIP: ") || strings.HasPrefix(t, "EIP: ") ||
		strings.HasPrefix(t, "RIP  [] ") || strings.HasPrefix(t, "EIP: [] "):
	default:
		return 0
	}
	nb := strings.ReplaceAll(body, ":[]  [] ", ":")
	nb = strings.ReplaceAll(nb, ":[] [] ", ":")
	nb = strings.ReplaceAll(nb, "[] ", "")
	if nb == body {
		return 0
	}
	l.text = l.text[:n] + nb
	return lost
}

// then composes two maps: m maps repaired text to its input, which next maps to the
// original input (next may be nil).
func (m mapping) then(next mapping) mapping {
	if next == nil {
		return m
	}
	out := make(mapping, len(m))
	for i, s := range m {
		out[i] = segment{out: s.out, in: next.toInput(s.in, false), inEnd: next.toInput(max(s.inEnd-1, s.in), true)}
	}
	return out
}

// repairsIn sums the repairs made inside [start, end] of the repaired text; nil when
// there were none.
func repairsIn(ev []repairEvent, start, end int) *Repairs {
	var r *Repairs
	for _, e := range ev {
		if e.off < start || e.off > end {
			continue
		}
		if r == nil {
			r = &Repairs{}
		}
		r.add(e.kind)
	}
	return r
}

// tsValue parses the seconds of a "[  12.345678]" console timestamp without allocating.
func tsValue(line []byte) (float64, bool) {
	i := 1
	for i < len(line) && line[i] == ' ' {
		i++
	}
	v, digits := 0.0, 0
	for ; i < len(line) && line[i] >= '0' && line[i] <= '9'; i++ {
		v, digits = v*10+float64(line[i]-'0'), digits+1
	}
	if digits == 0 || i >= len(line) || line[i] != '.' {
		return 0, false
	}
	scale := 0.1
	for i++; i < len(line) && line[i] >= '0' && line[i] <= '9'; i++ {
		v += float64(line[i]-'0') * scale
		scale /= 10
	}
	return v, true
}

// compareStamps orders two console timestamps ("[  12.345678]") without parsing them.
func compareStamps(a, b []byte) int {
	if len(a) != len(b) {
		if len(a) < len(b) {
			return -1
		}
		return 1
	}
	return bytes.Compare(a, b)
}

// regNameEnd reports whether c can end a register name in a dump ("RCX", "R12", "knlGS",
// "eax", "esi", "esp", "x9 ").
func regNameEnd(c byte) bool {
	return c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == 'x' || c == 'i' || c == 'p' || c == ' '
}
