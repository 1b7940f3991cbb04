package collector

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/kcrash/kcrash/internal/netconsole"
)

// TestBootLogNames: a plain-netconsole host (no userdata) is named by systemd's
// "Hostname set to <…>" line and given the release of its boot banner; a malformed
// name names nothing.
func TestBootLogNames(t *testing.T) {
	s := openStore(t)
	c := New(Options{Store: s, LogDir: t.TempDir()})
	stop := run(c)
	defer stop()
	a := netip.MustParseAddrPort("10.9.0.1:6665")
	b := netip.MustParseAddrPort("10.9.0.2:6665")
	c.HandleBatch(0, time.Now(), []netconsole.Packet{
		{From: a, Data: []byte("[    0.000000] Linux version 6.1.0-55-cloud-amd64 (debian-kernel@lists.debian.org) (gcc-12) #1 SMP PREEMPT_DYNAMIC Debian 6.1.137-1 (2025-05-07)\n")},
		{From: a, Data: []byte("[    3.100000] systemd[1]: Hostname set to <web-7>.\n")},
		{From: b, Data: []byte("[    3.100000] systemd[1]: Hostname set to <we b<script>>.\n")},
		{From: b, Data: []byte("[    3.200000] eth0: link up\n")},
	})
	waitUntil(t, "both hosts in the store", 10*time.Second, func() bool {
		hs, _ := s.Hosts(context.Background())
		got := map[string]string{}
		for _, h := range hs {
			got[h.ID] = h.Name + " " + h.Release
		}
		return got[a.String()] == "web-7 6.1.0-55-cloud-amd64" && got[b.String()] != ""
	})
	hs, _ := s.Hosts(context.Background())
	for _, h := range hs {
		if h.ID == b.String() && h.Name != "" && h.Name != h.ID {
			t.Errorf("host %s named %q from a malformed Hostname line", h.ID, h.Name)
		}
	}
}
