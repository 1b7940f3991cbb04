package oops

import (
	"strings"
	"testing"

	"github.com/kcrash/kcrash/internal/netconsole"
)

// TestNoNeedleStartsInAPrefix: no needle of MayStart can begin inside the
// "[sec.usec] " prefix netconsole.ConsoleLine puts before a record's text, so a
// rendered line holds a needle only if its text does. The collector relies on it
// to skip the search in the lines of a datagram its reader found clean.
func TestNoNeedleStartsInAPrefix(t *testing.T) {
	const alphabet = "[ .0123456789]" // what a prefix is made of
	for _, ts := range []uint64{0, 1, 999_999, 1_234_567, 98_765_432_100, 1 << 60} {
		line := string(netconsole.ConsoleLine(nil, &netconsole.Record{TS: ts, Text: []byte("x")}))
		prefix := strings.TrimSuffix(line, "x\n")
		if strings.Trim(prefix, alphabet) != "" || !strings.HasSuffix(prefix, " ") {
			t.Fatalf("prefix %q: not of %q or not ending in a space; the collector's clean datagrams need this test redone", prefix, alphabet)
		}
	}
	// Every suffix of a prefix ends in its space and is made of the alphabet: a
	// needle that began inside one would begin with such a string.
	for _, n := range needles().needles {
		for k := 1; k < len(n); k++ {
			if head := string(n[:k]); head[k-1] == ' ' && strings.Trim(head, alphabet) == "" {
				t.Errorf("needle %q could begin inside a console prefix (%q)", n, head)
			}
		}
		line := netconsole.ConsoleLine(nil, &netconsole.Record{TS: 12_345_678, Text: []byte("text")})
		if !MayStart(append(line, n...)) {
			t.Errorf("needle %q not found after a prefix", n)
		}
	}
}
