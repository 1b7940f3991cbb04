package collector

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kcrash/kcrash/internal/store"
)

// TestSpoolShortWrite: a report's spool line written only in part (the disk filled
// in the middle of it) is cut back, so the next line starts on a line of its own
// and a restart reads it. Without the cut, the piece and the next line run together,
// the checksum fails and reading stops there: every later report would be lost.
//
// The disk is a real tmpfs with one free page (root: CI runs as root).
func TestSpoolShortWrite(t *testing.T) {
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=256k,mode=0755", "tmpfs", dir).CombinedOutput(); err != nil {
		msg := fmt.Sprintf("mount tmpfs (needs root): %v %s", err, out)
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	t.Cleanup(func() { exec.Command("umount", "-l", dir).Run() })
	path := filepath.Join(dir, "spool")
	s, _, _, err := openSpool(path)
	if err != nil {
		t.Fatal(err)
	}
	// Fill the disk, then free one page: a line longer than a page is written in part.
	filler, err := os.Create(filepath.Join(dir, "filler"))
	if err != nil {
		t.Fatal(err)
	}
	defer filler.Close()
	page := make([]byte, 4096)
	var size int64
	for {
		n, err := filler.Write(page)
		size += int64(n)
		if err != nil {
			break
		}
	}
	if err := filler.Truncate(size - 4096); err != nil {
		t.Fatal(err)
	}
	report := func(key string) *store.Report {
		return &store.Report{Key: key, Host: "h", Title: "BUG: " + key, Text: strings.Repeat("x", 3*4096)}
	}
	if err := s.add(report("first")); err == nil {
		t.Fatal("a 12 KiB line fitted in one free page: the disk was not full")
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Size() != 0 {
		t.Fatalf("after the failed write the spool holds %d bytes, want 0 (the piece cut back)", st.Size())
	}
	// Space returns; the next report is spooled whole and read back after a restart.
	if err := filler.Truncate(0); err != nil {
		t.Fatal(err)
	}
	if err := s.add(report("second")); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s2, _, pending, err := openSpool(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if len(pending) != 1 || pending[0].Key != "second" {
		var keys []string
		for _, r := range pending {
			keys = append(keys, r.Key)
		}
		t.Fatalf("after a restart the spool holds %v, want [second]", keys)
	}
}
