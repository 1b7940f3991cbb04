package netconsole

import (
	"bytes"
	"time"
)

// Event tells an emit callback what a line means for the host's story.
type Event int

const (
	// EventLine is an ordinary console line.
	EventLine Event = iota
	// EventReboot marks the first line of a new boot (a sequence reset of extended
	// records, or the "Linux version" banner at time zero of a plain stream).
	EventReboot
)

// StreamOptions tune a Stream; the zero value picks the defaults.
type StreamOptions struct {
	// Window is how many out-of-order records a host may hold while a missing one
	// is awaited (default 64; facebook/netconsd holds 512).
	Window int
	// Timeout is how long a missing record is awaited before it counts as a gap
	// (default 100 ms; a panic's last lines must not wait long).
	Timeout time.Duration
	// MaxLine bounds a plain line held without its newline (default 4096 bytes).
	MaxLine int
	// Scratch, when set, is working space shared by the streams given it, which
	// must then not be used concurrently (a collector gives one to each host table,
	// used under its lock): thousands of hosts then share one warm buffer instead of
	// each keeping its own.
	Scratch *Scratch
}

// Scratch is a Stream's working space: a record's decoded text and its rendered
// console lines, both only valid during one Push or Tick.
type Scratch struct {
	text, line []byte
	rec        Record
}

func (o *StreamOptions) fill() {
	if o.Window <= 0 {
		o.Window = 64
	}
	if o.Timeout <= 0 {
		o.Timeout = 100 * time.Millisecond
	}
	if o.MaxLine <= 0 {
		o.MaxLine = 4096
	}
}

// StreamStats count what a Stream saw.
type StreamStats struct {
	Plain, Records uint64 // datagrams of each format
	Bad            uint64 // malformed extended datagrams (bad fragments)
	Junk           uint64 // binary datagrams no console sends (see Junk)
	Gaps           uint64 // sequence numbers never received (loss, rate limits or console loglevel)
	Dups           uint64 // records received twice (duplicates and ring buffer replays)
	Reordered      uint64 // records that arrived ahead of a missing one
	Reboots        uint64
}

// EmitFunc receives each console line, newline included, in order. line is only
// valid during the call.
type EmitFunc func(line []byte, ev Event)

// Stream turns one host's datagrams into ordered console lines: plain payloads are
// split into lines, extended records are reassembled from fragments, put in sequence
// order within a small window, de-duplicated, and rendered with a "[sec.usec] "
// prefix. A Stream is not safe for concurrent use; its memory is bounded by
// Window*MaxRecord plus MaxLine plus the fragment slots.
type Stream struct {
	opts  StreamOptions
	Stats StreamStats
	// Hostname is the hostname userdata/sysdata entry of the last record that had one;
	// Release the release prefix or release= sysdata.
	Hostname, Release string

	// What a datagram reads comes first, in a few cache lines: with thousands of
	// hosts each stream is cold.
	partial []byte // plain text after the last newline
	frags   asm
	seq     sequencer

	partialTime time.Time
	sawPlain    bool
	own         *Scratch // when the options give none
}

// scratch returns the stream's working space.
func (s *Stream) scratch() *Scratch {
	if s.opts.Scratch != nil {
		return s.opts.Scratch
	}
	if s.own == nil {
		s.own = &Scratch{}
	}
	return s.own
}

// NewStream returns a Stream with the options o.
func NewStream(o StreamOptions) *Stream {
	o.fill()
	s := &Stream{opts: o}
	s.seq.window = o.Window
	return s
}

// Touch reads the state the stream's next in-order record reads first and returns
// a value made of it, for a receiver to warm the streams of the datagrams it is
// about to push: with thousands of hosts each stream is cold in the cache, and
// touching several in a row lets their misses overlap instead of being paid one
// after the other.
func (s *Stream) Touch() uint64 {
	q := &s.seq
	return s.Stats.Records + q.next + q.recent[q.next%uint64(len(q.recent))].seq + uint64(len(s.partial))
}

// Buffered returns the bytes the stream holds (partial line, fragments, held records).
func (s *Stream) Buffered() int {
	n := cap(s.partial) + s.frags.size() + s.seq.bytes
	if s.own != nil {
		n += cap(s.own.text) + cap(s.own.line)
	}
	return n
}

// Push handles one datagram received at now.
//
// An in-order record is decoded into the scratch space and rendered from there;
// only one held for a missing predecessor is copied.
func (s *Stream) Push(p []byte, now time.Time, emit EmitFunc) {
	sc := s.scratch()
	r := &sc.rec
	*r = Record{}
	body, err := parseHeader(p, r)
	if err == ErrNotExtended {
		if Junk(p) {
			s.Stats.Junk++
			return
		}
		s.Stats.Plain++
		s.pushPlain(p, now, emit)
		return
	}
	if err != nil {
		s.Stats.Bad++
		return
	}
	s.Stats.Records++
	if r.Frag != nil {
		r.Frag.Body = body
		whole, ok := s.frags.add(r, now)
		if !ok {
			return
		}
		body, r.Frag = whole, nil
	}
	text, dict, _ := bytes.Cut(body, []byte{'\n'})
	sc.text = unescapeTo(sc.text[:0], text)
	r.Text = sc.text
	if r.Release != "" {
		s.Release = r.Release
	}
	if len(dict) > 0 {
		s.readDict(dict)
	}
	s.seq.push(r, now, s.Stats.add, func(r *Record, ev Event) { s.emitRecord(r, ev, emit) })
}

// readDict takes the host's name and release from a record's dictionary lines,
// allocating only when one changes.
func (s *Stream) readDict(dict []byte) {
	for n := 0; len(dict) > 0 && n < 64; n++ {
		var line []byte
		line, dict, _ = bytes.Cut(dict, []byte{'\n'})
		k, v, _ := bytes.Cut(bytes.TrimLeft(line, " "), []byte{'='})
		var dst *string
		switch string(k) {
		case "hostname", "host":
			dst = &s.Hostname
		case "release":
			dst = &s.Release
		default:
			continue
		}
		if bytes.IndexByte(v, '\\') >= 0 {
			v = unescape(v)
		}
		if *dst != string(v) {
			*dst = string(v)
		}
	}
}

func (st *StreamStats) add(gaps, dups, reordered, reboots uint64) {
	st.Gaps += gaps
	st.Dups += dups
	st.Reordered += reordered
	st.Reboots += reboots
}

func (s *Stream) emitRecord(r *Record, ev Event, emit EmitFunc) {
	sc := s.scratch()
	sc.line = ConsoleLine(sc.line[:0], r)
	b := sc.line
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		emit(b[:i+1], ev)
		ev = EventLine
		b = b[i+1:]
	}
}

// Junk says whether a datagram that is not an extended record is binary rather than
// console text: it holds a NUL byte, or more than one byte in eight is a control
// byte other than tab, newline, carriage return and escape (the kernel's console
// text is printable ASCII or UTF-8 with at most a few escape sequences). One pass.
func Junk(p []byte) bool {
	ctl := 0
	for _, c := range p {
		if c < 0x20 {
			switch c {
			case 0:
				return true
			case '\t', '\n', '\r', 0x1b:
				continue
			}
			ctl++
		} else if c == 0x7f {
			ctl++
		}
	}
	return ctl*8 > len(p)
}

var bootBanner = []byte("[    0.000000] Linux version ")

func (s *Stream) pushPlain(p []byte, now time.Time, emit EmitFunc) {
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			if len(s.partial) == 0 {
				s.partialTime = now
			}
			s.partial = append(s.partial, p...)
			if len(s.partial) >= s.opts.MaxLine {
				s.partial = append(s.partial, '\n')
				s.emitPlain(s.partial, emit)
				s.partial = s.partial[:0]
			}
			return
		}
		if len(s.partial) > 0 {
			s.partial = append(s.partial, p[:i+1]...)
			s.emitPlain(s.partial, emit)
			s.partial = s.partial[:0]
		} else {
			s.emitPlain(p[:i+1], emit)
		}
		p = p[i+1:]
	}
}

func (s *Stream) emitPlain(line []byte, emit EmitFunc) {
	ev := EventLine
	if bytes.HasPrefix(line, bootBanner) && s.sawPlain {
		ev = EventReboot
		s.Stats.Reboots++
	}
	s.sawPlain = true
	emit(line, ev)
}

// Tick releases what waited too long: records held for a missing one (the missing
// ones count as gaps) and a plain line whose newline never came (after 10×Timeout).
// Call it every few tens of milliseconds for hosts with Buffered() > 0.
func (s *Stream) Tick(now time.Time, emit EmitFunc) {
	s.seq.tick(now, s.opts.Timeout, s.Stats.add, func(r *Record, ev Event) { s.emitRecord(r, ev, emit) })
	if len(s.partial) > 0 && now.Sub(s.partialTime) >= 10*s.opts.Timeout {
		s.partial = append(s.partial, '\n')
		s.emitPlain(s.partial, emit)
		s.partial = s.partial[:0]
	}
	s.frags.expire(now, 10*s.opts.Timeout)
}

// Flush releases everything held, as at shutdown.
func (s *Stream) Flush(emit EmitFunc) {
	s.seq.release(^uint64(0), s.Stats.add, func(r *Record, ev Event) { s.emitRecord(r, ev, emit) })
	if len(s.partial) > 0 {
		s.partial = append(s.partial, '\n')
		s.emitPlain(s.partial, emit)
		s.partial = s.partial[:0]
	}
}

// Compact releases the stream's scratch memory when it holds nothing (an idle
// host); it is allocated again as needed.
func (s *Stream) Compact() {
	if !s.Pending() {
		s.own, s.partial = nil, nil
		s.seq.held = nil
		s.frags.slots = nil
	}
}

// Pending reports whether Tick has work: held records or a partial line.
func (s *Stream) Pending() bool {
	return len(s.seq.held) > 0 || len(s.partial) > 0 || s.frags.size() > 0
}
