package oops

import (
	"bytes"
	"fmt"
	"regexp"
	"sort"
	"strconv"
)

// Inputs that are not plain console text are rewritten into console lines before
// parsing, keeping a map back to input offsets:
//   - extended netconsole and /dev/kmsg records "<level>,<seq>,<ts_usec>,<flags>[,…];<text>"
//     (kernel/printk/printk.c info_print_ext_header), optionally preceded by the kernel
//     release (netconsole's "r" option), with \xNN escapes, dictionary lines starting
//     with a space, and ncfrag=<off>/<len> fragments;
//   - syslog and journal exports, "Nov 22 01:47:00 host kernel: …".

var (
	extHeader    = regexp.MustCompile(`^(?:[^,;\s]*\.[^,;\s]*,)?([0-9]+),([0-9]+),([0-9]+),([^;]*);`)
	syslogPrefix = regexp.MustCompile(`^(?:[A-Z][a-z]{2} [ 0-9][0-9] [0-9]{2}:[0-9]{2}:[0-9]{2}|[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.,+-]+Z?) \S+ kernel: `)
	ncfrag       = regexp.MustCompile(`ncfrag=([0-9]+)/([0-9]+)`)
)

// maxPendingFrags bounds the records being reassembled at once (each at most 64 KiB).
const maxPendingFrags = 256

// segment maps a range of normalized text back to the input.
type segment struct{ out, in, inEnd int }

type mapping []segment

// toInput maps a normalized offset to an input offset (the start of its source record).
func (m mapping) toInput(off int, end bool) int {
	if m == nil {
		return off
	}
	i := sort.Search(len(m), func(i int) bool { return m[i].out > off }) - 1
	if i < 0 {
		return 0
	}
	if end {
		return m[i].inEnd
	}
	return m[i].in
}

// sniff classifies the input from its first non-empty lines.
func sniff(log []byte) (ext, syslog bool) {
	n, e, s := 0, 0, 0
	for pos := 0; pos < len(log) && n < 20; {
		end := lineEnd(log, pos)
		line := log[pos:end]
		pos = end + 1
		if len(bytes.TrimSpace(line)) == 0 || line[0] == ' ' {
			continue
		}
		n++
		if line[0] == '[' || line[0] == '<' {
			continue // console text
		}
		if extHeader.Match(line) {
			e++
		} else if syslogPrefix.Match(line) {
			s++
		}
	}
	return n > 0 && e*2 > n, n > 0 && s*2 > n
}

// normalize returns console text for log and the map back to log offsets (nil when log
// is already console text).
func normalize(log []byte) ([]byte, mapping) {
	ext, syslog := sniff(log)
	if !ext && !syslog || syslog && !ext && wrappedRecords(log) {
		return log, nil // wrapped records are re-joined by repair, which sees the headers
	}
	var out bytes.Buffer
	var m mapping
	type frag struct {
		in   int
		data []byte
		seen int
	}
	frags := map[string]*frag{}
	emit := func(in, inEnd int, ts string, text []byte) {
		for _, l := range bytes.Split(text, []byte("\n")) {
			m = append(m, segment{out: out.Len(), in: in, inEnd: inEnd})
			out.WriteString(ts)
			out.Write(l)
			out.WriteByte('\n')
		}
	}
	for pos := 0; pos < len(log); {
		end := lineEnd(log, pos)
		line := log[pos:end]
		in := pos
		pos = end + 1
		if ext {
			h := extHeader.FindSubmatchIndex(line)
			if h == nil {
				if len(line) > 0 && line[0] == ' ' {
					continue // dictionary / userdata line of the previous record
				}
				emit(in, end, "", line)
				continue
			}
			usec, _ := strconv.ParseUint(string(line[h[6]:h[7]]), 10, 64)
			ts := fmt.Sprintf("[%5d.%06d] ", usec/1000000, usec%1000000)
			body := unescape(line[h[1]:])
			if f := ncfrag.FindSubmatch(line[h[8]:h[9]]); f != nil {
				off, _ := strconv.Atoi(string(f[1]))
				total, _ := strconv.Atoi(string(f[2]))
				if total <= 0 || total > 1<<16 || off < 0 || off+len(body) > total {
					emit(in, end, ts, body)
					continue
				}
				key := string(line[h[4]:h[5]]) // seq
				fr := frags[key]
				if fr == nil && len(frags) >= maxPendingFrags {
					emit(in, end, ts, body) // too many records in flight: keep the text as is
					continue
				}
				if fr == nil || len(fr.data) != total {
					fr = &frag{in: in, data: make([]byte, total)}
					frags[key] = fr
				}
				copy(fr.data[off:], body)
				fr.seen += len(body)
				if fr.seen >= total {
					emit(fr.in, end, ts, fr.data)
					delete(frags, key)
				}
				continue
			}
			emit(in, end, ts, body)
			continue
		}
		if loc := syslogPrefix.FindIndex(line); loc != nil {
			emit(in, end, "", line[loc[1]:])
		} else {
			emit(in, end, "", line)
		}
	}
	return out.Bytes(), m
}

// wrappedRecords reports whether a syslog/journal log has a record a mailer or terminal
// wrapped: a line without the header right after one with it.
func wrappedRecords(log []byte) bool {
	prev := false
	for pos := 0; pos < len(log); {
		end := lineEnd(log, pos)
		line := log[pos:end]
		pos = end + 1
		has := syslogPrefix.Match(line)
		if prev && !has && len(bytes.TrimSpace(line)) > 0 {
			return true
		}
		prev = has
	}
	return false
}

// unescape decodes the \xNN escapes of extended records.
func unescape(b []byte) []byte {
	if bytes.IndexByte(b, '\\') < 0 {
		return b
	}
	out := make([]byte, 0, len(b))
	for i := 0; i < len(b); i++ {
		if b[i] == '\\' && i+3 < len(b) && b[i+1] == 'x' {
			if v, err := strconv.ParseUint(string(b[i+2:i+4]), 16, 8); err == nil {
				out = append(out, byte(v))
				i += 3
				continue
			}
		}
		out = append(out, b[i])
	}
	return out
}
