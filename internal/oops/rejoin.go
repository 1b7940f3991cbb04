package oops

import (
	"regexp"
	"strings"
)

// Re-joining wrapped lines. A line continues the one before it when
//
//   - what it holds can only be the rest of that line (content rules, certain): the value
//     of a register whose name ends the line before, more Code bytes after a Code: line,
//     more module names after "Modules linked in:", the function of a frame or RIP line
//     that ends with its address, "+0x…/0x…" after a symbol, a "[module]" after a frame,
//     the fault address after "… at", the rest of "Process x (pid: …";
//   - or the transport says so: in a log whose lines carry console timestamps (or syslog
//     headers), a line of the same quoting depth without one, right after one that has
//     it. Such a join is certain when the line could not have fitted on the line before
//     (the mailer's width) or that line ends with the space of format=flowed; otherwise
//     it is marked uncertain.
//
// The separator is a space unless the break was inside a word: a hard wrap at a fixed
// width (several lines of exactly that length), after "(", before ")" or "+0x", or after
// a flowed line's own trailing space.

var (
	modToken    = regexp.MustCompile(`^(?:[A-Za-z0-9_.-]+(?:\([A-Z+-]*\)?)?|[A-Z+-]+\)|\[last|unloaded:|[A-Za-z0-9_.-]+\]|\[permanent\])$`)
	hexStart    = regexp.MustCompile(`^[0-9a-f]{4,16}(?:[\s(]|$)`)
	longHex     = regexp.MustCompile(`^(?:0x)?[0-9a-f]{8,16}(?:\s|$)`)
	symStart    = regexp.MustCompile(`^(?:\? )?[A-Za-z_][A-Za-z0-9_.]*\+0x[0-9a-f]+/0x[0-9a-f]+`)
	addrEnd     = regexp.MustCompile(`(?:\[<[0-9a-f]+>\]|<[0-9a-f]{8,16}>|\[[A-Za-z0-9_.]+\+[0-9]+/[0-9]+\])(?: \?)?$`)
	modBracket  = regexp.MustCompile(`^\[[A-Za-z0-9_-]+\]$`)
	offsetEnd   = regexp.MustCompile(`/0x[0-9a-f]+$`)
	buildIDTail = regexp.MustCompile(`^[0-9a-f]{8,40}\]`)
)

// maxJoinedLine bounds a re-joined line: joining stops there, which keeps the work
// linear whatever the input (no kernel line is longer than a few KiB).
const maxJoinedLine = 16 << 10

// rejoin joins wrapped lines in place and returns the kept lines.
func rejoin(lines []rline) []rline {
	nonblank, tsN, sysN := 0, 0, 0
	width, hard := 0, 0
	count := map[int]int{}
	for _, l := range lines {
		if l.text == "\x00" || strings.TrimSpace(l.text) == "" {
			continue
		}
		nonblank++
		if l.ts {
			tsN++
		}
		if l.syslog {
			sysN++
		}
		if l.rawLen > width {
			width = l.rawLen
		}
		if l.rawLen >= 100 && len(count) < 4096 {
			count[l.rawLen]++
		}
	}
	if count[width] >= 2 {
		hard = width
	}
	tsMode := tsN >= 2
	sysMode := sysN >= 2
	out := lines[:0]
	for _, l := range lines {
		if l.text == "\x00" {
			continue
		}
		if len(out) > 0 {
			p := &out[len(out)-1]
			if sep, how := continues(p, &l, tsMode, sysMode, width, hard); how != joinNo && len(p.text)+len(l.text) <= maxJoinedLine {
				p.text = strings.TrimRight(p.text, " ") + sep + strings.TrimLeft(l.text, " ")
				if sep == "" && strings.HasSuffix(p.text, " ") {
					p.text = strings.TrimRight(p.text, " ")
				}
				p.inEnd = l.inEnd
				p.events = append(append(p.events, l.events...), repRejoin)
				if how == joinUncertain {
					p.events = append(p.events, repUncertain)
				}
				continue
			}
		}
		out = append(out, l)
	}
	return out
}

type joinHow int

const (
	joinNo joinHow = iota
	joinSure
	joinUncertain
)

// continues decides whether c continues p and with which separator.
func continues(p, c *rline, tsMode, sysMode bool, width, hard int) (string, joinHow) {
	ct := strings.TrimSpace(c.text)
	if ct == "" || strings.TrimSpace(p.text) == "" || c.depth != p.depth || c.ts || c.foreign {
		return "", joinNo
	}
	pb := strings.TrimRight(p.body(), " ")
	pt := strings.TrimSpace(pb)
	sep := " "
	flowed := strings.HasSuffix(p.text, " ")
	if hard > 0 && p.rawLen == hard || strings.HasSuffix(pb, "(") || strings.HasPrefix(ct, ")") ||
		strings.HasPrefix(ct, "+0x") {
		sep = ""
	}
	if flowed && !strings.HasPrefix(ct, "+0x") {
		sep = " "
	}
	if contentContinues(pt, ct, c) {
		return sep, joinSure
	}
	byTransport := tsMode && p.ts && !c.ts || sysMode && p.syslog && !c.syslog && !c.ts
	if !byTransport {
		return "", joinNo
	}
	first := ct
	if i := strings.IndexByte(ct, ' '); i > 0 {
		first = ct[:i]
	}
	if flowed || p.rawLen+1+len(first) > width-2 || hard > 0 && p.rawLen == hard {
		return sep, joinSure
	}
	return sep, joinUncertain
}

// contentContinues applies the content rules: c can only be the rest of p.
func contentContinues(pt, ct string, c *rline) bool {
	switch {
	case strings.HasPrefix(pt, "Code:") && isHexBytes([]byte(ct)):
		return true
	case strings.HasPrefix(pt, "Modules linked in:") && !strings.HasSuffix(pt, "]") && moduleList(ct):
		return true
	case strings.HasSuffix(pt, ":") && danglingReg.MatchString(pt) && hexStart.MatchString(ct):
		return true
	case strings.HasPrefix(ct, "knlGS:") && strings.Contains(pt, "GS:") && !strings.Contains(pt, "knlGS"):
		return true
	case addrEnd.MatchString(pt) && symStart.MatchString(ct):
		return true
	case strings.HasPrefix(ct, "+0x") && pt != "" && isIdent(pt[len(pt)-1]):
		return true
	case modBracket.MatchString(ct) && offsetEnd.MatchString(pt):
		return true
	case strings.LastIndexByte(pt, '[') > strings.LastIndexByte(pt, ']') && buildIDTail.MatchString(ct):
		return true
	case strings.HasPrefix(ct, "at virtual address ") && (strings.HasSuffix(pt, "dereference") || strings.HasSuffix(pt, "paging request")):
		return true
	case strings.HasPrefix(ct, "address: ") && strings.HasSuffix(pt, "dereference,"):
		return true // "BUG: kernel NULL pointer dereference," / "address: 0000000000000158"
	case (strings.HasSuffix(pt, " at") || strings.HasSuffix(pt, " address")) && longHex.MatchString(ct) &&
		(strings.Contains(pt, "BUG") || strings.Contains(pt, "Unable to handle")):
		return true
	case strings.HasPrefix(pt, "Process ") && strings.Contains(pt, "(pid:") && !strings.Contains(pt, ")"):
		return true
	}
	return false
}

// moduleList reports whether every field of s is a module name (with taint flags) or
// part of "[last unloaded: x]".
func moduleList(s string) bool {
	if strings.Contains(s, ": ") && !strings.Contains(s, "[last unloaded:") {
		return false
	}
	fs := strings.Fields(s)
	if len(fs) == 0 {
		return false
	}
	for _, f := range fs {
		if !modToken.MatchString(f) || allUpperOrDigits(f) {
			return false
		}
	}
	return true
}

// allUpperOrDigits reports words like "CPU" or "7" that are no module name.
func allUpperOrDigits(f string) bool {
	for i := 0; i < len(f); i++ {
		if c := f[i]; !(c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}
