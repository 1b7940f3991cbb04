package lab

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	labfiles "github.com/kcrash/kcrash/lab"

	"github.com/kcrash/kcrash/internal/dump"
)

// RunOptions tune RunMatrix.
type RunOptions struct {
	// Force reruns the matrix even when a complete one of the same recipe exists.
	Force bool
	// Only runs just these triggers (by name), keeping the other entries of an
	// existing manifest of the same recipe.
	Only []string
	// Parallel is how many guests run at once (default 2; the lab machines have 2 cores).
	Parallel int
	// Memory is each guest's RAM (default 128M; the ELF dumps are that big).
	// Any other size is a big-dump recipe of its own (BigMatrixDir): only
	// BigTriggers and bigDumpSpecs, so the default matrix is never replaced.
	Memory string
}

// DefaultMemory is the RAM of the matrix's guests.
const DefaultMemory = "128M"

// bigDumpSpecs are the formats of a big-memory matrix: each is as big as the
// guest's RAM (4 GiB for --memory 4G), so only the ELF dumps drgn and crash read
// (physical, and with the kernel's page tables) and one kdump-compressed file.
var bigDumpSpecs = []dumpSpec{
	{format: "elf", qemu: "elf"},
	{format: "elf-paging", qemu: "elf", paging: true},
	{format: "kdump-lzo", flags: []string{"-l", "-d", "0"}, compression: "lzo"},
}

// BigTriggers is the trigger table of a big-memory matrix: one oops that panics.
func BigTriggers() []Trigger {
	var out []Trigger
	for _, t := range Triggers() {
		if t.Name == "EXCEPTION" {
			out = append(out, t)
		}
	}
	return out
}

// specsFor is the dump formats of kernel k's guests with this much memory.
func specsFor(k *Kernel, memory string) []dumpSpec {
	if k.Arch == "" && memory != DefaultMemory && memory != "" {
		return bigDumpSpecs
	}
	return dumpSpecsFor(k)
}

// vmcore formats: made by QEMU (dump-guest-memory) or by makedumpfile from the ELF dump.
type dumpSpec struct {
	format string
	// QEMU
	qemu   string
	paging bool
	// makedumpfile
	flags       []string
	compression string // which makedumpfile build option it needs ("" none)
}

var dumpSpecs = []dumpSpec{
	{format: "elf", qemu: "elf"},
	{format: "elf-paging", qemu: "elf", paging: true},
	{format: "kdump-zlib-flat", qemu: "kdump-zlib"},
	{format: "kdump-lzo", flags: []string{"-l", "-d", "0"}, compression: "lzo"},
	{format: "kdump-snappy", flags: []string{"-p", "-d", "0"}, compression: "snappy"},
	{format: "kdump-zstd", flags: []string{"-z", "-d", "0"}, compression: "zstd"},
	// Debian's kdump-tools default (MAKEDUMP_ARGS="-c -d 31"): zlib, free/cache/user/zero pages left out.
	{format: "kdump-zlib-d31", flags: []string{"-c", "-d", "31"}},
}

// bigMemoryRE is a guest RAM size QEMU's -m takes and a directory name can hold.
var bigMemoryRE = regexp.MustCompile(`^[1-9][0-9]*[MG]$`)

// RecipeHash identifies everything a matrix run is made from; see Manifest.RecipeHash.
func RecipeHash(memory string) string {
	h := sha256.New()
	fmt.Fprintf(h, "lab %s setup %s init %s base %q memory %q\n", Version, setupHash(), initHash(), BaseArgs, memory)
	table, specs := Triggers(), dumpSpecs
	if memory != DefaultMemory {
		table, specs = BigTriggers(), bigDumpSpecs
	}
	tt, _ := json.Marshal(table)
	h.Write(tt)
	h.Write(labfiles.GuestInit)
	qa, _ := json.Marshal(GuestConfig{Kernel: &Kernel{}}.QEMUArgs())
	h.Write(qa)
	for _, d := range specs {
		fmt.Fprintf(h, "%s %s %v %q\n", d.format, d.qemu, d.paging, d.flags)
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// MatrixDir is where the matrix of kernel k is kept.
func MatrixDir(k *Kernel) string { return filepath.Join(k.Dir, "matrix") }

// BigMatrixDir is where the big-memory matrix of kernel k (RunOptions.Memory,
// e.g. "4G") is kept: beside the default matrix, never in place of it.
func BigMatrixDir(k *Kernel, memory string) string {
	return filepath.Join(k.Dir, "matrix-"+memory)
}

// RunMatrix boots one guest per trigger (opts.Parallel at a time, each with its own
// netconsole ports), captures everything and writes the manifest. A complete
// manifest of the same recipe is reused unless opts.Force; the bool result says
// whether it was. Entries that did not go as the table expects are recorded with
// their Error and make the returned error non-nil (the manifest is still written).
func RunMatrix(ctx context.Context, cfg Config, k *Kernel, opts RunOptions) (*Manifest, bool, error) {
	if opts.Parallel <= 0 {
		opts.Parallel = 2
	}
	if opts.Memory == "" {
		opts.Memory = DefaultMemory
	}
	dir := MatrixDir(k)
	hash := RecipeHash(opts.Memory)
	table := Triggers()
	big := false
	switch {
	case k.Arch == "arm64":
		hash, table = Arm64RecipeHash(opts.Memory), Arm64Triggers()
	case opts.Memory != DefaultMemory:
		if !bigMemoryRE.MatchString(opts.Memory) {
			return nil, false, fmt.Errorf("crash matrix: memory %q: want a size such as 4G or 1024M", opts.Memory)
		}
		dir, table, big = BigMatrixDir(k, opts.Memory), BigTriggers(), true
	}
	old, _ := LoadManifest(filepath.Join(dir, ManifestName))
	if old != nil && old.RecipeHash != hash {
		old = nil
	}
	if old != nil && old.Complete && !opts.Force && len(opts.Only) == 0 {
		if big {
			return old, true, nil
		}
		if err := setCurrent(cfg.Dir, k); err != nil {
			return nil, false, err
		}
		return old, true, nil
	}
	todo := table
	if len(opts.Only) > 0 {
		todo = nil
		for _, n := range opts.Only {
			t, err := findTrigger(table, n)
			if err != nil {
				return nil, false, err
			}
			todo = append(todo, t)
		}
	}
	if old == nil {
		if err := os.RemoveAll(dir); err != nil {
			return nil, false, err
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, false, err
	}

	m := &Manifest{LabVersion: Version, RecipeHash: hash, Created: time.Now().UTC(), dir: dir}
	m.Kernel.Release, m.Kernel.Version, m.Kernel.BuildID = k.Release, k.Version, k.BuildID
	m.Kernel.Vmlinux, m.Kernel.Vmlinuz = rel(dir, k.Vmlinux), rel(dir, k.Vmlinuz)
	m.Kernel.LKDTM, m.Kernel.DebugDir, m.Kernel.Initramfs = rel(dir, k.LKDTM), rel(dir, k.DebugDir), rel(dir, k.Initramfs)
	m.Host.QEMU = firstLine(exec.Command(QEMUBinary(k), "--version").Output())
	m.Host.Makedumpfile, m.Host.Compressions = makedumpfileSupport(ctx)

	// Longest boots first, so the slots finish together.
	sort.SliceStable(todo, func(i, j int) bool { return expectedSeconds(todo[i]) > expectedSeconds(todo[j]) })
	start := time.Now()
	results := make(map[string]*Entry)
	var mu sync.Mutex
	work := make(chan Trigger)
	var wg sync.WaitGroup
	for slot := 0; slot < opts.Parallel; slot++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for t := range work {
				e := runEntry(ctx, &cfg, k, m, dir, t, opts.Memory)
				if e.Error != "" && ctx.Err() == nil {
					// One retry: under TCG on a loaded host a boot can miss its timing.
					cfg.progress("lab: %s failed (%s); retrying once", t.Name, e.Error)
					first := e.Error
					e = runEntry(ctx, &cfg, k, m, dir, t, opts.Memory)
					e.Attempts = 2
					e.FirstError = first
				}
				mu.Lock()
				results[t.Name] = e
				mu.Unlock()
				status := "ok"
				if e.Error != "" {
					status = "FAILED: " + e.Error
				}
				cfg.progress("lab: %-28s %-8s after %5.1fs (entry %5.1fs) %s", t.Name, e.Outcome, e.SecondsToOutcome, e.Seconds, status)
			}
		}()
	}
feed:
	for _, t := range todo {
		select {
		case work <- t:
		case <-ctx.Done():
			break feed
		}
	}
	close(work)
	wg.Wait()
	m.MatrixSeconds = time.Since(start).Seconds()
	if err := ctx.Err(); err != nil {
		return nil, false, err
	}

	// Table order; entries not rerun come from the old manifest.
	var failed []string
	for _, t := range table {
		e := results[t.Name]
		if e == nil && old != nil {
			e = old.Entry(t.Name)
		}
		if e == nil {
			continue
		}
		m.Entries = append(m.Entries, e)
		if e.Error != "" {
			failed = append(failed, e.Name)
		}
	}
	m.Complete = len(m.Entries) == len(table) && len(failed) == 0
	if err := m.Save(dir); err != nil {
		return nil, false, err
	}
	if !big {
		if err := setCurrent(cfg.Dir, k); err != nil {
			return nil, false, err
		}
	}
	if m.Complete && k.Arch == "" && !big {
		pruneOtherMatrices(&cfg, k)
	}
	if len(failed) > 0 {
		return m, false, fmt.Errorf("crash matrix: %d entries failed: %s (see %s)", len(failed), strings.Join(failed, ", "), filepath.Join(dir, ManifestName))
	}
	return m, false, nil
}

// setCurrent points cfg.Dir/current at the kernel's directory (for FindManifest);
// an arm64 kernel's is cfg.Dir/arm64 instead (FindArm64Manifest).
func setCurrent(root string, k *Kernel) error {
	link := filepath.Join(root, "current")
	if k.Arch == "arm64" {
		link = filepath.Join(root, "arm64")
	}
	target := rel(root, k.Dir)
	if cur, err := os.Readlink(link); err == nil && cur == target {
		return nil
	}
	tmp := link + ".tmp"
	os.Remove(tmp)
	if err := os.Symlink(target, tmp); err != nil {
		return err
	}
	return os.Rename(tmp, link)
}

// Cmdline is the kernel command line of a matrix boot (after console=ttyS0).
func Cmdline(t Trigger, plainPort, extPort int) string {
	nc := "none"
	if t.Netconsole != "none" {
		nc = fmt.Sprintf("plain@%d,ext@%d", plainPort, extPort)
	}
	return strings.Join(strings.Fields(fmt.Sprintf("lab_name=%s lab_trigger=%s lab_nc=%s %s %s",
		t.Name, t.LKDTM, nc, BaseArgs, t.Args)), " ")
}

func runEntry(ctx context.Context, cfg *Config, k *Kernel, m *Manifest, dir string, t Trigger, memory string) *Entry {
	start := time.Now()
	t = t.ForKernel(k.Release)
	e := &Entry{Name: t.Name, Trigger: t, VCPUs: t.VCPUs, Memory: memory}
	base := filepath.Join(dir, t.Name)
	art := func(kind, format, path string) {
		a := Artifact{Kind: kind, Format: format, Path: rel(dir, path)}
		if st, err := os.Stat(path); err == nil {
			a.Size = st.Size()
		}
		e.Artifacts = append(e.Artifacts, a)
	}
	fail := func(format string, args ...any) {
		msg := fmt.Sprintf(format, args...)
		if e.Error == "" {
			e.Error = msg
		} else {
			e.Error += "; " + msg
		}
	}
	for _, old := range mustGlob(base + ".*") {
		os.Remove(old)
	}

	// Receivers on free ports: each guest sends to its own pair.
	var plain, ext *Receiver
	var err error
	if t.Netconsole != "none" {
		plain, err = Listen("127.0.0.1:0", ReceiverFiles{Stream: base + ".netconsole", JSONL: base + ".netconsole.jsonl"})
		if err != nil {
			fail("%v", err)
			return e
		}
		ext, err = Listen("127.0.0.1:0", ReceiverFiles{Records: base + ".netconsole-ext", JSONL: base + ".netconsole-ext.jsonl"})
		if err != nil {
			plain.Close()
			fail("%v", err)
			return e
		}
	}
	pp, ep := 0, 0
	if plain != nil {
		pp, ep = plain.Port(), ext.Port()
	}
	e.Cmdline = Cmdline(t, pp, ep)
	gc := GuestConfig{
		Kernel: k, Append: e.Cmdline, VCPUs: t.VCPUs, Memory: memory,
		Serial: base + ".serial", QMP: base + ".qmp", Log: base + ".qemu.log",
	}
	e.Cmdline = consoleArg(k) + " " + e.Cmdline
	closeReceivers := func() {
		if plain != nil {
			time.Sleep(200 * time.Millisecond)
			if err := plain.Close(); err != nil {
				fail("plain netconsole: %v", err)
			}
			if err := ext.Close(); err != nil {
				fail("extended netconsole: %v", err)
			}
		}
	}
	g, err := StartGuest(ctx, gc)
	if err != nil {
		closeReceivers()
		fail("%v", err)
		return e
	}
	e.Outcome, err = g.Wait(ctx, t.Timeout)
	e.SecondsToOutcome = round3(time.Since(g.Started).Seconds())
	if err != nil {
		g.Kill()
		closeReceivers()
		fail("%v", err)
		return e
	}
	want := OutcomeShutdown
	switch {
	case t.Panics:
		want = OutcomePanic
	case t.Hangs:
		want = OutcomeTimeout
	}
	if e.Outcome != want && !(want == OutcomeShutdown && e.Outcome == OutcomeExited) {
		fail("outcome %s, want %s", e.Outcome, want)
	}

	var elfPath string
	if e.Outcome == OutcomePanic || e.Outcome == OutcomeTimeout {
		if err := g.Stop(ctx); err != nil {
			fail("%v", err)
		}
		for _, d := range specsFor(k, memory) {
			if d.qemu == "" {
				continue
			}
			path := base + ".vmcore." + d.format
			t0 := time.Now()
			err := g.Dump(ctx, d.qemu, d.paging, path)
			a := Artifact{Kind: ArtVmcore, Format: d.format, Path: rel(dir, path), Seconds: round3(time.Since(t0).Seconds()),
				MadeBy: fmt.Sprintf("qmp dump-guest-memory format=%s paging=%v", d.qemu, d.paging)}
			if err != nil {
				a.Error = err.Error()
				a.Path = ""
				fail("%v", err)
			} else if st, err := os.Stat(path); err == nil {
				a.Size = st.Size()
				if d.format == "elf" {
					elfPath = path
				}
			}
			e.Artifacts = append(e.Artifacts, a)
		}
	}
	g.Quit()
	for _, ev := range g.Events {
		e.Events = append(e.Events, fmt.Sprintf("%.3f %s", ev.Received.Sub(g.Started).Seconds(), ev.Name))
	}
	closeReceivers()

	// makedumpfile after QEMU is gone: CPU for the other slot's guest.
	if elfPath != "" && k.Arch == "" { // arm64: QEMU's formats only (dumpSpecsFor)
		input := base + ".vmcore.elf-for-makedumpfile"
		if err := copyForMakedumpfile(elfPath, input); err != nil {
			fail("%v", err)
			input = ""
		}
		for _, d := range specsFor(k, memory) {
			if d.qemu != "" || input == "" {
				continue
			}
			a := makedumpfile(ctx, m.Host.Compressions, d, input, base+".vmcore."+d.format, k.Vmlinux)
			if a.Error == "" && d.format == "kdump-lzo" {
				// kdump-tools' vmcore-dmesg.txt: the log as makedumpfile reads it from the dump.
				v := dumpDmesg(ctx, a.Path, base+".vmcore-dmesg.txt")
				v.Path = rel(dir, v.Path)
				if v.Error != "" {
					fail("vmcore-dmesg: %s", v.Error)
				}
				e.Artifacts = append(e.Artifacts, v)
			}
			a.Path = rel(dir, a.Path)
			if a.Error != "" {
				fail("%s: %s", d.format, a.Error)
			}
			e.Artifacts = append(e.Artifacts, a)
		}
		os.Remove(input)
	}

	serial, err := os.ReadFile(gc.Serial)
	if err != nil {
		fail("%v", err)
	}
	e.Facts = ExtractFacts(serial, t.Kind)
	if e.Facts.Release != "" && e.Facts.Release != k.Release {
		fail("console names kernel %s, want %s", e.Facts.Release, k.Release)
	}
	if t.Panics && e.Facts.PanicMessage == "" {
		fail("no \"Kernel panic - not syncing\" on the console")
	}
	art(ArtSerial, "", gc.Serial)
	if plain != nil {
		art(ArtNetconsole, "", base+".netconsole")
		art(ArtPlainJSONL, "", base+".netconsole.jsonl")
		art(ArtNetconsoleExt, "", base+".netconsole-ext")
		art(ArtExtJSONL, "", base+".netconsole-ext.jsonl")
	}
	if st, err := os.Stat(gc.Log); err == nil && st.Size() > 0 {
		art(ArtQEMULog, "", gc.Log) // QEMU's own complaints, when it had any
	} else {
		os.Remove(gc.Log)
	}
	// The captures first, then the vmcores in dumpSpecs order.
	var captures, vmcores []Artifact
	for _, a := range e.Artifacts {
		if a.Kind == ArtVmcore {
			vmcores = append(vmcores, a)
		} else {
			captures = append(captures, a)
		}
	}
	e.Artifacts = append(captures, vmcores...)
	e.Seconds = round3(time.Since(start).Seconds())
	return e
}

var versionRE = regexp.MustCompile(`version (\S+)`)

// makedumpfileSupport returns makedumpfile's version and, for lzo, snappy and zstd,
// "enabled" or why not, from `makedumpfile -v` ("lzo\tenabled" lines).
func makedumpfileSupport(ctx context.Context) (string, map[string]string) {
	comp := map[string]string{}
	out, err := exec.CommandContext(ctx, "makedumpfile", "-v").CombinedOutput()
	if err != nil {
		for _, c := range []string{"lzo", "snappy", "zstd"} {
			comp[c] = fmt.Sprintf("makedumpfile -v failed: %v", err)
		}
		return "", comp
	}
	version := ""
	if m := versionRE.FindSubmatch(out); m != nil {
		version = string(m[1])
	}
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) == 2 && (f[0] == "lzo" || f[0] == "snappy" || f[0] == "zstd") {
			if f[1] == "enabled" {
				comp[f[0]] = "enabled"
			} else {
				comp[f[0]] = fmt.Sprintf("makedumpfile %s was built without %s support (makedumpfile -v: %s %s)", version, f[0], f[0], f[1])
			}
		}
	}
	for _, c := range []string{"lzo", "snappy", "zstd"} {
		if comp[c] == "" {
			comp[c] = fmt.Sprintf("makedumpfile %s does not list %s support", version, c)
		}
	}
	return version, comp
}

// makedumpfile converts an ELF dump (with its VMCOREINFO note) to kdump-compressed.
func makedumpfile(ctx context.Context, comp map[string]string, d dumpSpec, in, out, vmlinux string) Artifact {
	a := Artifact{Kind: ArtVmcore, Format: d.format}
	if d.compression != "" && comp[d.compression] != "enabled" {
		if d.compression != "snappy" && d.compression != "zstd" {
			a.Unsupported = comp[d.compression]
			return a
		}
		// Debian's makedumpfile is built without snappy and zstd: write the same
		// kdump-compressed layout with kcrash's writer (crash, which links both, reads
		// these as the independent check).
		t0 := time.Now()
		if err := dump.WriteKdumpFromELF(in, out, d.compression); err != nil {
			a.Error = err.Error()
			return a
		}
		a.MadeBy = "kcrash internal/dump.WriteKdumpFromELF " + d.compression + " (" + comp[d.compression] + ")"
		a.Seconds = round3(time.Since(t0).Seconds())
		a.Path = out
		if st, err := os.Stat(out); err == nil {
			a.Size = st.Size()
		}
		return a
	}
	os.Remove(out)
	args := append(append([]string{}, d.flags...), "--message-level", "1", in, out)
	a.MadeBy = "makedumpfile " + strings.Join(append(append([]string{}, d.flags...), filepath.Base(in), filepath.Base(out)), " ") +
		" (input: the elf dump with its program headers moved after the ELF header, see copyForMakedumpfile)"
	t0 := time.Now()
	res, err := exec.CommandContext(ctx, "makedumpfile", args...).CombinedOutput()
	if err != nil {
		// Without VMCOREINFO in the dump, makedumpfile needs the debug vmlinux.
		os.Remove(out)
		args = append([]string{"-x", vmlinux}, args...)
		res2, err2 := exec.CommandContext(ctx, "makedumpfile", args...).CombinedOutput()
		if err2 != nil {
			a.Error = fmt.Sprintf("makedumpfile: %v: %s / with -x vmlinux: %v: %s", err, lastLines(res, 3), err2, lastLines(res2, 3))
			os.Remove(out)
			return a
		}
		a.MadeBy = "makedumpfile -x vmlinux " + strings.TrimPrefix(a.MadeBy, "makedumpfile ")
	}
	a.Seconds = round3(time.Since(t0).Seconds())
	a.Path = out
	if st, err := os.Stat(out); err == nil {
		a.Size = st.Size()
	} else {
		a.Error = "makedumpfile wrote no file"
	}
	return a
}

// dumpDmesg writes the kernel log of a kdump-compressed dump with makedumpfile
// --dump-dmesg, as kdump-tools saves vmcore-dmesg.txt next to the dump.
func dumpDmesg(ctx context.Context, vmcore, out string) Artifact {
	a := Artifact{Kind: ArtVmcoreDmesg, MadeBy: "makedumpfile --dump-dmesg " + filepath.Base(vmcore)}
	os.Remove(out)
	t0 := time.Now()
	res, err := exec.CommandContext(ctx, "makedumpfile", "--dump-dmesg", vmcore, out).CombinedOutput()
	if err != nil {
		a.Error = fmt.Sprintf("makedumpfile --dump-dmesg: %v: %s", err, lastLines(res, 3))
		os.Remove(out)
		return a
	}
	a.Seconds = round3(time.Since(t0).Seconds())
	a.Path = out
	if st, err := os.Stat(out); err == nil {
		a.Size = st.Size()
	}
	return a
}

func lastLines(b []byte, n int) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}

func firstLine(b []byte, err error) string {
	if err != nil {
		return ""
	}
	l, _, _ := strings.Cut(string(b), "\n")
	return strings.TrimSpace(l)
}

func mustGlob(p string) []string {
	m, _ := filepath.Glob(p)
	return m
}

func round3(f float64) float64 { return float64(int64(f*1000+0.5)) / 1000 }

var labWaitRE = regexp.MustCompile(`\blab_wait=(\d+)`)

// expectedSeconds guesses how long a boot takes, to schedule long ones first:
// hangs last their timeout, lockups and hung tasks need their detectors (about 10 s
// under TCG), triggers that do not panic wait lab_wait after the oops; the rest
// panic about 4 s after QEMU starts.
func expectedSeconds(t Trigger) float64 {
	switch {
	case t.Hangs:
		return t.Timeout.Seconds()
	case t.Panics && t.LKDTM == "HARDLOCKUP":
		return 13
	case t.Panics && (t.LKDTM == "SOFTLOCKUP" || t.LKDTM == "HUNG_TASK"):
		return 9
	case !t.Panics:
		w := 20.0 // lab/init.sh's default
		if m := labWaitRE.FindStringSubmatch(t.Args); m != nil {
			fmt.Sscan(m[1], &w)
		}
		return 4 + w
	}
	return 4
}

// pruneOtherMatrices removes the matrices (about 7 GB each, mostly vmcores) of the
// older ABIs of the same series and flavour once this ABI has a complete one (a new
// 6.1 ABI supersedes the old 6.1 one; the 6.12 matrix stays); their kernel files
// stay. Errors are reported, not returned: pruning is tidying.
func pruneOtherMatrices(cfg *Config, k *Kernel) {
	self, err := filepath.EvalSymlinks(k.Dir)
	if err != nil {
		return
	}
	stamps, _ := filepath.Glob(filepath.Join(cfg.Dir, "*", "setup.json"))
	for _, s := range stamps {
		dir := filepath.Dir(s)
		// "current" is a symlink to an ABI directory, maybe this one.
		if st, err := os.Lstat(dir); err != nil || st.Mode()&os.ModeSymlink != 0 {
			continue
		}
		if real, err := filepath.EvalSymlinks(dir); err != nil || real == self {
			continue
		}
		abi := filepath.Base(dir)
		if Series(abi) != Series(k.Release) || FlavorOf(abi) != FlavorOf(k.Release) || CompareABIs(abi, k.Release) > 0 {
			continue
		}
		old := filepath.Join(dir, "matrix")
		if _, err := os.Stat(old); err != nil {
			continue
		}
		if err := os.RemoveAll(old); err != nil {
			cfg.progress("lab: removing the old matrix %s: %v", old, err)
		} else {
			cfg.progress("lab: removed the matrix of kernel %s (superseded by %s)", filepath.Base(dir), k.Release)
		}
	}
}
