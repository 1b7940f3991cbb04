package oops

import "bytes"

// Console line prefixes: "[  12.345678]" timestamps, optionally followed by the printk
// caller "[  T123]" / "[   C0]" (CONFIG_PRINTK_CALLER), and preceded by a log level
// "<4>", a "** N printk messages dropped **" note or a getty login prompt that the
// console interleaved.

// ctxNone is the context of a line with no timestamp; ctxConsole of a timestamped line
// without a caller id.
const (
	ctxNone    = ""
	ctxConsole = "console"
)

// lineContext parses the console prefix of line and returns its context and the length
// of the prefix (0 when there is none).
func lineContext(line []byte) (ctx string, prefix int) {
	if c, n := contextAt(line, 0); n > 0 {
		return c, n
	}
	// "(?:.* login: )?" in front of the timestamp.
	if i := bytes.LastIndex(line, []byte(" login: ")); i >= 0 {
		if c, n := contextAt(line, i+len(" login: ")); n > 0 {
			return c, n
		}
	}
	return ctxNone, 0
}

func contextAt(line []byte, i int) (string, int) {
	cs, ce, n := contextSpan(line, i)
	if n == 0 {
		return "", 0
	}
	if ce > cs {
		return string(line[cs:ce]), n
	}
	return ctxConsole, n
}

// prefixLen is the length of line's console prefix (0 when none), without allocating.
func prefixLen(line []byte) int {
	_, _, n := contextSpan(line, 0)
	return n
}

// contextSpan parses a console prefix at line[i:]: the caller id's span (empty when
// none) and the prefix's end, 0 when there is no prefix.
func contextSpan(line []byte, i int) (cs, ce, n int) {
	const dropped = "** "
	if bytes.HasPrefix(line[i:], []byte(dropped)) {
		// "** 12 printk messages dropped ** "
		j := i + len(dropped)
		k := j
		for k < len(line) && line[k] >= '0' && line[k] <= '9' {
			k++
		}
		if k > j && bytes.HasPrefix(line[k:], []byte(" printk messages dropped ** ")) {
			i = k + len(" printk messages dropped ** ")
		}
	}
	if i < len(line) && line[i] == '<' {
		j := i + 1
		for j < len(line) && line[j] >= '0' && line[j] <= '9' {
			j++
		}
		if j > i+1 && j < len(line) && line[j] == '>' {
			i = j + 1
		}
	}
	// \[ *[0-9]+\.[0-9]+\]
	if i >= len(line) || line[i] != '[' {
		return 0, 0, 0
	}
	j := i + 1
	for j < len(line) && line[j] == ' ' {
		j++
	}
	d := j
	for j < len(line) && line[j] >= '0' && line[j] <= '9' {
		j++
	}
	if j == d || j >= len(line) || line[j] != '.' {
		return 0, 0, 0
	}
	j++
	d = j
	for j < len(line) && line[j] >= '0' && line[j] <= '9' {
		j++
	}
	if j == d || j >= len(line) || line[j] != ']' {
		return 0, 0, 0
	}
	j++
	// (\[ *(?:C|T)[0-9]+\])?
	if j < len(line) && line[j] == '[' {
		k := j + 1
		for k < len(line) && line[k] == ' ' {
			k++
		}
		if k < len(line) && (line[k] == 'C' || line[k] == 'T') {
			t := k
			k++
			n := k
			for k < len(line) && line[k] >= '0' && line[k] <= '9' {
				k++
			}
			if k > n && k < len(line) && line[k] == ']' {
				cs, ce = t, k
				j = k + 1
			}
		}
	}
	if j >= len(line) || line[j] != ' ' {
		return 0, 0, 0
	}
	return cs, ce, j + 1
}

// stripLine removes the console prefix (n bytes, from lineContext) of a line of the
// given context and reports whether the line is a questionable ("?") frame, which titles
// never use.
func stripLine(line []byte, ctx string, n int) ([]byte, bool) {
	if ctx == ctxNone {
		return line, false
	}
	line = line[n:]
	if i := bytes.Index(line, []byte(" ? ")); i >= 0 && !bytes.Contains(line, []byte("<EOI>")) {
		return line[i+2:], true
	}
	if bytes.HasSuffix(line, []byte(" (unreliable)")) && !bytes.Contains(line, []byte("<EOI>")) { // powerpc
		return line[:len(line)-len(" (unreliable)")], true
	}
	return line, false
}

// nextLine returns the end of the line starting at pos (the index of '\n' or len).
func lineEnd(data []byte, pos int) int {
	if i := bytes.IndexByte(data[pos:], '\n'); i >= 0 {
		return pos + i
	}
	return len(data)
}
