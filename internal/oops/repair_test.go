package oops

import (
	"strings"
	"testing"
)

// TestRepair: each kind of transport damage, undone line by line.
func TestRepair(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     []string // lines the repaired text must hold
		not      []string // lines it must not hold
	}{
		{name: "quoted-printable",
			in:   "[ 1.0] RIP: =\n0010:foo+0x8a/0x90\n[ 1.1] Code: 0f =\n0b <0f> 0b\n[ 1.2] x=3Dy =\nz\n[ 1.3] a=\nb\n",
			want: []string{"[ 1.0] RIP: 0010:foo+0x8a/0x90", "[ 1.1] Code: 0f 0b <0f> 0b", "[ 1.2] x=y z"}},
		{name: "mail-quoted wrap of a register row",
			in: "> <4>[47900.5] RAX: 0000000000000cf0 RBX: ffff88006c3b2a68 RCX:\n> ffffc5217e257cf0\n" +
				"> <4>[47900.5] RIP: 0010:[<ffffffff81097d18>]  [<ffffffff81097d18>]\n> handle_pte_fault+0x24/0x70a\n",
			want: []string{"[47900.5] RAX: 0000000000000cf0 RBX: ffff88006c3b2a68 RCX: ffffc5217e257cf0",
				"[47900.5] RIP: 0010:[<ffffffff81097d18>]  [<ffffffff81097d18>] handle_pte_fault+0x24/0x70a"}},
		{name: "module list, code and HTML-eaten addresses",
			in: "Modules linked in: veth bridge\n                   i2c_i801 xfs(\nF) sg\nCode: 00 44 8b\n      00 <49> 39\n" +
				" [] process_backlog+0x9a/0x100\nIP: [] f+0x1/0x2\nRIP: 0010:[]  [] f+0x1/0x2\n",
			want: []string{"Modules linked in: veth bridge i2c_i801 xfs(F) sg", "Code: 00 44 8b 00 <49> 39",
				" process_backlog+0x9a/0x100", "IP: f+0x1/0x2", "RIP: 0010:f+0x1/0x2"}},
		{name: "an empty module list does not swallow the next line",
			in:   "Modules linked in:\nCPU 7\nPid: 193, comm: modprobe Tainted: G W 2.6.32 #1\n [] f+0x1/0x2\n",
			want: []string{"Modules linked in:", "CPU 7"}},
		{name: "syslog headers, foreign lines stay lines",
			in: "Jun  1 11:49:30 host kernel: [    1.7] WARNING: at a.c:1 f+0x7a/0x90()\n" +
				"Jun  1 11:49:30 host systemd[1]: Started x.\n" +
				"Jun  1 11:49:30 host kernel: [    1.8] Call Trace:\n",
			want: []string{"[    1.7] WARNING: at a.c:1 f+0x7a/0x90()", "Jun  1 11:49:30 host systemd[1]: Started x.", "[    1.8] Call Trace:"}},
		{name: "dmesg -T and glued timestamps",
			in:   "[Thu Sep  8 20:12:22 2022] BUG: kernel NULL pointer dereference,\naddress: 0000000000000158\n[136523.743141]Unable to handle\n",
			want: []string{"BUG: kernel NULL pointer dereference, address: 0000000000000158", "[136523.743141] Unable to handle"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, m, _ := repair([]byte(tc.in))
			lines := strings.Split(string(out), "\n")
			has := map[string]bool{}
			for _, l := range lines {
				has[l] = true
			}
			for _, w := range tc.want {
				if !has[w] {
					t.Errorf("no line %q in:\n%s", w, out)
				}
			}
			for _, n := range tc.not {
				if has[n] {
					t.Errorf("line %q should be gone:\n%s", n, out)
				}
			}
			for _, s := range m {
				if s.in < 0 || s.inEnd > len(tc.in) {
					t.Errorf("segment %+v outside the input", s)
				}
			}
		})
	}
}

// TestRepairsString: the repairs read as a sentence, nothing when nothing was done.
func TestRepairsString(t *testing.T) {
	if s := (*Repairs)(nil).String(); s != "" {
		t.Errorf("nil repairs: %q", s)
	}
	r := &Repairs{Rejoined: 3, MissingAddresses: 14, Uncertain: 1}
	if s := r.String(); s != "re-joined 3 wrapped lines; 1 of them on line width alone (uncertain); 14 frame addresses missing" {
		t.Errorf("%q", s)
	}
}
