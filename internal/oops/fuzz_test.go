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
