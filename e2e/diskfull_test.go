package e2e

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kcrash/kcrash/internal/collector"
)

// smallDisk mounts a tmpfs of size bytes (needs root: CI runs as root; elsewhere
// the test is skipped) and returns its path.
func smallDisk(t *testing.T, size int) string {
	t.Helper()
	dir := t.TempDir()
	out, err := exec.Command("mount", "-t", "tmpfs", "-o", fmt.Sprintf("size=%d,mode=0755", size), "tmpfs", dir).CombinedOutput()
	if err != nil {
		msg := fmt.Sprintf("mount tmpfs (needs root): %v %s", err, out)
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	t.Cleanup(func() { exec.Command("umount", "-l", dir).Run() })
	return dir
}

// fill writes a file under dir until the disk is full and returns it.
func fill(t *testing.T, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "filler")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 4096)
	for {
		if _, err := f.Write(buf); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatal(err)
			}
			return path
		}
	}
}

func metric(t *testing.T, s *server, name string) float64 {
	t.Helper()
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + ` (\S+)$`).FindStringSubmatch(s.metrics(t))
	if m == nil {
		t.Fatalf("no metric %s", name)
	}
	v, _ := strconv.ParseFloat(m[1], 64)
	return v
}

func dashboard(t *testing.T, s *server) string {
	t.Helper()
	resp, err := http.Get("http://" + s.http + "/")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// crashFrom sends the lab's extended ACCESS_NULL capture from 127.0.8.n.
func crashFrom(t *testing.T, s *server, n int) {
	sendCapture(t, s.udp, &net.UDPAddr{IP: net.IPv4(127, 0, 8, byte(n)), Port: 6665}, sampleDir+"ACCESS_NULL.netconsole-ext", 0)
}

// TestServeDiskFull fills the disk under the raw logs, under the SQLite database,
// and under both with the spool: crash reports are still captured and stored (or
// spooled, or held, and stored once space returns); raw logs are shed first,
// counted in the metrics and shown on the dashboard; everything recovers without a
// restart when space returns.
func TestServeDiskFull(t *testing.T) {
	t.Run("logs", func(t *testing.T) {
		disk := smallDisk(t, 1<<20)
		other := t.TempDir()
		logs := filepath.Join(disk, "logs")
		s := startServe(t, filepath.Join(other, "kcrash.db"), logs, "--spool", filepath.Join(other, "spool"))
		filler := fill(t, disk)
		for i := 1; i <= 3; i++ {
			crashFrom(t, s, i)
		}
		waitFor(t, "three reports with the logs' disk full", 10*time.Second, func() bool { return len(s.reports(t)) == 3 })
		waitFor(t, "raw log errors in the metrics", 10*time.Second, func() bool {
			return metric(t, s, "kcrash_log_write_errors_total") > 0 && metric(t, s, `kcrash_drops_total{what="log_bytes"}`) > 0
		})
		if d := dashboard(t, s); !strings.Contains(d, "Raw logs:") || !strings.Contains(d, "bytes shed") {
			t.Errorf("the dashboard does not show the shed raw logs")
		}
		os.Remove(filler)
		// Raw logs are shed for a second after a failed write, then tried again.
		waitFor(t, "the end of shedding", 10*time.Second, func() bool { return metric(t, s, "kcrash_log_shedding") == 0 })
		crashFrom(t, s, 4)
		waitFor(t, "the fourth report", 10*time.Second, func() bool { return len(s.reports(t)) == 4 })
		log := filepath.Join(logs, collector.LogName("127.0.8.4:6665"))
		waitFor(t, "raw logs written again once space returned", 10*time.Second, func() bool {
			b, _ := os.ReadFile(log)
			return strings.Contains(string(b), "Kernel panic - not syncing")
		})
	})
	t.Run("database", func(t *testing.T) {
		disk := smallDisk(t, 4<<20)
		other := t.TempDir()
		s := startServe(t, filepath.Join(disk, "kcrash.db"), filepath.Join(other, "logs"))
		crashFrom(t, s, 11)
		waitFor(t, "the first report", 10*time.Second, func() bool { return len(s.reports(t)) == 1 })
		filler := fill(t, disk)
		for i := 12; i <= 14; i++ {
			crashFrom(t, s, i)
		}
		// The three captures are spooled (pending) before they are analyzed and their
		// reports tried on the store, so the failed store shows after them.
		waitFor(t, "three reports in the spool", 10*time.Second, func() bool { return metric(t, s, "kcrash_spool_pending") >= 3 })
		waitFor(t, "store errors with the database's disk full", 10*time.Second, func() bool { return metric(t, s, "kcrash_store_errors_total") > 0 })
		if n := metric(t, s, "kcrash_reports_total"); n != 1 {
			t.Errorf("%v reports stored with the database's disk full, want 1", n)
		}
		os.Remove(filler)
		waitFor(t, "the spooled reports stored once space returned", 20*time.Second, func() bool { return len(s.reports(t)) == 4 })
		waitFor(t, "an empty spool", 10*time.Second, func() bool { return metric(t, s, "kcrash_spool_pending") == 0 })
	})
	t.Run("everything", func(t *testing.T) {
		disk := smallDisk(t, 4<<20)
		s := startServe(t, filepath.Join(disk, "kcrash.db"), filepath.Join(disk, "logs"))
		crashFrom(t, s, 21)
		waitFor(t, "the first report", 10*time.Second, func() bool { return len(s.reports(t)) == 1 })
		filler := fill(t, disk)
		for i := 22; i <= 24; i++ {
			crashFrom(t, s, i)
		}
		waitFor(t, "three reports held for the store", 10*time.Second, func() bool { return metric(t, s, "kcrash_reports_queued") >= 1 })
		os.Remove(filler)
		waitFor(t, "the held reports stored once space returned", 20*time.Second, func() bool { return len(s.reports(t)) == 4 })
		if metric(t, s, `kcrash_drops_total{what="log_bytes"}`) == 0 {
			t.Errorf("no raw log bytes shed with the disk full")
		}
	})
}
