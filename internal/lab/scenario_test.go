package lab

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"
)

func TestQEMUArgsTargets(t *testing.T) {
	base := GuestConfig{Kernel: &Kernel{Vmlinuz: "/k", Initramfs: "/i"}, Serial: "/s", QMP: "/q"}
	c := base
	c.UDPForward, c.WarmReset, c.PausePanic, c.AppendSerial = 4242, true, true, true
	args := strings.Join(c.QEMUArgs(), " ")
	for _, want := range []string{"hostfwd=udp:127.0.0.1:4242-:9", "panic=pause", "file,id=con,path=/s,append=on", "-serial chardev:con"} {
		if !strings.Contains(args, want) {
			t.Errorf("qemu args lack %q: %s", want, args)
		}
	}
	if strings.Contains(args, "-no-reboot") {
		t.Errorf("a warm-reset guest has -no-reboot (QMP system_reset would stop it): %s", args)
	}
	args = strings.Join(base.QEMUArgs(), " ")
	for _, want := range []string{"-no-reboot", "panic=none", "-serial file:/s"} {
		if !strings.Contains(args, want) {
			t.Errorf("default qemu args lack %q: %s", want, args)
		}
	}
}

func TestExtractPstore(t *testing.T) {
	rec := []byte("Oops#1 Part1\n<4>[    3.5] BUG: kernel NULL pointer dereference, address: 0000000000000000\n")
	b64 := base64.StdEncoding.EncodeToString(rec)
	console := fmt.Sprintf("LAB: init x\r\nLAB: pstore-record dmesg-ramoops-0 %d\r\n%s\r\n%s\r\nLAB: pstore-end dmesg-ramoops-0\r\n", len(rec), b64[:20], b64[20:])
	recs, order, err := extractPstore([]byte(console))
	if err != nil || len(order) != 1 || !bytes.Equal(recs["dmesg-ramoops-0"], rec) {
		t.Fatalf("extractPstore = %q %q %v", recs, order, err)
	}
	for _, bad := range []string{
		"LAB: pstore-record a 5\nAAAA\n",                        // no end
		"LAB: pstore-record a 5\n!!!!\nLAB: pstore-end a\n",     // not base64
		"LAB: pstore-record a 9\naGVsbG8=\nLAB: pstore-end a\n", // size mismatch
	} {
		if _, _, err := extractPstore([]byte(bad)); err == nil {
			t.Errorf("extractPstore(%q) did not fail", bad)
		}
	}
}

func FuzzExtractPstore(f *testing.F) {
	f.Add([]byte("LAB: pstore-record dmesg-ramoops-0 5\naGVsbG8=\nLAB: pstore-end dmesg-ramoops-0\n"))
	f.Add([]byte("LAB: pstore-record x 99999999999999999999\n\nLAB: pstore-end x\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		recs, order, err := extractPstore(data)
		if err != nil {
			return
		}
		for _, n := range order {
			if len(recs[n]) > len(data) {
				t.Fatalf("record %s of %d bytes from %d bytes of input", n, len(recs[n]), len(data))
			}
		}
	})
}

func TestSplitBootsAndOopsLines(t *testing.T) {
	log := "junk\n[    0.0] Linux version 6.1\n[    3.0] BUG: kernel NULL pointer dereference\n[    3.1] RIP: 0010:f+0x1/0x2\n" +
		"[    3.2] ---[ end trace 0000000000000000 ]---\n[    3.3] Kernel panic - not syncing: x\n" +
		"[    0.0] Linux version 6.1\nLAB: pstore-record a 1\n"
	boots := splitBoots([]byte(log))
	if len(boots) != 2 || !bytes.Contains(boots[1], []byte("pstore-record")) || bytes.Contains(boots[0], []byte("pstore-record")) {
		t.Fatalf("splitBoots: %q", boots)
	}
	lines := oopsLines(boots[0])
	if len(lines) != 3 || !strings.Contains(lines[2], "end trace") {
		t.Errorf("oopsLines: %q", lines)
	}
}

func TestRaceMeasure(t *testing.T) {
	var m RaceMeasure
	m.add(RaceRun{Crashed: true, Seconds: 2})
	m.add(RaceRun{Crashed: true, Seconds: 4})
	m.add(RaceRun{Seconds: 6}) // censored: watched, no crash
	if m.Runs != 3 || m.Crashes != 2 || m.WatchedS != 12 || m.MTTCS != 6 || m.RatePerS != 2.0/12 || len(m.TimesS) != 2 {
		t.Errorf("measure %+v", m)
	}
}

// TestFlood: the load generator holds its packet rate and stops when told.
func TestFlood(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	got := make(chan int)
	go func() {
		n := 0
		buf := make([]byte, 2048)
		for {
			pc.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
			if _, _, err := pc.ReadFrom(buf); err != nil {
				got <- n
				return
			}
			n++
		}
	}()
	res, err := Flood(context.Background(), LoadOptions{To: pc.LocalAddr().String(), PPS: 5000, Duration: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	n := <-got
	if res.Stopped != "duration" || res.Packets < 4500 || res.Packets > 5100 || int64(n) > res.Packets {
		t.Errorf("flood %+v, received %d", res, n)
	}
	if _, err := Flood(context.Background(), LoadOptions{To: "127.0.0.1:1", PPS: -1}); err == nil {
		t.Error("a negative rate was accepted")
	}
}

func TestTargetNames(t *testing.T) {
	for _, bad := range []string{"", "../x", "a/b", ".hidden", strings.Repeat("x", 70)} {
		if _, err := targetDir("/r", bad); err == nil {
			t.Errorf("target name %q accepted", bad)
		}
	}
	if d, err := targetDir("/r", "web-1"); err != nil || d != "/r/targets/web-1" {
		t.Errorf("targetDir = %q, %v", d, err)
	}
}
