package oops

import (
	"regexp"
	"strings"
)

// titleRewrites make titles independent of run-specific values, as syzbot's are:
// addresses, IP addresses, line numbers, offsets, CPU and other numbers. Each rewrite is
// applied until the title stops changing.
var titleRewrites = []struct {
	re   *regexp.Regexp
	with string
	need func(string) bool // cheap test that the rewrite may apply
}{
	{regexp.MustCompile(`syz-executor\.?[0-9]+((/|:)[0-9]+)?`), "syz-executor", contains("syz-executor")},
	{regexp.MustCompile(`syzkaller[0-9]+((/|:)[0-9]+)?`), "syzkaller", contains("syzkaller")},
	{regexp.MustCompile(`([^a-zA-Z0-9])(?:0x)?[0-9a-f]{6,}`), "${1}ADDR", hasHexRun},
	{regexp.MustCompile(`([0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3})`), "IP", hasDigit},
	{regexp.MustCompile(`(\.\w+)(:[0-9]+)+`), "${1}:LINE", hasDigit},
	{regexp.MustCompile(`([a-zA-Z][a-zA-Z0-9_.]+)\+0x[0-9a-z]+/0x[0-9a-z]+`), "${1}", contains("+0x")},
	{regexp.MustCompile(`CPU#[0-9]+`), "CPU", contains("CPU#")},
	{regexp.MustCompile(`(\W)(\d+)(\W|$)`), "${1}NUM${3}", hasDigit},
	{regexp.MustCompile(`(\d+){7,}`), "NUM", hasDigit},
}

func contains(sub string) func(string) bool {
	return func(s string) bool { return strings.Contains(s, sub) }
}

func hasDigit(s string) bool { return strings.IndexAny(s, "0123456789") >= 0 }

// hasHexRun reports whether s holds 6 or more consecutive lower-case hex digits.
func hasHexRun(s string) bool {
	n := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= '0' && c <= '9' || c >= 'a' && c <= 'f' {
			if n++; n >= 6 {
				return true
			}
		} else {
			n = 0
		}
	}
	return false
}

var titleFrame = regexp.MustCompile(`.* in ((?:<[a-zA-Z0-9_: ]+>)?[a-zA-Z0-9_:]+)`)

// cleanTitle rewrites run-specific values and keeps at most 120 printable characters.
func cleanTitle(t string) string {
	for _, rw := range titleRewrites {
		if !rw.need(t) {
			continue
		}
		for i := 0; i < 16; i++ {
			n := rw.re.ReplaceAllString(t, rw.with)
			if n == t {
				break
			}
			t = n
		}
	}
	const maxLen = 120
	b := make([]byte, 0, len(t))
	prev := byte(' ')
	for i := 0; i < len(t) && i < maxLen; i++ {
		c := t[i]
		switch {
		case c == '\t':
			c = ' '
		case c < 0x20 || c >= 0x7f:
			continue
		}
		if c == ' ' && prev == ' ' {
			continue
		}
		b = append(b, c)
		prev = c
	}
	return strings.TrimSpace(string(b))
}
