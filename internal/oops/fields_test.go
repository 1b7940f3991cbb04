package oops

import (
	"fmt"
	"os"
	"testing"
)

// TestFields checks structured fields on real reports of several shapes: x86-64 GPF with
// KASAN's hint, old and new arm64, a printk-caller (T/C context) log.
func TestFields(t *testing.T) {
	for _, tc := range []struct {
		file                string
		kind                Kind
		ip, arch, comm      string
		addr                uint64
		hint                bool
		minRegs, minFrames  int
		codeBytes, trap     int
		firstFrame, release string
	}{
		{file: "510", kind: KindGPF, ip: "rb_erase", arch: "x86_64", comm: "kworker/u4:2", addr: 0xdffffc0000000002,
			hint: true, minRegs: 25, minFrames: 10, codeBytes: 64, trap: 42, firstFrame: "__kernfs_remove",
			release: "5.8.0-rc3-next-20200703-syzkaller"},
		{file: "45", kind: KindPageFault, ip: "_snd_timer_stop.constprop.9", arch: "arm64", comm: "syz-executor", addr: 0xdead000000000108,
			minRegs: 3, release: "3.18.0"},
		{file: "524", kind: KindInternalError, ip: "__raw_readb", arch: "arm64", minRegs: 30, codeBytes: 20, trap: 16},
	} {
		t.Run(tc.file, func(t *testing.T) {
			data, err := os.ReadFile("testdata/syzkaller/report/" + tc.file)
			if err != nil {
				t.Fatal(err)
			}
			var r *Report
			for _, rep := range Parse(data) {
				if rep.IP != nil { // the file's own TITLE: header is a report too
					r = rep
					break
				}
			}
			if r == nil {
				t.Fatal("no report with an IP")
			}
			if r.Kind != tc.kind || r.IP.Func != tc.ip || r.Arch != tc.arch {
				t.Errorf("kind %s ip %q arch %q, want %s %q %q", r.Kind, r.IP.Func, r.Arch, tc.kind, tc.ip, tc.arch)
			}
			if tc.comm != "" && r.Comm != tc.comm {
				t.Errorf("comm %q, want %q", r.Comm, tc.comm)
			}
			if tc.addr != 0 && (r.FaultAddress == nil || *r.FaultAddress != tc.addr) {
				t.Errorf("fault address %v, want %#x", r.FaultAddress, tc.addr)
			}
			if tc.hint != (r.AddressHint != "") {
				t.Errorf("hint %q", r.AddressHint)
			}
			if len(r.Registers) < tc.minRegs {
				t.Errorf("%d registers, want at least %d: %v", len(r.Registers), tc.minRegs, r.Registers)
			}
			if len(r.Frames) < tc.minFrames {
				t.Errorf("%d frames, want at least %d", len(r.Frames), tc.minFrames)
			}
			if tc.firstFrame != "" && (len(r.Frames) == 0 || r.Frames[0].Func != tc.firstFrame) {
				t.Errorf("first frame %+v, want %s", r.Frames, tc.firstFrame)
			}
			if tc.codeBytes > 0 && (r.Code == nil || len(r.Code.Bytes) != tc.codeBytes || r.Code.Trap != tc.trap) {
				t.Errorf("code %+v, want %d bytes, trap at %d", r.Code, tc.codeBytes, tc.trap)
			}
			if tc.release != "" && r.Release != tc.release {
				t.Errorf("release %q, want %q", r.Release, tc.release)
			}
		})
	}
}

// TestExtendedFragments: ncfrag fragments of one record are reassembled, \xNN unescaped
// and userdata lines dropped; the report's span maps back to the input.
func TestExtendedFragments(t *testing.T) {
	full := "4,101,5000100,-;WARNING: CPU: 0 PID: 1 at drivers/misc/lkdtm/bugs.c:85 lkdtm_WARNING+0x13/0x20 [lkdtm]\n" +
		" SUBSYSTEM=x\n" +
		"4,102,5000200,-;Call Trace:\\x0a <TASK>\\x0a lkdtm_do_action+0x1/0x2 [lkdtm]\\x0a direct_entry+0x3/0x4\\x0a </TASK>\n"
	msg := "WARNING: CPU: 0 PID: 1 at drivers/misc/lkdtm/bugs.c:85 lkdtm_WARNING+0x13/0x20 [lkdtm]"
	parts := fmt.Sprintf("4,101,5000100,-,ncfrag=0/%d;%s\n", len(msg), msg[:40]) + " taskname=sh\n" +
		fmt.Sprintf("4,101,5000100,-,ncfrag=40/%d;%s\n", len(msg), msg[40:]) +
		"4,102,5000200,-;Call Trace:\\x0a <TASK>\\x0a lkdtm_do_action+0x1/0x2 [lkdtm]\\x0a direct_entry+0x3/0x4\\x0a </TASK>\n"
	a, b := Parse([]byte(full)), Parse([]byte(parts))
	if len(a) != 1 || len(b) != 1 {
		t.Fatalf("got %d and %d reports", len(a), len(b))
	}
	if a[0].Title != "WARNING in lkdtm_do_action" || a[0].Title != b[0].Title || a[0].Signature != b[0].Signature {
		t.Errorf("titles %q / %q, signatures %s / %s", a[0].Title, b[0].Title, a[0].Signature, b[0].Signature)
	}
	if len(a[0].Frames) != 2 || a[0].Frames[1].Func != "direct_entry" || a[0].Frames[0].Section != "TASK" {
		t.Errorf("frames %+v", a[0].Frames)
	}
	if a[0].Start != 0 || a[0].End != len(full)-1 {
		t.Errorf("span %d-%d of %d", a[0].Start, a[0].End, len(full))
	}
}

// TestSyslog: journal/syslog exports parse like the console.
func TestSyslog(t *testing.T) {
	in := "Nov 22 01:47:00 host kernel: [    3.37] BUG: kernel NULL pointer dereference, address: 0000000000000000\n" +
		"Nov 22 01:47:00 host kernel: [    3.37] RIP: 0010:foo_bar+0x14/0x53 [foo]\n" +
		"Nov 22 01:47:00 host kernel: [    3.37] Call Trace:\n" +
		"Nov 22 01:47:00 host kernel: [    3.37]  <TASK>\n" +
		"Nov 22 01:47:00 host kernel: [    3.37]  caller_fn+0x18/0x24 [foo]\n" +
		"Nov 22 01:47:00 host kernel: [    3.37]  </TASK>\n"
	reps := Parse([]byte(in))
	if len(reps) != 1 || reps[0].Title != "BUG: unable to handle kernel NULL pointer dereference in foo_bar" {
		t.Fatalf("%+v", reps)
	}
	if len(reps[0].Frames) != 1 || reps[0].Frames[0].Module != "foo" {
		t.Errorf("frames %+v", reps[0].Frames)
	}
}

func TestDetect(t *testing.T) {
	if Detect([]byte("[    0.000000] Linux version 6.1.0\n[    1.0] NMI watchdog: Perf NMI watchdog permanently disabled\n")) {
		t.Error("clean log detected as a crash")
	}
	if !Detect([]byte("[    3.37] BUG: kernel NULL pointer dereference, address: 0000000000000000\n")) {
		t.Error("NULL dereference not detected")
	}
}

func TestParseCode(t *testing.T) {
	for _, tc := range []struct {
		in        string
		n, trap   int
		trapLen   int
		first     byte
		unreadble bool
	}{
		{"48 8b 1c 25 <00> 00", 6, 4, 1, 0x48, false},
		{"910003fd f9000bf3 (08dffe60) d65f03c0", 16, 8, 4, 0xfd, false},
		{"Unable to access opcode bytes at 0x47b776.", 0, -1, 0, 0, true},
		{"???????? ???????? (d4210000)", 4, 0, 4, 0x00, true},
	} {
		c := parseCode(tc.in)
		if len(c.Bytes) != tc.n || c.Trap != tc.trap || c.TrapLen != tc.trapLen || c.Unreadable != tc.unreadble ||
			tc.n > 0 && c.Bytes[0] != tc.first {
			t.Errorf("%q: %+v", tc.in, c)
		}
	}
}
