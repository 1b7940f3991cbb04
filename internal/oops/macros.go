package oops

import (
	"bytes"
	"regexp"
	"strings"
	"sync"
)

// Named macros usable in recogniser patterns, so that the table reads like the
// kernel's own messages (syzkaller's pkg/report uses the same idea).
var macros = strings.NewReplacer(
	"{{ADDR}}", `0x[0-9a-f]+`,
	// {{PC}}: a bracketed address as printed before a symbol: [<ffffffff81000000>].
	"{{PC}}", `\[\<?(?:0x)?[0-9a-f]+\>?\]`,
	// {{FUNC}}: a symbol name followed by '.' (a .cold/.isra suffix) or '+' (the offset).
	"{{FUNC}}", `([a-zA-Z0-9_]+)(?:\.|\+)`,
	// {{SRC}}: file.c:line.
	"{{SRC}}", `([a-zA-Z0-9-_/.]+\.[a-z]+:[0-9]+)`,
	// {{TASK}}: a task name, which may contain anything, even a newline.
	"{{TASK}}", `[\s\S]{0,100}?`,
)

// re compiles a pattern after expanding the macros. It panics on a bad pattern, which
// is a bug in the table caught by every test run.
func re(pattern string) *regexp.Regexp {
	return regexp.MustCompile(macros.Replace(pattern))
}

// res compiles several patterns.
func res(patterns ...string) []*regexp.Regexp {
	out := make([]*regexp.Regexp, len(patterns))
	for i, p := range patterns {
		out[i] = re(p)
	}
	return out
}

// matchAny reports whether any of rs matches line. A regexp whose matches all contain
// some literal is skipped without running when line lacks it.
func matchAny(line []byte, rs []*regexp.Regexp) bool {
	for _, r := range rs {
		if need := requiredLiteralOf(r); len(need) > 0 && !bytes.Contains(line, need) {
			continue
		}
		if r.Match(line) {
			return true
		}
	}
	return false
}

var literals sync.Map // *regexp.Regexp → []byte

func requiredLiteralOf(r *regexp.Regexp) []byte {
	if v, ok := literals.Load(r); ok {
		return v.([]byte)
	}
	lit := requiredLiteral(r.String())
	literals.Store(r, lit)
	return lit
}
