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

	partial     []byte // plain text after the last newline
	partialTime time.Time
	sawPlain    bool

	frags asm
	seq   sequencer
	line  []byte // scratch for rendered lines
}

// NewStream returns a Stream with the options o.
func NewStream(o StreamOptions) *Stream {
	o.fill()
	s := &Stream{opts: o}
	s.seq.window = o.Window
	return s
}

// Buffered returns the bytes the stream holds (partial line, fragments, held records).
func (s *Stream) Buffered() int {
	return cap(s.partial) + s.frags.size() + s.seq.bytes + cap(s.line)
}

// Push handles one datagram received at now.
func (s *Stream) Push(p []byte, now time.Time, emit EmitFunc) {
	r, err := ParseExtended(p)
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
		body, ok := s.frags.add(&r, now)
		if !ok {
			return
		}
		r.Text, r.Dict = parseBody(body)
		r.Frag = nil
	}
	if r.Release != "" {
		s.Release = r.Release
	}
	for _, kv := range r.Dict {
		switch kv.Key {
		case "hostname", "host":
			s.Hostname = kv.Value
		case "release":
			s.Release = kv.Value
		}
	}
	s.seq.push(&r, now, s.Stats.add, func(r *Record, ev Event) { s.emitRecord(r, ev, emit) })
}

func (st *StreamStats) add(gaps, dups, reordered, reboots uint64) {
	st.Gaps += gaps
	st.Dups += dups
	st.Reordered += reordered
	st.Reboots += reboots
}

func (s *Stream) emitRecord(r *Record, ev Event, emit EmitFunc) {
	s.line = ConsoleLine(s.line[:0], r)
	b := s.line
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
		s.line, s.partial = nil, nil
		s.seq.held = nil
	}
}

// Pending reports whether Tick has work: held records or a partial line.
func (s *Stream) Pending() bool {
	return len(s.seq.held) > 0 || len(s.partial) > 0 || s.frags.size() > 0
}
