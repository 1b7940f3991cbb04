package oops

import (
	"os"
	"strings"
	"testing"
)

// TestNewestFirst: a lab capture read newest first (every line reversed, as journalctl -r
// prints it) gives the report the capture gives in printing order.
func TestNewestFirst(t *testing.T) {
	for _, name := range []string{"lab/ACCESS_NULL.serial", "lab/WARNING.serial", "lab/BUG.serial", "wild/009.log", "wild/011.log", "wild/013.log", "wild/112.log"} {
		data, err := os.ReadFile("testdata/" + name)
		if err != nil {
			t.Fatal(err)
		}
		want := Parse(data)
		lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
		for i, j := 0, len(lines)-1; i < j; i, j = i+1, j-1 {
			lines[i], lines[j] = lines[j], lines[i]
		}
		got := Parse([]byte(strings.Join(lines, "\n") + "\n"))
		if len(got) != len(want) || len(got) == 0 {
			t.Fatalf("%s: %d reports reversed, %d in order", name, len(got), len(want))
		}
		g, w := got[0], want[0]
		if g.Title != w.Title || g.Kind != w.Kind || len(g.Frames) != len(w.Frames) || (g.IP == nil) != (w.IP == nil) ||
			g.IP != nil && g.IP.Func != w.IP.Func {
			t.Errorf("%s: reversed %q %s %d frames, in order %q %s %d frames", name, g.Title, g.Kind, len(g.Frames), w.Title, w.Kind, len(w.Frames))
		}
		if g.Repairs == nil || g.Repairs.Reversed == 0 {
			t.Errorf("%s: repairs %+v, want reversed lines", name, g.Repairs)
		}
	}
}
