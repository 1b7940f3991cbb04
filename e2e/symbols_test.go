package e2e

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/kcrash/kcrash/internal/lab"
	"github.com/kcrash/kcrash/internal/symbols"
)

// labArtifact returns the path of an entry's artifact of a kind (and format).
func labArtifact(t *testing.T, m *lab.Manifest, name, kind, format string) string {
	t.Helper()
	for _, e := range m.Entries {
		if e.Name != name {
			continue
		}
		for _, a := range e.Artifacts {
			if a.Kind == kind && (format == "" || a.Format == format) && a.Path != "" && a.Error == "" {
				return m.Path(a.Path)
			}
		}
	}
	needLab(t, "the lab has no %s %s %s artifact", name, kind, format)
	return ""
}

// kcrashEnv runs the kcrash binary with extra environment, returning stdout and the
// time it took; a failure fails the test with stderr.
func kcrashEnv(t *testing.T, env []string, args ...string) (string, time.Duration) {
	t.Helper()
	cmd := exec.Command(kcrashBin, args...)
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	if err := cmd.Run(); err != nil {
		t.Fatalf("kcrash %s: %v\n%s", strings.Join(args, " "), err, lastLines(stderr.Bytes(), 5))
	}
	return stdout.String(), time.Since(start)
}

// withBuildIDs rewrites a report's "[module]" tags the way CONFIG_STACKTRACE_BUILD_ID
// prints them, "[module BUILDID]".
func withBuildIDs(text []byte, module, id string) []byte {
	return bytes.ReplaceAll(text, []byte("["+module+"]"), []byte("["+module+" "+id+"]"))
}

// TestSymbolsDebuginfod starts Debian's debuginfod on loopback (in a network
// namespace of its own: debuginfod has no option to bind to one address) indexing
// the lab's vmlinux, its modules' debug files and lkdtm.ko, and checks that with only
// DEBUGINFOD_URLS set `kcrash vmcore DUMP bt` answers as it does with the vmlinux
// given, and that a report's module frames printed with build IDs are symbolized
// through it. It logs the cold fetch and the cache hit times.
func TestSymbolsDebuginfod(t *testing.T) {
	m := manifest(t)
	for _, tool := range []string{"debuginfod", "unshare", "ip", "curl"} {
		if _, err := exec.LookPath(tool); err != nil {
			needLab(t, "%s is not installed (test.sh installs debuginfod)", tool)
		}
	}
	vmlinux := m.Path(m.Kernel.Vmlinux)
	lkdtm := m.Path(m.Kernel.LKDTM)
	dump := labArtifact(t, m, "ACCESS_NULL", lab.ArtVmcore, "kdump-zstd")
	serial := labArtifact(t, m, "ACCESS_NULL", lab.ArtSerial, "")
	vmID, err := symbols.FileBuildID(vmlinux)
	if err != nil {
		t.Fatal(err)
	}
	modID, err := symbols.FileBuildID(lkdtm)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	index := filepath.Join(dir, "index")
	os.MkdirAll(index, 0o755)
	for name, target := range map[string]string{"vmlinux": vmlinux, "lkdtm.ko": lkdtm, "debug": m.Path(m.Kernel.DebugDir)} {
		if err := os.Symlink(target, filepath.Join(index, name)); err != nil {
			t.Fatal(err)
		}
	}
	text, err := os.ReadFile(serial)
	if err != nil {
		t.Fatal(err)
	}
	report := filepath.Join(dir, "report.txt")
	os.WriteFile(report, withBuildIDs(text, "lkdtm", modID), 0o644)

	// The reference answers, with the files given.
	mods := filepath.Join(dir, "mods")
	os.MkdirAll(mods, 0o755)
	os.Symlink(lkdtm, filepath.Join(mods, "lkdtm.ko"))
	noNet := []string{"DEBUGINFOD_URLS=", "KCRASH_DBG_PACKAGES=0"}
	wantBt, _ := kcrashEnv(t, noNet, "vmcore", vmlinux, dump, "bt")
	wantDecode, _ := kcrashEnv(t, noNet, "decode", "--vmlinux", vmlinux, "--modules", mods, report)
	if !strings.Contains(wantDecode, "lkdtm_ACCESS_NULL (") {
		t.Fatalf("the reference decode did not symbolize lkdtm:\n%s", wantDecode)
	}

	// The same through debuginfod, run in a network namespace with only loopback.
	out := filepath.Join(dir, "out")
	os.MkdirAll(out, 0o755)
	script := fmt.Sprintf(`set -e
ip link set lo up
debuginfod -p 8002 -d %[1]s/db.sqlite -F -L --disable-source-scan -t 0 -g 0 %[2]s >%[1]s/debuginfod.log 2>&1 &
pid=$!
ready=0
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null || true' EXIT
export DEBUGINFOD_URLS=http://127.0.0.1:8002 DEBUGINFOD_CACHE_PATH=%[1]s/cache KCRASH_DBG_PACKAGES=0
for i in $(seq 600); do
	# Ready once the first traversal is done and every file found is scanned
	# (debuginfod 0.188 answers HEAD with 400, so its metrics say it).
	m=$(curl -sf http://127.0.0.1:8002/metrics || true)
	if grep -q '^thread_work_total{role="traverse"} [1-9]' <<<"$m" &&
	   grep -q '^thread_busy{role="traverse"} 0' <<<"$m" &&
	   grep -q '^thread_busy{role="scan"} 0' <<<"$m" &&
	   grep -q '^thread_work_pending{role="scan"} 0' <<<"$m"; then ready=1; break; fi
	sleep 0.1
done
[ "$ready" = 1 ] || { echo "debuginfod did not finish indexing in 60 s" >&2; exit 1; }
t0=$(date +%%s%%N); %[5]s vmcore %[6]s bt >%[7]s/bt.cold; t1=$(date +%%s%%N)
%[5]s vmcore %[6]s bt >%[7]s/bt.warm; t2=$(date +%%s%%N)
%[5]s decode --dbg-packages=false --vmlinux %[8]s %[9]s >%[7]s/decode; t3=$(date +%%s%%N)
echo "$((t1-t0)) $((t2-t1)) $((t3-t2))" >%[7]s/times
`, dir, index, vmID, modID, kcrashBin, dump, out, vmlinux, report)
	cmd := exec.Command("unshare", "--net", "bash", "-c", script)
	if b, err := cmd.CombinedOutput(); err != nil {
		log, _ := os.ReadFile(filepath.Join(dir, "debuginfod.log"))
		t.Fatalf("debuginfod run: %v\n%s\ndebuginfod: %s", err, b, lastLines(log, 10))
	}
	read := func(name string) string {
		b, err := os.ReadFile(filepath.Join(out, name))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	if got := read("bt.cold"); got != wantBt {
		t.Errorf("vmcore bt through debuginfod differs from the one with the vmlinux given:\n%s\nwant:\n%s", got, wantBt)
	}
	if got := read("bt.warm"); got != wantBt {
		t.Errorf("vmcore bt from the cache differs:\n%s", got)
	}
	if got := read("decode"); got != wantDecode {
		t.Errorf("decode with module build IDs through debuginfod differs from --modules:\n%s\nwant:\n%s", got, wantDecode)
	}
	cached, err := symbols.FileBuildID(filepath.Join(dir, "cache", vmID, "debuginfo"))
	if err != nil || cached != vmID {
		t.Errorf("DEBUGINFOD_CACHE_PATH holds %q, %v; want the vmlinux %s", cached, err, vmID)
	}
	var cold, warm, dec int64
	fmt.Sscan(read("times"), &cold, &warm, &dec)
	fi, _ := os.Stat(vmlinux)
	t.Logf("debuginfod on loopback: vmcore bt with a cold cache (fetches the %d MB vmlinux) %v, with the cache %v; decode with lkdtm by build ID %v",
		fi.Size()>>20, time.Duration(cold).Round(time.Millisecond), time.Duration(warm).Round(time.Millisecond), time.Duration(dec).Round(time.Millisecond))
}

// TestSymbolsDebianPackage decodes a lab report with no --vmlinux: the vmlinux comes
// from Debian's linux-image-RELEASE-dbg package for the release the report prints,
// fetched with apt-get download into the kcrash cache (~/.cache/kcrash/debian, kept
// between runs: the first run downloads about 300 MB). The frames and the
// explanation are the same as with the vmlinux given.
func TestSymbolsDebianPackage(t *testing.T) {
	m := manifest(t)
	if _, err := exec.LookPath("apt-get"); err != nil {
		needLab(t, "apt-get is not installed (not a Debian system)")
	}
	serial := labArtifact(t, m, "ACCESS_NULL", lab.ArtSerial, "")
	dir := t.TempDir()
	mods := filepath.Join(dir, "mods")
	os.MkdirAll(mods, 0o755)
	os.Symlink(m.Path(m.Kernel.LKDTM), filepath.Join(mods, "lkdtm.ko"))
	env := []string{"DEBUGINFOD_URLS=", "KCRASH_DBG_PACKAGES=1"}
	want, _ := kcrashEnv(t, env, "decode", "--vmlinux", m.Path(m.Kernel.Vmlinux), "--modules", mods, serial)
	release := m.Kernel.Release
	_, statErr := os.Stat(filepath.Join(symbols.DefaultDebianDir(), release))
	got, took := kcrashEnv(t, env, "decode", "--modules", mods, serial)
	if got != want {
		t.Errorf("decode by release through the -dbg package differs from the one with the vmlinux given:\n%s\nwant:\n%s", got, want)
	}
	if !regexp.MustCompile(`(?m)^Explanation: .*\S`).MatchString(got) || !strings.Contains(got, "Call Trace:\n") {
		t.Errorf("no explanation or call trace:\n%s", got)
	}
	if strings.Contains(got, "Symbols:") {
		t.Errorf("the vmlinux was not found:\n%s", got)
	}
	state := "warm (already unpacked)"
	if statErr != nil {
		state = "cold (apt-get download " + symbols.DbgPackage(release) + " and unpack)"
	}
	t.Logf("decode by release through the Debian package source, %s: %v", state, took.Round(time.Millisecond))
}
