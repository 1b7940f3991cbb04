package e2e

import (
	"bytes"
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/kcrash/kcrash/internal/lab"
)

// TestFleet boots two guests that both send netconsole to a port this test opens,
// crashes one of them by name through `kcrash lab fleet`, and checks what arrived:
// the crashed guest's stream holds its oops, the other's none.
func TestFleet(t *testing.T) {
	dir := lab.DefaultDir()
	if _, err := lab.LoadKernel(filepath.Join(dir, "current")); err != nil {
		needLab(t, "%v", err)
	}
	for _, extended := range []bool{false, true} {
		name := "plain"
		if extended {
			name = "extended"
		}
		t.Run(name, func(t *testing.T) { testFleet(t, extended) })
	}
}

func testFleet(t *testing.T, extended bool) {
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetReadBuffer(4 << 20)
	// Datagrams by source: each guest's user network NATs it to its own host port.
	streams := map[string]*bytes.Buffer{}
	var mu sync.Mutex
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 65536)
		for {
			n, from, err := conn.ReadFromUDP(buf)
			if err != nil {
				return
			}
			mu.Lock()
			b := streams[from.String()]
			if b == nil {
				b = new(bytes.Buffer)
				streams[from.String()] = b
			}
			b.Write(buf[:n])
			if extended && n > 0 && buf[n-1] != '\n' {
				b.WriteByte('\n') // one record per line, as the lab's .netconsole-ext files
			}
			mu.Unlock()
		}
	}()

	keep := t.TempDir()
	args := []string{"lab", "fleet", "-n", "2", "--to", conn.LocalAddr().String(), "--crash-names", "fleet-2", "--json", "--keep", keep}
	if extended {
		args = append(args, "--extended")
	}
	cmd := exec.Command(kcrashBin, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("kcrash %v: %v\n%s\n%s", args, err, out, stderr.Bytes())
	}
	var res lab.FleetResult
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("fleet --json: %v\n%s", err, out)
	}
	time.Sleep(500 * time.Millisecond) // the last datagrams
	conn.Close()
	<-done

	crashed := res.Crashed()
	if len(crashed) != 1 || crashed[0] != "fleet-2" {
		t.Fatalf("crashed guests %v, want [fleet-2]; result %s", crashed, out)
	}
	// Name each stream by the line lab/init.sh logs once netconsole is up.
	byGuest := map[string][]byte{}
	for from, b := range streams {
		for _, g := range []string{"fleet-1", "fleet-2"} {
			if bytes.Contains(b.Bytes(), []byte("kcrash-lab: guest "+g+" ready")) {
				if byGuest[g] != nil {
					t.Errorf("two streams name %s (one from %s)", g, from)
				}
				byGuest[g] = b.Bytes()
			}
		}
	}
	if len(byGuest) != 2 {
		t.Fatalf("got streams from %d sources, %d of them named; want fleet-1 and fleet-2", len(streams), len(byGuest))
	}
	for g, data := range byGuest {
		path := filepath.Join(keep, g+".received")
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		reports := parse(t, path)
		if g == "fleet-1" {
			if len(reports) != 0 {
				t.Errorf("%s did not crash but its stream has reports:%s", g, summary(reports))
			}
			continue
		}
		want := lab.Facts{Kind: "null-ptr-deref", RIPFunc: "lkdtm_ACCESS_NULL"}
		if r := find(reports, want); r == nil {
			t.Errorf("%s crashed (ACCESS_NULL) but its stream has no such report:%s", g, summary(reports))
		}
	}
}
