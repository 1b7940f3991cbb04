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
}{
	{regexp.MustCompile(`syz-executor\.?[0-9]+((/|:)[0-9]+)?`), "syz-executor"},
	{regexp.MustCompile(`syzkaller[0-9]+((/|:)[0-9]+)?`), "syzkaller"},
	{regexp.MustCompile(`([^a-zA-Z0-9])(?:0x)?[0-9a-f]{6,}`), "${1}ADDR"},
	{regexp.MustCompile(`([0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3})`), "IP"},
	{regexp.MustCompile(`(\.\w+)(:[0-9]+)+`), "${1}:LINE"},
	{regexp.MustCompile(`([a-zA-Z][a-zA-Z0-9_.]+)\+0x[0-9a-z]+/0x[0-9a-z]+`), "${1}"},
	{regexp.MustCompile(`CPU#[0-9]+`), "CPU"},
	{regexp.MustCompile(`(\W)(\d+)(\W|$)`), "${1}NUM${3}"},
	{regexp.MustCompile(`(\d+){7,}`), "NUM"},
}

var titleFrame = regexp.MustCompile(`.* in ((?:<[a-zA-Z0-9_: ]+>)?[a-zA-Z0-9_:]+)`)

// cleanTitle rewrites run-specific values and keeps at most 120 printable characters.
func cleanTitle(t string) string {
	for _, rw := range titleRewrites {
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
