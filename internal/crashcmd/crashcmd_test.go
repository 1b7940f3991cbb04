package crashcmd

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func TestParseHex(t *testing.T) {
	for in, want := range map[string]uint64{"ffffffff81000000": 0xffffffff81000000, "0x10": 16, "ABC": 0xabc} {
		if got, err := parseHex(in); err != nil || got != want {
			t.Errorf("parseHex(%q) = %#x, %v", in, got, err)
		}
	}
	for _, bad := range []string{"", "0x", "xyz", "1ffffffffffffffff"} {
		if _, err := parseHex(bad); err == nil {
			t.Errorf("parseHex(%q) succeeded", bad)
		}
	}
}

func TestUptimeAndSize(t *testing.T) {
	if got := uptime(3); got != "00:00:03" {
		t.Errorf("uptime(3) = %q", got)
	}
	if got := uptime(2*86400 + 3661); got != "2 days, 01:01:01" {
		t.Errorf("uptime = %q", got)
	}
	if got := sizeString(32640 * 4096); got != "127.5 MB" {
		t.Errorf("sizeString = %q", got)
	}
	if got := sizeString(2 << 30); got != "2 GB" {
		t.Errorf("sizeString = %q", got)
	}
}

func TestWriteIndented(t *testing.T) {
	var b bytes.Buffer
	b.WriteString("[    1.000000] ")
	writeIndented(&b, []byte("first\nsecond"), b.Len())
	if want := "[    1.000000] first\n               second"; b.String() != want {
		t.Errorf("%q", b.String())
	}
}

func TestRunUnknown(t *testing.T) {
	s := &Session{}
	if err := s.Run(&bytes.Buffer{}, "frobnicate"); !errors.Is(err, ErrUnknownCommand) {
		t.Errorf("err = %v", err)
	}
	var b bytes.Buffer
	if err := s.Run(&b, "help"); err != nil || !strings.Contains(b.String(), "bt ") || !strings.Contains(b.String(), "explain") {
		t.Errorf("help: %v %q", err, b.String())
	}
}

func TestGdbString(t *testing.T) {
	for _, c := range []struct {
		in   []byte
		want string
	}{
		{[]byte("init\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"), `"init\000\000\000\000\000\000\000\000\000\000\000"`},
		{[]byte("rcu_tasks_kthre\x00"), `"rcu_tasks_kthre"`},
		{[]byte("a\"b\\\n\x1b\x7f"), `"a\"b\\\n\033\177"`},
	} {
		if got := gdbString(c.in, false); got != c.want {
			t.Errorf("gdbString(%q) = %s, want %s", c.in, got, c.want)
		}
	}
	if got := gdbChar('\'', '\''); got != `\'` {
		t.Errorf("gdbChar quote = %s", got)
	}
}

func TestGdbDisHelpers(t *testing.T) {
	if got := dsSegment("%edx,0x107ea8b(%rip)"); got != "%edx,%ds:0x107ea8b(%rip)" {
		t.Errorf("dsSegment = %q", got)
	}
	if got := dsSegment("0x8(%rax,%rbx,1),%ecx"); got != "%ds:0x8(%rax,%rbx,1),%ecx" {
		t.Errorf("dsSegment = %q", got)
	}
	if !hasDSPrefix([]byte{0x3e, 0x0f, 0xb1}) || hasDSPrefix([]byte{0x48, 0x3e}) {
		t.Error("hasDSPrefix")
	}
	for in, want := range map[string]string{"panic_print_sys_info.part.0": "panic_print_sys_info", "f.constprop.0.isra.0": "f", "page_fault_oops.cold": "page_fault_oops.cold"} {
		if got := gdbName(in); got != want {
			t.Errorf("gdbName(%s) = %s", in, got)
		}
	}
}
