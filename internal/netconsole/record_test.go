package netconsole

import (
	"bytes"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/kcrash/kcrash/internal/oops"
)

func TestParseExtended(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want Record
		err  error
	}{
		{"simple", "6,375,3369637,-;lkdtm: Performing direct entry ACCESS_NULL",
			Record{Facility: 0, Level: 6, Seq: 375, TS: 3369637, Text: []byte("lkdtm: Performing direct entry ACCESS_NULL")}, nil},
		{"facility and cont", "14,7,1000,c;more",
			Record{Facility: 1, Level: 6, Seq: 7, TS: 1000, Cont: true, Text: []byte("more")}, nil},
		{"caller", "4,10,20,-,caller=T116;x",
			Record{Level: 4, Seq: 10, TS: 20, Caller: "T116", Text: []byte("x")}, nil},
		{"release prefix", "6.1.0-56-amd64,6,444,501151268,-;msg",
			Record{Level: 6, Seq: 444, TS: 501151268, Release: "6.1.0-56-amd64", Text: []byte("msg")}, nil},
		{"escapes", `1,2,3,-;a\x0ab\x5c\x7fc\xzz\x4`,
			Record{Level: 1, Seq: 2, TS: 3, Text: []byte("a\nb\\\x7fc\\xzz\\x4")}, nil},
		{"dictionary", "6,1,2,-;text\n SUBSYSTEM=net\n DEVICE=+net:eth0\n hostname=web-1\n",
			Record{Level: 6, Seq: 1, TS: 2, Text: []byte("text"),
				Dict: []KV{{"SUBSYSTEM", "net"}, {"DEVICE", "+net:eth0"}, {"hostname", "web-1"}}}, nil},
		{"fragment", "6,9,10,-,ncfrag=1000/1500;abc",
			Record{Level: 6, Seq: 9, TS: 10, Frag: &Frag{Off: 1000, Total: 1500, Body: []byte("abc")}}, nil},
		{"fragment too long", "6,9,10,-,ncfrag=1499/1500;abc", Record{}, ErrBadFragment},
		{"fragment total too big", "6,9,10,-,ncfrag=0/9000;abc", Record{}, ErrBadFragment},
		{"fragment no slash", "6,9,10,-,ncfrag=0;abc", Record{}, ErrBadFragment},
		{"plain console line", "[    3.371591] BUG: kernel NULL pointer dereference, address: 0000000000000000", Record{}, ErrNotExtended},
		{"plain with semicolon", "a, b, c, d; e", Record{}, ErrNotExtended},
		{"too few fields", "6,1,2;x", Record{}, ErrNotExtended},
		{"long flags", "6,1,2,--;x", Record{}, ErrNotExtended},
		{"newline in header", "6,1\n,2,-;x", Record{}, ErrNotExtended},
		{"empty", "", Record{}, ErrNotExtended},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseExtended([]byte(tt.in))
			if err != tt.err {
				t.Fatalf("err %v, want %v", err, tt.err)
			}
			if err != nil {
				return
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestConsoleLine(t *testing.T) {
	r := Record{TS: 3371591, Text: []byte("first\nsecond")}
	got := string(ConsoleLine([]byte("x"), &r))
	want := "x[    3.371591] first\n[    3.371591] second\n"
	if got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	r = Record{TS: 123456789012345, Text: []byte("late")}
	if got := string(ConsoleLine(nil, &r)); got != "[123456789.012345] late\n" {
		t.Errorf("got %q", got)
	}
}

// collect pushes datagrams through a Stream and returns its lines and events.
type collect struct {
	lines  []string
	events []Event
}

func (c *collect) emit(line []byte, ev Event) {
	c.lines = append(c.lines, string(line))
	c.events = append(c.events, ev)
}

func rec(seq, ts uint64, text string) []byte {
	r := Record{Seq: seq, TS: ts, Level: 6}
	var b bytes.Buffer
	b.WriteString("6,")
	b.WriteString(itoa(seq))
	b.WriteString(",")
	b.WriteString(itoa(ts))
	b.WriteString(",-;")
	b.WriteString(text)
	_ = r
	return b.Bytes()
}

func itoa(n uint64) string {
	if n == 0 {
		return "0"
	}
	var b []byte
	for ; n > 0; n /= 10 {
		b = append([]byte{byte('0' + n%10)}, b...)
	}
	return string(b)
}

func texts(lines []string) string {
	var out []string
	for _, l := range lines {
		_, after, _ := strings.Cut(strings.TrimSuffix(l, "\n"), "] ")
		out = append(out, after)
	}
	return strings.Join(out, " ")
}

func TestStreamOrdering(t *testing.T) {
	t0 := time.Unix(1000, 0)
	type step struct {
		seq, ts uint64
		text    string
		tick    time.Duration // when set, a Tick at t0+tick instead of a datagram
	}
	tests := []struct {
		name                                string
		steps                               []step
		want                                string
		gaps, dups, reordered, reboots, bad uint64
	}{
		{name: "in order", steps: []step{{seq: 5, ts: 1, text: "a"}, {seq: 6, ts: 2, text: "b"}}, want: "a b"},
		{name: "swap", steps: []step{{seq: 1, ts: 1, text: "a"}, {seq: 3, ts: 3, text: "c"}, {seq: 2, ts: 2, text: "b"}},
			want: "a b c", reordered: 1},
		{name: "gap after timeout", steps: []step{{seq: 1, ts: 1, text: "a"}, {seq: 4, ts: 4, text: "d"}, {tick: 50 * time.Millisecond},
			{seq: 5, ts: 5, text: "e"}, {tick: 200 * time.Millisecond}}, want: "a d e", gaps: 2, reordered: 2},
		{name: "duplicate", steps: []step{{seq: 1, ts: 1, text: "a"}, {seq: 2, ts: 2, text: "b"}, {seq: 2, ts: 2, text: "b"}},
			want: "a b", dups: 1},
		{name: "replay of the ring buffer", steps: []step{{seq: 0, ts: 0, text: "Linux version"}, {seq: 1, ts: 0, text: "cmdline"},
			{seq: 2, ts: 500, text: "x"}, {seq: 0, ts: 0, text: "Linux version"}, {seq: 1, ts: 0, text: "cmdline"},
			{seq: 2, ts: 500, text: "x"}, {seq: 3, ts: 600, text: "y"}}, want: "Linux version cmdline x y", dups: 3},
		{name: "reboot", steps: []step{{seq: 0, ts: 0, text: "Linux version"}, {seq: 1, ts: 0, text: "cmdline"},
			{seq: 2, ts: 500, text: "x"}, {seq: 0, ts: 0, text: "Linux version"}, {seq: 1, ts: 0, text: "cmdline"},
			{seq: 2, ts: 480, text: "x2"}, {seq: 3, ts: 600, text: "y"}}, want: "Linux version cmdline x x2 y", dups: 2, reboots: 1},
		{name: "reboot heard late", steps: []step{{seq: 900, ts: 9000000, text: "old"}, {seq: 901, ts: 9000001, text: "old2"},
			{seq: 4, ts: 20, text: "new"}}, want: "old old2 new", reboots: 1},
		{name: "far jump", steps: []step{{seq: 1, ts: 1, text: "a"}, {seq: 1000, ts: 2, text: "b"}}, want: "a b", gaps: 998},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := NewStream(StreamOptions{})
			var c collect
			for _, st := range tt.steps {
				if st.tick > 0 {
					s.Tick(t0.Add(st.tick), c.emit)
					continue
				}
				s.Push(rec(st.seq, st.ts, st.text), t0, c.emit)
			}
			if got := texts(c.lines); got != tt.want {
				t.Errorf("lines %q, want %q", got, tt.want)
			}
			st := s.Stats
			if st.Gaps != tt.gaps || st.Dups != tt.dups || st.Reordered != tt.reordered || st.Reboots != tt.reboots {
				t.Errorf("stats %+v, want gaps %d dups %d reordered %d reboots %d", st, tt.gaps, tt.dups, tt.reordered, tt.reboots)
			}
			if tt.reboots > 0 {
				n := 0
				for _, ev := range c.events {
					if ev == EventReboot {
						n++
					}
				}
				if n != int(tt.reboots) {
					t.Errorf("%d reboot events, want %d", n, tt.reboots)
				}
			}
		})
	}
}

func TestStreamFragments(t *testing.T) {
	body := strings.Repeat("0123456789", 150) + "\n hostname=db-7"
	var frags [][]byte
	for off := 0; off < len(body); off += 700 {
		end := min(off+700, len(body))
		frags = append(frags, []byte("4,77,5000000,-,ncfrag="+itoa(uint64(off))+"/"+itoa(uint64(len(body)))+";"+body[off:end]))
	}
	s := NewStream(StreamOptions{})
	var c collect
	now := time.Now()
	// Out of order and with a duplicate: the record completes once, from all bytes.
	s.Push(frags[2], now, c.emit)
	s.Push(frags[0], now, c.emit)
	s.Push(frags[0], now, c.emit)
	if len(c.lines) != 0 {
		t.Fatalf("incomplete record emitted: %q", c.lines)
	}
	s.Push(frags[1], now, c.emit)
	if len(c.lines) != 1 || c.lines[0] != "[    5.000000] "+strings.Repeat("0123456789", 150)+"\n" {
		t.Fatalf("lines %q", c.lines)
	}
	if s.Hostname != "db-7" {
		t.Errorf("hostname %q", s.Hostname)
	}
	if s.Buffered() > 16<<10 {
		t.Errorf("buffered %d after completion", s.Buffered())
	}
}

func TestStreamPlain(t *testing.T) {
	s := NewStream(StreamOptions{})
	var c collect
	now := time.Now()
	s.Push([]byte("[    0.000000] Linux version 6.1\n[    1.0] a"), now, c.emit)
	s.Push([]byte("bc\n[    2.0] d"), now, c.emit)
	if got := strings.Join(c.lines, ""); got != "[    0.000000] Linux version 6.1\n[    1.0] abc\n" {
		t.Fatalf("got %q", got)
	}
	s.Tick(now.Add(time.Second), c.emit)
	if c.lines[len(c.lines)-1] != "[    2.0] d\n" {
		t.Errorf("partial line not released: %q", c.lines)
	}
	s.Push([]byte("[    0.000000] Linux version 6.1\n"), now, c.emit)
	if c.events[len(c.events)-1] != EventReboot || s.Stats.Reboots != 1 {
		t.Errorf("no reboot event for a second banner")
	}
}

// TestLabCaptures feeds real captures (one datagram per line of the extended
// capture; the plain stream in 1000-byte payloads) and checks the oops parser finds
// the crash in the lines the stream produces.
func TestLabCaptures(t *testing.T) {
	for _, name := range []string{"ACCESS_NULL.netconsole-ext", "ACCESS_NULL.netconsole"} {
		t.Run(name, func(t *testing.T) {
			data, err := os.ReadFile("testdata/" + name)
			if err != nil {
				t.Fatal(err)
			}
			var dgrams [][]byte
			if strings.HasSuffix(name, "-ext") {
				for _, l := range bytes.SplitAfter(data, []byte("\n")) {
					if len(l) > 0 {
						dgrams = append(dgrams, bytes.TrimSuffix(l, []byte("\n")))
					}
				}
			} else {
				for len(data) > 0 {
					n := min(len(data), MaxPlainPayload)
					dgrams = append(dgrams, data[:n])
					data = data[n:]
				}
			}
			s := NewStream(StreamOptions{})
			var out bytes.Buffer
			for _, d := range dgrams {
				s.Push(d, time.Now(), func(l []byte, _ Event) { out.Write(l) })
			}
			s.Flush(func(l []byte, _ Event) { out.Write(l) })
			if s.Stats.Bad != 0 {
				t.Errorf("%d bad datagrams", s.Stats.Bad)
			}
			reps := oops.Parse(out.Bytes())
			if len(reps) == 0 || reps[0].Kind != oops.KindNullDeref {
				t.Fatalf("no null-ptr-deref report in the stream's lines (%d reports)", len(reps))
			}
			if !reps[0].Panicked {
				t.Errorf("report not marked panicked")
			}
		})
	}
}

func FuzzParseExtended(f *testing.F) {
	f.Add([]byte("6,375,3369637,-;lkdtm: Performing direct entry ACCESS_NULL"))
	f.Add([]byte("6.1.0-56-amd64,6,444,501151268,-,caller=T1;msg\\x0a\n hostname=x\n"))
	f.Add([]byte("6,9,10,-,ncfrag=1000/1500;abc"))
	f.Add([]byte("[    3.371591] BUG: kernel NULL pointer dereference"))
	f.Fuzz(func(t *testing.T, p []byte) {
		r, err := ParseExtended(p)
		if err != nil {
			return
		}
		if r.Frag != nil && (r.Frag.Off+len(r.Frag.Body) > r.Frag.Total || r.Frag.Total >= MaxRecord) {
			t.Fatalf("fragment out of bounds: %+v", r.Frag)
		}
		if len(r.Text) > len(p) {
			t.Fatalf("text longer than the datagram")
		}
	})
}

// FuzzStream pushes arbitrary datagrams (split at 0xff bytes) and checks the stream
// neither panics nor holds more than its bound.
func FuzzStream(f *testing.F) {
	f.Add([]byte("6,1,2,-;a\xff6,3,4,-;c\xff6,2,3,-;b\xff6,0,0,-;z"))
	f.Add([]byte("6,9,10,-,ncfrag=0/6;abc\xff6,9,10,-,ncfrag=3/6;def\xffplain\ntext"))
	f.Fuzz(func(t *testing.T, in []byte) {
		s := NewStream(StreamOptions{Window: 8})
		now := time.Unix(0, 0)
		lines := 0
		emit := func(l []byte, _ Event) {
			if len(l) == 0 || l[len(l)-1] != '\n' {
				t.Fatalf("line without newline: %q", l)
			}
			lines++
		}
		for _, d := range bytes.Split(in, []byte{0xff}) {
			now = now.Add(10 * time.Millisecond)
			s.Push(d, now, emit)
			s.Tick(now, emit)
			if len(s.seq.held) > 8 {
				t.Fatalf("%d records held, window 8", len(s.seq.held))
			}
		}
		s.Flush(emit)
		if s.Pending() && s.frags.size() == 0 {
			t.Fatalf("pending after flush")
		}
		// Streams sharing one Scratch say what a stream with its own says: a
		// record held for a missing one must not point into the shared space.
		var sc Scratch
		own, a, b := NewStream(StreamOptions{Window: 8}), NewStream(StreamOptions{Window: 8, Scratch: &sc}), NewStream(StreamOptions{Window: 8, Scratch: &sc})
		var want, got, other bytes.Buffer
		now = time.Unix(0, 0)
		for _, d := range bytes.Split(in, []byte{0xff}) {
			now = now.Add(10 * time.Millisecond)
			own.Push(d, now, func(l []byte, _ Event) { want.Write(l) })
			b.Push(append([]byte("6,1,1,-;other host "), d...), now, func(l []byte, _ Event) { other.Write(l) })
			a.Push(d, now, func(l []byte, _ Event) { got.Write(l) })
			b.Push(d, now, func(l []byte, _ Event) { other.Write(l) })
			used := 0
			if a.frags.slots != nil {
				for _, sl := range a.frags.slots {
					if sl.used {
						used++
					}
				}
			}
			if used != a.frags.n {
				t.Fatalf("%d fragment slots in use, counted %d", used, a.frags.n)
			}
		}
		own.Flush(func(l []byte, _ Event) { want.Write(l) })
		a.Flush(func(l []byte, _ Event) { got.Write(l) })
		if !bytes.Equal(want.Bytes(), got.Bytes()) {
			t.Fatalf("with a shared scratch:\n%q\nwith its own:\n%q", got.Bytes(), want.Bytes())
		}
	})
}
