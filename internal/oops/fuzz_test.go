package oops

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// FuzzParse feeds arbitrary bytes to Parse: it must not panic, and every report's span
// must lie inside the input.
func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob("testdata/lab/*")
	for _, name := range files {
		if data, err := os.ReadFile(name); err == nil && len(data) < 64<<10 {
			f.Add(data)
		}
	}
	wild, _ := filepath.Glob("testdata/wild/*.log")
	for _, name := range wild {
		if data, err := os.ReadFile(name); err == nil && len(data) < 4<<10 {
			f.Add(data)
		}
	}
	f.Add([]byte("BUG: KASAN: use-after-free in foo+0x1/0x2\nRead of size 8 at addr ffff by task x/1\nCall Trace:\n foo+0x1/0x2\n"))
	f.Add([]byte("6,1,2,-,ncfrag=0/10;BUG: \n6,1,2,-,ncfrag=5/10;x\\x0ay\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		// A watchdog turns a hang into a failure the fuzzer records.
		done := make(chan struct{})
		defer close(done)
		go func() {
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				panic(fmt.Sprintf("Parse hung on %q", data))
			}
		}()
		for _, r := range Parse(data) {
			if r.Start < 0 || r.End > len(data) || r.Start > r.End {
				t.Fatalf("span %d-%d outside input of %d bytes", r.Start, r.End, len(data))
			}
			if r.Title == "" || r.Signature == "" {
				t.Fatalf("report without title or signature: %+v", r)
			}
		}
	})
}

// FuzzRepair feeds arbitrary bytes to the transport repair (quoting, quoted-printable,
// log prefixes, wraps, interleaving): it must not panic or hang, must keep its map inside
// the input, and must never make the text much larger than it was.
func FuzzRepair(f *testing.F) {
	// The wild reports under 4 KiB (larger seeds slow the mutator to a crawl).
	files, _ := filepath.Glob("testdata/wild/*.log")
	for _, name := range files {
		if data, err := os.ReadFile(name); err == nil && len(data) < 4<<10 {
			f.Add(data)
		}
	}
	// Quoted-printable soft breaks and escapes, a mail-wrapped register line, a wrapped
	// Code: line, a hard-wrapped module list, HTML-eaten addresses.
	f.Add([]byte("Feb 25 05:12:26  [20079.8][ T37] RIP: =\n0010:foo+0x8a/0x90\n[ 1.0] Code: 0f =\n0b <0f> 0b=20\nx=3D1 =\n"))
	f.Add([]byte("> <4>[47900.533010] RAX: 0000000000000cf0 RBX: ffff88006c3b2a68 RCX:\n> ffffc5217e257cf0\n> <4>[1.0] RIP: 0010:[<ffffffff81097d18>]  [<ffffffff81097d18>]\n> handle_pte_fault+0x24/0x70a\n"))
	f.Add([]byte("Code: 00 44 8b 1d\n      00 00 <49> 39\nModules linked in: a b snd_hda_cod\nec_conexant xfs(\nF)\n [] process_backlog+0x9a/0x100\nIP: [] f+0x1/0x2\n"))
	f.Add([]byte("[ 1.1] kernel BUG at x.c:1!\n[ 1.2] invalid opcode: 0000 [#1] SMP\n[ 1.3] WARNING: CPU: 0 PID: 0 at y.c:2 f+0x1/0x2\n[ 1.4] CPU: 1 PID: 0 Comm: a Not tainted 5.15 #1\n[ 1.5] RIP: 0010:g+0x1/0x2\n[ 1.6]  vrf\n[ 1.7] Call Trace:\n[ 1.8]  h+0x1/0x2\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		done := make(chan struct{})
		defer close(done)
		go func() {
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				panic(fmt.Sprintf("repair hung on %q", data))
			}
		}()
		out, m, ev := repair(data)
		if len(out) > 2*len(data)+2 {
			t.Fatalf("repaired text grew from %d to %d bytes", len(data), len(out))
		}
		for _, s := range m {
			if s.in < 0 || s.inEnd > len(data) || s.out > len(out) {
				t.Fatalf("segment %+v outside input %d / output %d", s, len(data), len(out))
			}
		}
		for _, e := range ev {
			if e.off < 0 || e.off > len(out) {
				t.Fatalf("repair event at %d outside output of %d", e.off, len(out))
			}
		}
		for _, r := range Parse(data) {
			if r.Start < 0 || r.End > len(data) || r.Start > r.End {
				t.Fatalf("span %d-%d outside input of %d bytes", r.Start, r.End, len(data))
			}
		}
	})
}
