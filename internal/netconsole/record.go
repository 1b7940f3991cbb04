// Package netconsole reads the Linux kernel's netconsole wire format: plain payloads,
// extended records with their fragments, userdata and release prefix, per-host
// ordering, and a UDP receiver that reads datagrams in batches.
//
// The format is described in the kernel's Documentation/networking/netconsole.rst
// and produced by drivers/net/netconsole.c (send_ext_msg_udp, send_msg_fragmented)
// from the header kernel/printk/printk.c builds (info_print_ext_header,
// msg_add_ext_text). The parsers never panic and never allocate more than a bound
// derived from their input; any byte string is either a record or plain text.
package netconsole

import (
	"bytes"
	"errors"
	"strconv"
)

// MaxPlainPayload is the largest plain netconsole payload: drivers/net/netconsole.c
// MAX_PRINT_CHUNK.
const MaxPlainPayload = 1000

// MaxRecord bounds a reassembled extended record: drivers/net/netconsole.c refuses
// to fragment messages of CONSOLE_EXT_LOG_MAX (8192) bytes or more.
const MaxRecord = 8192

// Record is one extended netconsole record (or one fragment of it, when Frag is set).
type Record struct {
	// Facility and Level come from the first header field, facility*8+level
	// (kernel/printk/printk.c info_print_ext_header).
	Facility int
	Level    int
	// Seq is the printk sequence number, TS the timestamp in microseconds since boot.
	Seq uint64
	TS  uint64
	// Cont is the 'c' flag: the record continues the previous one (LOG_CONT).
	Cont bool
	// Caller is the caller= field (T<tid> or C<cpu>) when CONFIG_PRINTK_CALLER is on.
	Caller string
	// Release is the optional release prefix (netconsole target with release enabled).
	Release string
	// Text is the message with \xNN escapes decoded; a message may hold newlines.
	Text []byte
	// Dict holds the dictionary, userdata and sysdata lines after the text, as
	// key=value pairs in the order sent.
	Dict []KV
	// Frag is set on a fragment: ncfrag=Off/Total, Body the raw (still escaped)
	// chunk of the record body. Text and Dict are empty on a fragment.
	Frag *Frag
}

// KV is one dictionary line.
type KV struct{ Key, Value string }

// Frag locates a fragment in its record's body (drivers/net/netconsole.c
// send_msg_fragmented: ",ncfrag=<byte offset>/<total>").
type Frag struct {
	Off, Total int
	Body       []byte
}

// Lookup returns the value of the first dictionary entry named key.
func (r *Record) Lookup(key string) (string, bool) {
	for _, kv := range r.Dict {
		if kv.Key == key {
			return kv.Value, true
		}
	}
	return "", false
}

// Errors ParseExtended returns; callers count them as bad packets.
var (
	ErrNotExtended = errors.New("netconsole: not an extended record")
	ErrBadFragment = errors.New("netconsole: bad ncfrag field")
)

// ParseExtended parses one extended datagram. It returns ErrNotExtended when p has
// no well-formed header, so a caller can treat p as plain text instead. Text, Dict
// and Frag.Body are copies; p may be reused. Cost: one pass over p.
func ParseExtended(p []byte) (Record, error) {
	var r Record
	body, err := parseHeader(p, &r)
	if err != nil {
		return r, err
	}
	if r.Frag != nil {
		r.Frag.Body = append([]byte(nil), body...)
		return r, nil
	}
	r.Text, r.Dict = parseBody(body)
	return r, nil
}

// parseHeader parses an extended datagram's header into r (all but Text, Dict and
// Frag.Body) and returns the body after it. It allocates only for the release,
// caller and ncfrag fields.
func parseHeader(p []byte, r *Record) ([]byte, error) {
	semi := bytes.IndexByte(p, ';')
	if semi < 0 || semi > 512 {
		return nil, ErrNotExtended
	}
	hdr := p[:semi]
	if bytes.IndexByte(hdr, '\n') >= 0 {
		return nil, ErrNotExtended
	}
	// field returns the next comma-separated field of hdr (ok false past the last).
	// The fields are a few bytes long: a plain loop finds the comma sooner than
	// bytes.Cut's call to the vector search.
	rest, done := hdr, false
	field := func() ([]byte, bool) {
		if done {
			return nil, false
		}
		for i, c := range rest {
			if c == ',' {
				f := rest[:i]
				rest = rest[i+1:]
				return f, true
			}
		}
		f := rest
		rest, done = nil, true
		return f, true
	}
	f0, _ := field()
	// The release prefix is the only field holding a '.' before the numbers
	// (drivers/net/netconsole.c send_ext_msg_udp with the target's release set).
	if bytes.IndexByte(f0, '.') >= 0 {
		if !validRelease(f0) {
			return nil, ErrNotExtended
		}
		r.Release = string(f0)
		var ok bool
		if f0, ok = field(); !ok {
			return nil, ErrNotExtended
		}
	}
	f1, ok1 := field()
	f2, ok2 := field()
	f3, ok3 := field()
	if !ok1 || !ok2 || !ok3 {
		return nil, ErrNotExtended
	}
	prefix, ok1 := atou(f0)
	seq, ok2 := atou(f1)
	ts, ok3 := atou(f2)
	if !ok1 || !ok2 || !ok3 || prefix > 1<<16 || len(f3) != 1 {
		return nil, ErrNotExtended
	}
	r.Facility, r.Level = int(prefix>>3), int(prefix&7)
	r.Seq, r.TS = seq, ts
	r.Cont = f3[0] == 'c'
	for f, ok := field(); ok; f, ok = field() {
		switch {
		case bytes.HasPrefix(f, []byte("caller=")):
			r.Caller = string(f[len("caller="):])
		case bytes.HasPrefix(f, []byte("ncfrag=")):
			fr, err := parseFrag(f[len("ncfrag="):])
			if err != nil {
				return nil, err
			}
			r.Frag = fr
		}
	}
	body := p[semi+1:]
	if r.Frag != nil && r.Frag.Off+len(body) > r.Frag.Total {
		return nil, ErrBadFragment
	}
	return body, nil
}

// parseBody splits a record body into its unescaped text and dictionary lines.
func parseBody(body []byte) ([]byte, []KV) {
	text, rest, _ := bytes.Cut(body, []byte{'\n'})
	var dict []KV
	for len(rest) > 0 && len(dict) < 64 {
		var line []byte
		line, rest, _ = bytes.Cut(rest, []byte{'\n'})
		line = bytes.TrimLeft(line, " ")
		if len(line) == 0 {
			continue
		}
		k, v, _ := bytes.Cut(line, []byte{'='})
		dict = append(dict, KV{string(unescape(k)), string(unescape(v))})
	}
	return unescape(text), dict
}

// unescape decodes the \xNN escapes kernel/printk/printk.c msg_add_ext_text writes
// for control bytes, bytes >= 0x7f and the backslash. Malformed escapes stay as sent.
func unescape(s []byte) []byte {
	if bytes.IndexByte(s, '\\') < 0 {
		return append([]byte(nil), s...)
	}
	return unescapeTo(make([]byte, 0, len(s)), s)
}

// unescapeTo appends s, its escapes decoded, to out.
func unescapeTo(out, s []byte) []byte {
	if bytes.IndexByte(s, '\\') < 0 {
		return append(out, s...)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '\\' && i+3 < len(s) && s[i+1] == 'x' {
			h, ok1 := unhex(s[i+2])
			l, ok2 := unhex(s[i+3])
			if ok1 && ok2 {
				out = append(out, h<<4|l)
				i += 3
				continue
			}
		}
		out = append(out, c)
	}
	return out
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

func parseFrag(f []byte) (*Frag, error) {
	o, t, ok := bytes.Cut(f, []byte{'/'})
	if !ok {
		return nil, ErrBadFragment
	}
	off, ok1 := atou(o)
	total, ok2 := atou(t)
	if !ok1 || !ok2 || total == 0 || total >= MaxRecord || off >= total {
		return nil, ErrBadFragment
	}
	return &Frag{Off: int(off), Total: int(total)}, nil
}

// atou parses a decimal number of at most 19 digits.
func atou(b []byte) (uint64, bool) {
	if len(b) == 0 || len(b) > 19 {
		return 0, false
	}
	var n uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + uint64(c-'0')
	}
	return n, true
}

// validRelease accepts what a utsname release may hold (include/linux/utsname.h:
// at most 64 bytes) without spaces or control bytes.
func validRelease(b []byte) bool {
	if len(b) == 0 || len(b) > 64 {
		return false
	}
	for _, c := range b {
		if c <= ' ' || c >= 0x7f || c == ';' {
			return false
		}
	}
	return true
}

// ConsoleLine renders a record's text as console lines with the kernel's timestamp
// prefix ("[    3.371591] text"), one per line of a multi-line message, appended to dst.
func ConsoleLine(dst []byte, r *Record) []byte {
	var prefix [40]byte
	var num [20]byte
	p := append(prefix[:0], '[')
	sec := strconv.AppendUint(num[:0], r.TS/1e6, 10)
	for i := len(sec); i < 5; i++ {
		p = append(p, ' ')
	}
	p = append(p, sec...)
	p = append(p, '.')
	usec := r.TS % 1e6
	for d := uint64(100000); d > 0; d /= 10 {
		p = append(p, byte('0'+usec/d%10))
	}
	p = append(p, "] "...)
	text := r.Text
	for {
		line, rest, more := bytes.Cut(text, []byte{'\n'})
		dst = append(dst, p...)
		dst = append(dst, line...)
		dst = append(dst, '\n')
		if !more {
			return dst
		}
		text = rest
	}
}
