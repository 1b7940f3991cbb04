package lab

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kcrash/kcrash/internal/store"
	"github.com/kcrash/kcrash/internal/store/sqlite"
)

// TestConsoleWatcher: the repro scenario's watcher returns each report of the
// target's console once, complete, timed when its first line reached the file,
// and starts over at a reboot's offset.
func TestConsoleWatcher(t *testing.T) {
	crash, err := os.ReadFile("../collector/testdata/ACCESS_NULL.netconsole")
	if err != nil {
		t.Fatal(err)
	}
	i := bytes.Index(crash, []byte("BUG: kernel NULL pointer"))
	i = bytes.LastIndexByte(crash[:i], '\n') + 1
	boot, oops := crash[:i], crash[i:]
	if !bytes.Contains(oops, []byte(PanicTrailer)) {
		t.Fatal("test data without a panic trailer")
	}
	half := bytes.IndexByte(oops[len(oops)/2:], '\n') + len(oops)/2 + 1
	dir := t.TempDir()
	st := &TargetState{TargetOptions: TargetOptions{Name: "t"}, Dir: dir, Started: time.Now()}
	ctx := context.Background()
	db, err := sqlite.Open(ctx, filepath.Join(dir, "k.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	w := &consoleWatcher{st: st, db: db}
	ids := map[int64]bool{}
	appendConsole := func(b []byte) {
		f, err := os.OpenFile(filepath.Join(dir, "console.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		f.Write(b)
		f.Close()
	}
	var firstLine time.Time
	for _, step := range []struct {
		name    string
		reboot  bool   // a new boot starts at the console's end
		write   []byte // appended before the poll
		reports int
	}{
		{"boot", false, boot, 0},
		{"oops starts printing", false, oops[:half], 0},
		{"oops complete with the panic", false, oops[half:], 1},
		{"nothing new", false, nil, 0},
		{"reboot", true, boot, 0},
		{"the same crash again", false, oops, 1},
	} {
		if step.reboot {
			fi, _ := os.Stat(filepath.Join(dir, "console.log"))
			st.ConsoleOffset = fi.Size()
		}
		if step.write != nil {
			appendConsole(step.write)
		}
		before := time.Now()
		if step.name == "oops starts printing" {
			firstLine = before
		}
		obs, err := w.Poll(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(obs.Reports) != step.reports {
			t.Fatalf("%s: %d reports, want %d: %+v", step.name, len(obs.Reports), step.reports, obs.Reports)
		}
		for _, r := range obs.Reports {
			if r.ID == 0 || ids[r.ID] {
				t.Errorf("%s: report stored as %d (stored before: %v)", step.name, r.ID, ids)
			}
			ids[r.ID] = true
			if r.Signature == "" || r.Title == "" || !r.Panicked || r.Host != "t" {
				t.Errorf("%s: %+v", step.name, r)
			}
			// Timed by the poll that first saw its first line: the previous poll when
			// the report came in two parts, this one otherwise.
			lo, hi := before, time.Now()
			if step.name == "oops complete with the panic" {
				lo, hi = firstLine, before
			}
			if r.Time.Before(lo) || r.Time.After(hi) {
				t.Errorf("%s: report timed %s, want within %s–%s", step.name, r.Time, lo, hi)
			}
		}
		if obs.LastSeen.IsZero() {
			t.Errorf("%s: the console was never heard", step.name)
		}
		time.Sleep(5 * time.Millisecond)
	}
	reps, err := db.Reports(ctx, store.ReportQuery{Host: "t"})
	if err != nil || len(reps) != 2 || reps[0].Signature != reps[1].Signature {
		t.Fatalf("stored reports %+v, %v: want the two crashes", reps, err)
	}
	rep, err := db.Report(ctx, reps[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(rep.Text, "[") || !strings.Contains(rep.Text, "BUG: kernel NULL pointer") {
		t.Errorf("stored report %d:\n%.300s", rep.ID, rep.Text)
	}
}
