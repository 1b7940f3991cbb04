package lab

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/binary"
	"encoding/json"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// kinds are the report kinds of internal/oops that the matrix expects.
var kinds = map[string]bool{
	"null-ptr-deref": true, "page-fault": true, "bug": true, "list-corruption": true,
	"stack-protector": true, "stack-overflow": true, "warning": true, "refcount": true,
	"panic": true, "soft-lockup": true, "hung-task": true, "rcu-stall": true, "slab-corruption": true,
}

func TestTriggerTable(t *testing.T) {
	ts := Triggers()
	if len(ts) < 21 {
		t.Errorf("%d triggers, the reference matrix has 21", len(ts))
	}
	names := map[string]bool{}
	for _, tr := range ts {
		if names[tr.Name] {
			t.Errorf("%s twice", tr.Name)
		}
		names[tr.Name] = true
		if !kinds[tr.Kind] {
			t.Errorf("%s: kind %q is not one the parser knows", tr.Name, tr.Kind)
		}
		if tr.Panics && tr.Hangs {
			t.Errorf("%s: panics and hangs", tr.Name)
		}
		if tr.LKDTM == "" || strings.ContainsAny(tr.LKDTM+tr.Name, " \t\n") {
			t.Errorf("%s: bad trigger %q", tr.Name, tr.LKDTM)
		}
		if tr.VCPUs < 1 || tr.VCPUs > 2 || tr.Timeout < 10*time.Second {
			t.Errorf("%s: vcpus %d timeout %s", tr.Name, tr.VCPUs, tr.Timeout)
		}
		if !tr.Panics && !tr.Hangs && !strings.Contains(tr.Args, "lab_wait=") {
			t.Errorf("%s: a trigger that does not panic needs a short lab_wait", tr.Name)
		}
	}
	for _, n := range []string{"ACCESS_NULL", "WARNING_panic", "HARDLOCKUP_smp2", "WRITE_AFTER_FREE_nonc", "WRITE_AFTER_FREE_ncdeadlock", "sysrq-c"} {
		if !names[n] {
			t.Errorf("no %s", n)
		}
	}
	if tr, _ := FindTrigger("HARDLOCKUP_smp2"); tr.VCPUs != 2 {
		t.Errorf("HARDLOCKUP_smp2 has %d vCPUs, the RCU stall needs a second one", tr.VCPUs)
	}
	if tr, _ := FindTrigger("WRITE_AFTER_FREE_nonc"); tr.Netconsole != "none" {
		t.Errorf("WRITE_AFTER_FREE_nonc must run without netconsole (it deadlocks)")
	}
	if _, err := FindTrigger("NO_SUCH"); err == nil {
		t.Error("FindTrigger found NO_SUCH")
	}
}

func TestCmdline(t *testing.T) {
	tr, _ := FindTrigger("SOFTLOCKUP")
	got := Cmdline(tr, 40001, 40002)
	want := "lab_name=SOFTLOCKUP lab_trigger=SOFTLOCKUP lab_nc=plain@40001,ext@40002 init_on_free=1 softlockup_panic=1 watchdog_thresh=2 lab_wait=60"
	if got != want {
		t.Errorf("Cmdline\n got %s\nwant %s", got, want)
	}
	tr, _ = FindTrigger("WRITE_AFTER_FREE_nonc")
	if got := Cmdline(tr, 1, 2); !strings.Contains(got, "lab_nc=none") {
		t.Errorf("nonc cmdline %q", got)
	}
	if RecipeHash("128M") == RecipeHash("256M") || RecipeHash("128M") != RecipeHash("128M") {
		t.Error("RecipeHash does not follow the guest memory")
	}
}

const consoleLog = `[    3.374999] RIP: 0010:lkdtm_ACCESS_NULL+0x14/0x53 [lkdtm]
[    3.374001] CPU: 0 PID: 116 Comm: sh Tainted: G           OE      6.1.0-56-cloud-amd64 #1  Debian 6.1.192-2
[    3.386002] RIP: 0033:0x47b7a0
[    3.395724] Kernel panic - not syncing: Fatal exception
[    3.396819] Kernel Offset: 0x1200000 from 0xffffffff81000000 (relocation range: 0xffffffff80000000-0xffffffffbfffffff)
[    3.397447] ---[ end Kernel panic - not syncing: Fatal exception ]---
`

func TestExtractFacts(t *testing.T) {
	f := ExtractFacts([]byte(consoleLog), "null-ptr-deref")
	want := Facts{Kind: "null-ptr-deref", RIPFunc: "lkdtm_ACCESS_NULL", RIPModule: "lkdtm", PanicMessage: "Fatal exception",
		KASLROffset: "0x1200000", Release: "6.1.0-56-cloud-amd64", PanicTrailer: true}
	if f != want {
		t.Errorf("facts\n got %+v\nwant %+v", f, want)
	}
	f = ExtractFacts([]byte("[ 1.0] RIP: 0010:__list_add_valid.cold+0x4b/0x5b\n[ 2.0] Kernel panic - not syncing: hung_task: blocked tasks\n"), "x")
	if f.RIPFunc != "__list_add_valid.cold" || f.RIPModule != "" || f.PanicMessage != "hung_task: blocked tasks" || f.PanicTrailer {
		t.Errorf("facts %+v", f)
	}
	// 6.12 prints the UID on the CPU line.
	if f := ExtractFacts([]byte("[ 3.1] CPU: 0 UID: 0 PID: 162 Comm: sh Tainted: G           OE      6.12.117+deb12-cloud-amd64 #1  Debian 6.12.117-1~deb12u1\n"), ""); f.Release != "6.12.117+deb12-cloud-amd64" {
		t.Errorf("6.12 CPU line: release %q", f.Release)
	}
	if f := ExtractFacts([]byte("RIP: 0033:0x47b7a0\n"), "panic"); f.RIPFunc != "" {
		t.Errorf("a user-mode RIP became the fact %q", f.RIPFunc)
	}
}

func TestManifestRoundTrip(t *testing.T) {
	dir := t.TempDir()
	m := &Manifest{LabVersion: Version, RecipeHash: "abc", Complete: true}
	m.Kernel.Release = "6.1.0-56-cloud-amd64"
	m.Kernel.Vmlinux = "../vmlinux"
	m.Entries = []*Entry{{Name: "BUG", Facts: Facts{Kind: "bug"}, Artifacts: []Artifact{
		{Kind: ArtSerial, Path: "BUG.serial", Size: 3},
		{Kind: ArtVmcore, Format: "kdump-zstd", Unsupported: "no zstd"},
	}}}
	if err := m.Save(dir); err != nil {
		t.Fatal(err)
	}
	got, err := LoadManifest(filepath.Join(dir, ManifestName))
	if err != nil {
		t.Fatal(err)
	}
	e := got.Entry("BUG")
	if e == nil || e.Artifact(ArtSerial, "") == nil || e.Artifact(ArtVmcore, "kdump-zstd").Unsupported != "no zstd" {
		t.Fatalf("entry lost: %+v", e)
	}
	if p := got.Path(e.Artifact(ArtSerial, "").Path); p != filepath.Join(dir, "BUG.serial") {
		t.Errorf("Path = %s", p)
	}
	if p := got.Path(got.Kernel.Vmlinux); p != filepath.Join(filepath.Dir(dir), "vmlinux") {
		t.Errorf("vmlinux path = %s", p)
	}
	for _, bad := range []string{`{}`, `{"recipe_hash":"a","kernel":{"release":"r"},"entries":[{"name":"A"},{"name":"A"}]}`, `[`} {
		if _, err := ParseManifest([]byte(bad)); err == nil {
			t.Errorf("ParseManifest(%s) accepted", bad)
		}
	}
}

func TestReceiver(t *testing.T) {
	dir := t.TempDir()
	files := ReceiverFiles{Stream: filepath.Join(dir, "s"), Records: filepath.Join(dir, "r"), JSONL: filepath.Join(dir, "j")}
	r, err := Listen("127.0.0.1:0", files)
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("udp", "127.0.0.1:"+strconv.Itoa(r.Port()))
	if err != nil {
		t.Fatal(err)
	}
	msgs := []string{"6,1,100,-;first\n", "4,2,200,-,ncfrag=0/4;ab", "bad \xff byte\n"}
	for _, m := range msgs {
		c.Write([]byte(m))
	}
	c.Close()
	for i := 0; i < 100; i++ {
		if n, _ := r.Stats(); n == len(msgs) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	read := func(p string) string { b, _ := os.ReadFile(p); return string(b) }
	if got := read(files.Stream); got != strings.Join(msgs, "") {
		t.Errorf("stream %q", got)
	}
	if got := read(files.Records); got != "6,1,100,-;first\n4,2,200,-,ncfrag=0/4;ab\nbad \xff byte\n" {
		t.Errorf("records %q", got)
	}
	lines := strings.Split(strings.TrimSpace(read(files.JSONL)), "\n")
	if len(lines) != 3 {
		t.Fatalf("jsonl has %d lines", len(lines))
	}
	var d Datagram
	if err := json.Unmarshal([]byte(lines[2]), &d); err != nil || d.Data != `bad \xff byte`+"\n" || d.T <= 0 || d.From == "" {
		t.Errorf("datagram %+v %v", d, err)
	}
}

func TestModuleOrder(t *testing.T) {
	dir := t.TempDir()
	dep := "kernel/drivers/net/virtio_net.ko: kernel/net/core/failover.ko kernel/drivers/net/net_failover.ko kernel/drivers/virtio/virtio.ko\n" +
		"kernel/drivers/net/net_failover.ko: kernel/net/core/failover.ko\n" +
		"kernel/net/core/failover.ko:\n" +
		"kernel/drivers/virtio/virtio.ko:\n" +
		"kernel/drivers/misc/pvpanic/pvpanic-mmio.ko: kernel/drivers/misc/pvpanic/pvpanic.ko\n" +
		"kernel/drivers/misc/pvpanic/pvpanic.ko:\n"
	os.WriteFile(filepath.Join(dir, "modules.dep"), []byte(dep), 0o644)
	os.WriteFile(filepath.Join(dir, "modules.builtin"), []byte("kernel/drivers/char/configfs.ko\n"), 0o644)
	ms, err := moduleOrder(dir, []string{"pvpanic_mmio", "virtio_net", "configfs"})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range ms {
		got = append(got, m.name)
	}
	pos := map[string]int{}
	for i, n := range got {
		pos[n] = i
	}
	if len(got) != 6 || pos["pvpanic"] > pos["pvpanic_mmio"] || pos["failover"] > pos["net_failover"] ||
		pos["net_failover"] > pos["virtio_net"] || pos["virtio"] > pos["virtio_net"] {
		t.Errorf("load order %v", got)
	}
	if _, err := moduleOrder(dir, []string{"nonexistent"}); err == nil {
		t.Error("unknown module accepted")
	}
}

func TestInitramfs(t *testing.T) {
	dir := t.TempDir()
	bb, ko, out := filepath.Join(dir, "busybox"), filepath.Join(dir, "a.ko"), filepath.Join(dir, "i.cpio.gz")
	os.WriteFile(bb, []byte("BUSYBOX"), 0o755)
	os.WriteFile(ko, []byte("KO!"), 0o644)
	if err := writeInitramfs(out, bb, []byte("#!/bin/sh\n"), []string{ko}); err != nil {
		t.Fatal(err)
	}
	f, _ := os.Open(out)
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	data, _ := io.ReadAll(zr)
	files := map[string]string{}
	modes := map[string]uint64{}
	for off := 0; off < len(data); {
		h := string(data[off : off+110])
		if h[:6] != "070701" {
			t.Fatalf("bad magic at %d: %q", off, h[:6])
		}
		field := func(i int) uint64 { v, _ := strconv.ParseUint(h[6+8*i:14+8*i], 16, 32); return v }
		mode, size, namesize := field(1), int(field(6)), int(field(11))
		name := string(data[off+110 : off+110+namesize-1])
		off += (110 + namesize + 3) &^ 3
		files[name] = string(data[off : off+size])
		modes[name] = mode
		off += (size + 3) &^ 3
		if name == "TRAILER!!!" {
			break
		}
	}
	if files["init"] != "#!/bin/sh\n" || files["bin/busybox"] != "BUSYBOX" || files["lib/modules/a.ko"] != "KO!" ||
		files["lib/modules/load-order"] != "a.ko\n" || modes["init"] != 0o100755 || modes["dev/console"] != 0o020600 {
		t.Errorf("initramfs members %q modes %v", files, modes)
	}
}

func TestPatchUnsetSMEP(t *testing.T) {
	src := "x\nstatic void lkdtm_UNSET_SMEP(void)\n{\n#if IS_ENABLED(CONFIG_X86_64) && !IS_ENABLED(CONFIG_UML)\n\tnative_write_cr4(0);\n#else\n\tpr_err(\"no\");\n#endif\n}\n" +
		"static void other(void)\n{\n#if IS_ENABLED(CONFIG_X86_64) && !IS_ENABLED(CONFIG_UML)\n#endif\n}\n"
	got, err := patchUnsetSMEP(src)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Count(got, lkdtmPatchMarker) != 1 || strings.Count(got, "#if IS_ENABLED(CONFIG_X86_64)") != 1 {
		t.Errorf("patched:\n%s", got)
	}
	if _, err := patchUnsetSMEP("\nstatic void lkdtm_UNSET_SMEP(void)\n{\n}\n"); err == nil {
		t.Error("a body without the guard was accepted")
	}
}

// TestCopyForMakedumpfile builds an ELF core laid out like QEMU 7.2's (section
// headers at 64, program headers after them) and checks the copy.
func TestCopyForMakedumpfile(t *testing.T) {
	le := binary.LittleEndian
	const phoff, phnum = 192, 2
	dataOff := uint64(0x200)
	file := make([]byte, dataOff+16)
	copy(file, "\x7fELF\x02\x01\x01")
	le.PutUint16(file[0x10:], 4) // ET_CORE
	le.PutUint64(file[0x20:], phoff)
	le.PutUint64(file[0x28:], 64)
	le.PutUint16(file[0x36:], 56)
	le.PutUint16(file[0x38:], phnum)
	le.PutUint16(file[0x3a:], 64)
	le.PutUint16(file[0x3c:], 2)
	le.PutUint16(file[0x3e:], 1)
	for i := 0; i < phnum; i++ {
		p := file[phoff+56*i:]
		le.PutUint32(p, uint32(1+3*i)) // PT_LOAD, PT_NOTE
		le.PutUint64(p[8:], dataOff+uint64(8*i))
		le.PutUint64(p[32:], 8)
	}
	copy(file[dataOff:], "PAGEDATANOTEDATA")
	dir := t.TempDir()
	in, out := filepath.Join(dir, "in"), filepath.Join(dir, "out")
	os.WriteFile(in, file, 0o600)
	if err := copyForMakedumpfile(in, out); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(out)
	if len(got) != len(file) || le.Uint64(got[0x20:]) != 64 || le.Uint64(got[0x28:]) != 0 || le.Uint16(got[0x3c:]) != 0 {
		t.Fatalf("header not rewritten: % x", got[:64])
	}
	if !bytes.Equal(got[64:64+56*phnum], file[phoff:phoff+56*phnum]) || !bytes.Equal(got[dataOff:], file[dataOff:]) {
		t.Error("program headers or data differ")
	}
	le.PutUint64(file[phoff+8:], 100) // a segment inside the room the table needs
	os.WriteFile(in, file, 0o600)
	if err := copyForMakedumpfile(in, out); err == nil {
		t.Error("overlap accepted")
	}
}

func TestGuestDest(t *testing.T) {
	for _, c := range []struct {
		to, ip string
		port   int
		ok     bool
	}{
		{"127.0.0.1:6666", "10.0.2.2", 6666, true},
		{"localhost:1", "10.0.2.2", 1, true},
		{"192.168.1.5:514", "192.168.1.5", 514, true},
		{"[::1]:6666", "", 0, false},
		{"127.0.0.1", "", 0, false},
		{"127.0.0.1:0", "", 0, false},
	} {
		ip, port, err := guestDest(c.to)
		if (err == nil) != c.ok || ip != c.ip || port != c.port {
			t.Errorf("guestDest(%q) = %q, %d, %v", c.to, ip, port, err)
		}
	}
}

func TestQEMUArgs(t *testing.T) {
	args := strings.Join(GuestConfig{Kernel: &Kernel{Vmlinuz: "/k", Initramfs: "/i"}, Append: "x=1", VCPUs: 2,
		Serial: "/s", QMP: "/q", Command: "/c"}.QEMUArgs(), " ")
	for _, want := range []string{"-accel tcg", "-smp 2", "-m 128M", "console=ttyS0 x=1", "-serial file:/s",
		"-device pvpanic", "-device vmcoreinfo", "-qmp unix:/q,server=on,wait=off", "path=/c,server=on,wait=off", "la57=off"} {
		if !strings.Contains(args, want) {
			t.Errorf("qemu args lack %q: %s", want, args)
		}
	}
}

// TestPruneOtherMatrices: only other ABIs' matrices go; the current one, reached
// through the "current" symlink too, stays.
func TestPruneOtherMatrices(t *testing.T) {
	root := t.TempDir()
	for _, abi := range []string{"6.1.0-55-cloud-amd64", "6.1.0-56-cloud-amd64", "6.12.117+deb12-cloud-amd64", "6.1.0-57-cloud-amd64"} {
		os.MkdirAll(filepath.Join(root, abi, "matrix"), 0o755)
		os.WriteFile(filepath.Join(root, abi, "setup.json"), []byte("{}"), 0o644)
		os.WriteFile(filepath.Join(root, abi, "matrix", ManifestName), []byte("{}"), 0o644)
	}
	k := &Kernel{Release: "6.1.0-56-cloud-amd64", Dir: filepath.Join(root, "6.1.0-56-cloud-amd64")}
	if err := setCurrent(root, k); err != nil {
		t.Fatal(err)
	}
	pruneOtherMatrices(&Config{Dir: root}, k)
	if _, err := os.Stat(filepath.Join(root, "current", "matrix", ManifestName)); err != nil {
		t.Errorf("the current matrix went: %v", err)
	}
	if _, err := os.Stat(filepath.Join(root, "6.1.0-55-cloud-amd64", "matrix")); !os.IsNotExist(err) {
		t.Errorf("the old ABI's matrix stayed: %v", err)
	}
	if _, err := os.Stat(filepath.Join(root, "6.1.0-55-cloud-amd64", "setup.json")); err != nil {
		t.Errorf("the old ABI's kernel files went: %v", err)
	}
	// Another series and a newer ABI of the same series keep their matrices.
	for _, abi := range []string{"6.12.117+deb12-cloud-amd64", "6.1.0-57-cloud-amd64"} {
		if _, err := os.Stat(filepath.Join(root, abi, "matrix", ManifestName)); err != nil {
			t.Errorf("the matrix of %s went: %v", abi, err)
		}
	}
}

func TestVersionOrder(t *testing.T) {
	for _, c := range []struct {
		a, b string
		want int
	}{
		{"6.1.192-3", "6.1.192-2", 1},
		{"6.1.170-3", "6.1.192-1", -1},
		{"6.12.100-1~deb12u1", "6.1.192-3", 1},
		{"6.12.117-1~deb12u1", "6.12.117-1", -1},
		{"1:2.0", "3.0", 1},
		{"1.0a", "1.0", 1},
		{"1.0~rc1", "1.0", -1},
		{"6.1.192-3", "6.1.192-3", 0},
	} {
		if got := CompareDebianVersions(c.a, c.b); got != c.want {
			t.Errorf("CompareDebianVersions(%q, %q) = %d, want %d", c.a, c.b, got, c.want)
		}
	}
	for _, c := range []struct {
		a, b string
		want int
	}{
		{"6.1.0-47-cloud-amd64", "6.1.0-56-cloud-amd64", -1},
		{"6.1.0-9-cloud-amd64", "6.1.0-10-cloud-amd64", -1},
		{"6.12.38+deb12-cloud-amd64", "6.1.0-57-cloud-amd64", 1},
		{"6.12.117+deb12-cloud-amd64", "6.12.117+deb12-cloud-amd64", 0},
	} {
		if got := CompareABIs(c.a, c.b); got != c.want {
			t.Errorf("CompareABIs(%q, %q) = %d, want %d", c.a, c.b, got, c.want)
		}
	}
	if s := Series("6.12.117+deb12-cloud-amd64"); s != "6.12" {
		t.Errorf("Series = %q", s)
	}
	if f := FlavorOf("6.1.0-57-amd64"); f != "amd64" {
		t.Errorf("FlavorOf = %q", f)
	}
}

// The big-dump recipe (RunOptions.Memory other than DefaultMemory) has its own
// directory, trigger table and formats, so it never replaces the default matrix.
func TestBigMatrixRecipe(t *testing.T) {
	k := &Kernel{Dir: "/lab/6.1.0-57-cloud-amd64"}
	if got, want := BigMatrixDir(k, "4G"), "/lab/6.1.0-57-cloud-amd64/matrix-4G"; got != want || got == MatrixDir(k) {
		t.Errorf("BigMatrixDir = %s, want %s (and not %s)", got, want, MatrixDir(k))
	}
	bt := BigTriggers()
	if len(bt) != 1 || bt[0].Name != "EXCEPTION" || !bt[0].Panics {
		t.Errorf("BigTriggers = %+v, want the panicking EXCEPTION trigger only", bt)
	}
	var formats []string
	for _, d := range specsFor(k, "4G") {
		formats = append(formats, d.format)
	}
	if got := strings.Join(formats, " "); got != "elf elf-paging kdump-lzo" {
		t.Errorf("4G formats %q", got)
	}
	if got := len(specsFor(k, DefaultMemory)); got != len(dumpSpecs) {
		t.Errorf("default formats: %d, want %d", got, len(dumpSpecs))
	}
	if RecipeHash("4G") == RecipeHash(DefaultMemory) || RecipeHash("4G") == RecipeHash("8G") {
		t.Error("RecipeHash does not follow the big recipe's memory")
	}
	for _, m := range []string{"4G", "1024M"} {
		if !bigMemoryRE.MatchString(m) {
			t.Errorf("%q rejected", m)
		}
	}
	for _, m := range []string{"", "0G", "4", "../4G", "4G/x", "4T", "-4G"} {
		if bigMemoryRE.MatchString(m) {
			t.Errorf("%q accepted as a memory size", m)
		}
	}
	if _, _, err := RunMatrix(context.Background(), Config{Dir: t.TempDir()}, k, RunOptions{Memory: "../x"}); err == nil {
		t.Error("RunMatrix accepted memory ../x")
	}
}
