package lab

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"syscall"
	"time"

	labfiles "github.com/kcrash/kcrash/lab"
)

// Version is bumped whenever the lab's recipe changes in a way the hashes below do
// not see (e.g. how artifacts are post-processed); it invalidates every cache.
const Version = "3" // 3: kernels by ABI, lab modules (netrace, hwfault), ramoops, vmcore-dmesg

// MetaPackage is the Debian package whose dependency names the current kernel ABI.
const MetaPackage = "linux-image-cloud-amd64"

// GuestModules are the kernel modules the guest loads (with their dependencies),
// before lkdtm: the NIC, fw_cfg (so QEMU's dumps carry VMCOREINFO), pvpanic (so QEMU
// hears of the panic), configfs and netconsole.
// ramoops keeps the oops in RAM that survives a warm reset (the pstore scenario).
var GuestModules = []string{"virtio_pci", "virtio_net", "qemu_fw_cfg", "pvpanic_mmio", "pvpanic_pci", "configfs", "netconsole", "ramoops"}

// LabModules are the lab's own out-of-tree modules (lab/modules), built per ABI
// against that kernel's headers: netrace (the receive-path race) and hwfault (bit
// flips in slab pointers, as bad RAM makes).
var LabModules = []string{"netrace", "hwfault"}

// Config says where the lab keeps its cache and how it reports progress.
type Config struct {
	// Dir is the cache root; see DefaultDir.
	Dir string
	// Progress, when set, receives one line per step (downloads, builds, boots).
	Progress func(format string, args ...any)
	// NoInstall skips lab/install-packages.sh (the caller vouches for the packages).
	NoInstall bool
	// Kernel selects the kernel: an ABI (6.1.0-57-cloud-amd64), a series (6.12), a
	// flavour (amd64) or "" for the current cloud ABI; see ResolveKernel.
	Kernel string
	// Light prepares a kernel for targets and scenarios only: the image, its
	// headers and the lab modules, without the -dbg vmlinux and LKDTM (about 500 MB
	// less to download). A later full Setup of the same ABI completes it.
	Light bool
}

func (c *Config) progress(format string, args ...any) {
	if c.Progress != nil {
		c.Progress(format, args...)
	}
}

// DefaultDir is ${KCRASH_LAB_DIR:-$HOME/.cache/kcrash/lab}.
func DefaultDir() string {
	if d := os.Getenv("KCRASH_LAB_DIR"); d != "" {
		return d
	}
	home, err := os.UserHomeDir()
	if err != nil {
		home = os.TempDir()
	}
	return filepath.Join(home, ".cache", "kcrash", "lab")
}

// Kernel is a prepared lab kernel: everything a guest boot needs, and the debug
// files that decode its crashes. Paths are absolute.
type Kernel struct {
	Release   string   `json:"release"`  // uname -r, e.g. 6.1.0-56-cloud-amd64 (the ABI)
	Version   string   `json:"version"`  // Debian package version, e.g. 6.1.192-2
	BuildID   string   `json:"build_id"` // GNU build ID of vmlinux, hex
	Dir       string   `json:"dir"`      // the cache directory of this ABI
	Vmlinuz   string   `json:"vmlinuz"`
	Vmlinux   string   `json:"vmlinux"`   // with DWARF, from the -dbg package
	DebugDir  string   `json:"debug_dir"` // the -dbg .ko files of the guest's modules, lib/modules/$KVER/…
	LKDTM     string   `json:"lkdtm"`     // lkdtm.ko, built here with debug info
	Initramfs string   `json:"initramfs"` // busybox, /init and the modules
	Modules   []string `json:"modules"`   // load order in the guest, file names
	// LabModuleDir holds the lab's own modules (netrace.ko, hwfault.ko) built
	// against this ABI's headers.
	LabModuleDir string `json:"lab_module_dir"`
	// LKDTMSource is the linux-source package LKDTM was built from: the ABI's own
	// version when the archive still has it, else the newest of the series.
	LKDTMSource string `json:"lkdtm_source,omitempty"`
	// Light says the kernel was prepared without the -dbg vmlinux and LKDTM.
	Light     bool   `json:"light,omitempty"`
	SetupHash string `json:"setup_hash"` // what the cached files were made from
	// ModulesHash is the lab modules' source hash (modulesHash).
	ModulesHash string `json:"modules_hash"`
	InitHash    string `json:"init_hash"` // the guest /init the initramfs holds
	// Arch is the guest's architecture: "" for x86-64, "arm64" (see arm64.go).
	Arch string `json:"arch,omitempty"`
	// Busybox is the guest's busybox when it is not the host's /bin/busybox (arm64).
	Busybox string `json:"busybox,omitempty"`
}

// setupHash covers everything the cached kernel files are made from, other than
// the ABI itself (which names the directory) and the guest's /init (initHash).
func setupHash() string {
	h := sha256.New()
	fmt.Fprintf(h, "version %s\nmodules %q\n", Version, GuestModules)
	h.Write([]byte(lkdtmPatchMarker))
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// modulesHash covers the lab modules' source: a change rebuilds only them and the
// initramfs.
func modulesHash() string {
	h := sha256.Sum256(labModuleSources())
	return hex.EncodeToString(h[:])[:16]
}

// initHash covers the guest's /init: a change rebuilds only the initramfs.
func initHash() string {
	h := sha256.Sum256(labfiles.GuestInit)
	return hex.EncodeToString(h[:])[:16]
}

// Setup installs the host's packages, resolves the current kernel ABI and prepares
// that kernel (image, vmlinux, module debug files, LKDTM, initramfs) under
// Dir/ABI, reusing what an earlier Setup left there. It downloads about 450 MB
// on first use.
func Setup(ctx context.Context, cfg Config) (*Kernel, error) {
	if err := installPackages(ctx, &cfg); err != nil {
		return nil, err
	}
	release, err := ResolveKernel(ctx, cfg.Kernel)
	if err != nil {
		return nil, err
	}
	if err := installPackages(ctx, &cfg, "linux-headers-"+release); err != nil {
		return nil, err
	}
	dir := filepath.Join(cfg.Dir, release)
	stamp := filepath.Join(dir, "setup.json")
	if k, err := loadKernel(stamp); err == nil && k.SetupHash == setupHash() && k.complete() && (cfg.Light || !k.Light) {
		if k.ModulesHash == modulesHash() && k.InitHash == initHash() {
			cfg.progress("lab: kernel %s ready (cached in %s)", release, dir)
			return k, nil
		}
		if k.ModulesHash != modulesHash() {
			cfg.progress("lab: the lab modules changed; rebuilding them for %s", release)
			if err := buildLabModules(ctx, k.LabModuleDir, k.Release); err != nil {
				return nil, err
			}
			k.ModulesHash = modulesHash()
		}
		cfg.progress("lab: rebuilding the initramfs of %s", release)
		if err := k.buildInitramfs(); err != nil {
			return nil, err
		}
		data, _ := json.MarshalIndent(k, "", "  ")
		return k, writeFileAtomic(stamp, append(data, '\n'))
	}
	// Whatever was there is incomplete or stale: it is rebuilt, and setup.json is
	// only written once everything it names exists.
	if k, err := loadKernel(stamp); err == nil {
		why := "files missing"
		switch {
		case k.SetupHash != setupHash():
			why = "the lab's setup recipe changed"
		case !cfg.Light && k.Light:
			why = "it was prepared light, without the -dbg vmlinux and LKDTM"
		}
		cfg.progress("lab: the cached kernel %s is not usable (%s); preparing it again", release, why)
	}
	os.Remove(stamp)
	k := &Kernel{Release: release, Dir: dir, SetupHash: setupHash(), Light: cfg.Light}
	if err := k.prepare(ctx, &cfg); err != nil {
		return nil, fmt.Errorf("lab setup of kernel %s: %w", release, err)
	}
	data, _ := json.MarshalIndent(k, "", "  ")
	if err := writeFileAtomic(stamp, append(data, '\n')); err != nil {
		return nil, err
	}
	return k, nil
}

// LoadKernel returns the kernel a previous Setup prepared in dir (Dir/ABI).
func LoadKernel(dir string) (*Kernel, error) {
	k, err := loadKernel(filepath.Join(dir, "setup.json"))
	if err != nil {
		return nil, err
	}
	if !k.complete() {
		return nil, fmt.Errorf("lab kernel in %s is incomplete; run kcrash lab setup", dir)
	}
	return k, nil
}

func loadKernel(stamp string) (*Kernel, error) {
	data, err := os.ReadFile(stamp)
	if err != nil {
		return nil, err
	}
	var k Kernel
	if err := json.Unmarshal(data, &k); err != nil {
		return nil, fmt.Errorf("%s: %w", stamp, err)
	}
	return &k, nil
}

func (k *Kernel) complete() bool {
	need := []string{k.Vmlinuz, k.Initramfs}
	if k.Arch == "" {
		need = append(need, k.LabModuleDir) // arm64 has no lab modules
	} else {
		need = append(need, k.Busybox)
	}
	if !k.Light {
		need = append(need, k.Vmlinux, k.LKDTM)
	}
	if k.Arch == "" {
		for _, m := range LabModules {
			need = append(need, k.LabModule(m))
		}
	}
	for _, p := range need {
		if p == "" {
			return false
		}
		if _, err := os.Stat(p); err != nil {
			return false
		}
	}
	return true
}

// LabModule is the path of one of the lab's own modules (LabModules) for this kernel.
func (k *Kernel) LabModule(name string) string {
	if k.LabModuleDir == "" {
		return ""
	}
	return filepath.Join(k.LabModuleDir, name+".ko")
}

func installPackages(ctx context.Context, cfg *Config, extra ...string) error {
	if cfg.NoInstall {
		return nil
	}
	cmd := exec.CommandContext(ctx, "bash", append([]string{"-s", "--"}, extra...)...)
	cmd.Stdin = bytes.NewReader(labfiles.InstallPackages)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("lab/install-packages.sh %s: %w\n%s", strings.Join(extra, " "), err, out)
	}
	return nil
}

var dependsRE = regexp.MustCompile(`(?m)^\s*Depends:\s*linux-image-(\S+)\s*$`)

// ResolveABI names the kernel ABI (e.g. 6.1.0-56-cloud-amd64) that MetaPackage
// depends on in the host's package lists: the current one, never a pinned one.
func ResolveABI(ctx context.Context) (string, error) {
	out, err := exec.CommandContext(ctx, "apt-cache", "depends", MetaPackage).Output()
	if err != nil {
		return "", fmt.Errorf("apt-cache depends %s: %w", MetaPackage, err)
	}
	m := dependsRE.FindSubmatch(out)
	if m == nil {
		return "", fmt.Errorf("apt-cache depends %s names no linux-image-*: %q", MetaPackage, out)
	}
	return string(m[1]), nil
}

func (k *Kernel) prepare(ctx context.Context, cfg *Config) error {
	debs := filepath.Join(k.Dir, "debs")
	if err := os.MkdirAll(debs, 0o755); err != nil {
		return err
	}
	image, err := download(ctx, cfg, debs, "linux-image-"+k.Release, "")
	if err != nil {
		return err
	}
	out, err := exec.CommandContext(ctx, "dpkg-deb", "-f", image, "Version").Output()
	if err != nil {
		return fmt.Errorf("dpkg-deb -f %s Version: %w", image, err)
	}
	k.Version = strings.TrimSpace(string(out))

	root := filepath.Join(k.Dir, "kernel")
	os.RemoveAll(root)
	cfg.progress("lab: extracting %s", filepath.Base(image))
	if err := run(ctx, "", "dpkg-deb", "-x", image, root); err != nil {
		return err
	}
	if err := run(ctx, "", "depmod", "-b", root, k.Release); err != nil {
		return err
	}
	k.Vmlinuz = filepath.Join(root, "boot", "vmlinuz-"+k.Release)
	modules, err := moduleOrder(filepath.Join(root, "lib", "modules", k.Release), GuestModules)
	if err != nil {
		return err
	}

	cfg.progress("lab: building the lab modules (%s) for %s", strings.Join(LabModules, ", "), k.Release)
	k.LabModuleDir = filepath.Join(k.Dir, "labmodules")
	if err := buildLabModules(ctx, k.LabModuleDir, k.Release); err != nil {
		return err
	}
	k.ModulesHash = modulesHash()

	if !k.Light {
		dbg, err := download(ctx, cfg, debs, "linux-image-"+k.Release+"-dbg", k.Version)
		if err != nil {
			return err
		}
		// linux-source-X.Y has the LKDTM source: the ABI's own version when the
		// archive still carries it, else the newest of the series (LKDTM is built
		// against this ABI's headers either way).
		series := Series(k.Release)
		src, err := download(ctx, cfg, debs, "linux-source-"+series, k.Version)
		if err != nil {
			cfg.progress("lab: linux-source-%s=%s is not in the archive (%v); using the newest linux-source-%s", series, k.Version, firstLineOf(err), series)
			if src, err = download(ctx, cfg, debs, "linux-source-"+series, ""); err != nil {
				return err
			}
		}
		k.LKDTMSource = filepath.Base(src)
		cfg.progress("lab: extracting vmlinux and module debug files from %s", filepath.Base(dbg))
		k.Vmlinux = filepath.Join(k.Dir, "vmlinux")
		k.DebugDir = filepath.Join(k.Dir, "debug")
		if err := k.extractDebug(ctx, dbg, modules); err != nil {
			return err
		}
		if k.BuildID, err = BuildID(k.Vmlinux); err != nil {
			return err
		}
		cfg.progress("lab: building lkdtm.ko from %s", filepath.Base(src))
		if k.LKDTM, err = buildLKDTM(ctx, src, filepath.Join(k.Dir, "lkdtm"), k.Release, series); err != nil {
			return err
		}
		// The big packages are no longer needed; the image stays for reference.
		os.Remove(dbg)
		os.Remove(src)
	}

	if err := k.buildInitramfs(); err != nil {
		return err
	}
	cfg.progress("lab: kernel %s (%s) ready in %s", k.Release, k.Version, k.Dir)
	return nil
}

func firstLineOf(err error) string {
	l, _, _ := strings.Cut(err.Error(), "\n")
	return l
}

// buildLabModules builds lab/modules (embedded) in dir against the ABI's headers.
func buildLabModules(ctx context.Context, dir, release string) error {
	os.RemoveAll(dir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	entries, err := labfiles.Modules.ReadDir("modules")
	if err != nil {
		return err
	}
	for _, e := range entries {
		data, err := labfiles.Modules.ReadFile("modules/" + e.Name())
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, e.Name()), data, 0o644); err != nil {
			return err
		}
	}
	headers := "/usr/src/linux-headers-" + release
	jobs := fmt.Sprintf("-j%d", min(runtime.NumCPU(), 2))
	if err := run(ctx, "", "make", "-s", "-C", headers, "M="+dir, jobs, "modules"); err != nil {
		return err
	}
	for _, m := range LabModules {
		if _, err := os.Stat(filepath.Join(dir, m+".ko")); err != nil {
			return fmt.Errorf("lab module build made no %s.ko: %w", m, err)
		}
	}
	return nil
}

// labModuleSources is the lab modules' source, for the setup hash.
func labModuleSources() []byte {
	var b bytes.Buffer
	entries, _ := labfiles.Modules.ReadDir("modules")
	for _, e := range entries {
		data, _ := labfiles.Modules.ReadFile("modules/" + e.Name())
		fmt.Fprintf(&b, "%s %d\n", e.Name(), len(data))
		b.Write(data)
	}
	return b.Bytes()
}

// buildInitramfs writes busybox, the guest's /init, the guest modules (in load
// order) and lkdtm.ko into the initramfs.
func (k *Kernel) buildInitramfs() error {
	guest, busybox, labModules := GuestModules, "/bin/busybox", LabModules
	if k.Arch == "arm64" {
		guest, busybox, labModules = Arm64GuestModules, k.Busybox, nil
	}
	modules, err := moduleOrder(filepath.Join(k.Dir, "kernel", "lib", "modules", k.Release), guest)
	if err != nil {
		return err
	}
	k.Initramfs = filepath.Join(k.Dir, "initramfs.cpio.gz")
	k.Modules = nil
	var files []string
	for _, m := range modules {
		path, err := plainModule(m.path, filepath.Join(k.Dir, "plainmodules"))
		if err != nil {
			return err
		}
		files = append(files, path)
		k.Modules = append(k.Modules, filepath.Base(path))
	}
	if k.LKDTM != "" {
		files = append(files, k.LKDTM)
		k.Modules = append(k.Modules, "lkdtm.ko")
	}
	for _, m := range labModules {
		files = append(files, k.LabModule(m))
		k.Modules = append(k.Modules, m+".ko")
	}
	if err := writeInitramfs(k.Initramfs, busybox, labfiles.GuestInit, files); err != nil {
		return err
	}
	k.InitHash = initHash()
	return nil
}

// plainModule returns an uncompressed copy of a .ko.xz or .ko.zst module (busybox
// insmod hands the bytes to init_module, which wants ELF), made once in dir; a
// plain .ko is returned as it is.
func plainModule(path, dir string) (string, error) {
	var tool string
	switch {
	case strings.HasSuffix(path, ".ko.xz"):
		tool = "xz"
	case strings.HasSuffix(path, ".ko.zst"):
		tool = "zstd"
	default:
		return path, nil
	}
	name := modName(path) + ".ko"
	out := filepath.Join(dir, name)
	if _, err := os.Stat(out); err == nil {
		return out, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	data, err := exec.Command(tool, "-dc", path).Output()
	if err != nil {
		return "", fmt.Errorf("%s -dc %s: %w", tool, path, err)
	}
	return out, writeFileAtomic(out, data)
}

// download fetches one .deb into dir with apt-get download (version "" = candidate),
// reusing a file already there. A stale package list is refreshed once.
func download(ctx context.Context, cfg *Config, dir, pkg, version string) (string, error) {
	return downloadArch(ctx, cfg, dir, pkg, "", version)
}

// downloadArch is download of a package of another architecture than the host's
// ("arm64"; "" for the host's), which needs that architecture in dpkg's list.
func downloadArch(ctx context.Context, cfg *Config, dir, pkg, arch, version string) (string, error) {
	suffix := "_*.deb"
	if arch != "" {
		suffix = "_" + arch + ".deb"
	}
	pattern := filepath.Join(dir, pkg+"_*"+suffix)
	if version != "" {
		pattern = filepath.Join(dir, pkg+"_"+strings.ReplaceAll(version, ":", "%3a")+suffix)
	}
	if m, _ := filepath.Glob(pattern); len(m) == 1 {
		return m[0], nil
	}
	spec := pkg
	if arch != "" {
		spec += ":" + arch
	}
	if version != "" {
		spec += "=" + version
	}
	tmp, err := os.MkdirTemp(dir, ".download-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	cfg.progress("lab: downloading %s", spec)
	err = run(ctx, tmp, "apt-get", "download", "-qq", spec)
	if err != nil {
		cfg.progress("lab: %v; refreshing the package lists", err)
		if err := run(ctx, "", "apt-get", "update", "-qq"); err != nil {
			return "", err
		}
		if err := run(ctx, tmp, "apt-get", "download", "-qq", spec); err != nil {
			return "", err
		}
	}
	got, _ := filepath.Glob(filepath.Join(tmp, "*.deb"))
	if len(got) != 1 {
		return "", fmt.Errorf("apt-get download %s left %d files", spec, len(got))
	}
	dst := filepath.Join(dir, filepath.Base(got[0]))
	if err := os.Rename(got[0], dst); err != nil {
		return "", err
	}
	return dst, nil
}

// extractDebug streams the -dbg package once, keeping vmlinux and the debug files of
// the guest's modules (usr/lib/debug/lib/modules/$KVER/<same path as the module>).
func (k *Kernel) extractDebug(ctx context.Context, deb string, modules []module) error {
	want := map[string]string{
		"usr/lib/debug/boot/vmlinux-" + k.Release: k.Vmlinux,
	}
	for _, m := range modules {
		// The -dbg package keeps a compressed module's debug file uncompressed.
		rel := "lib/modules/" + k.Release + "/" + strings.TrimSuffix(strings.TrimSuffix(m.rel, ".xz"), ".zst")
		want["usr/lib/debug/"+rel] = filepath.Join(k.DebugDir, rel)
	}
	return untarFromCommand(ctx, want, "dpkg-deb", "--fsys-tarfile", deb)
}

// untarFromCommand reads the tar stream a command prints and writes the members
// named in want (keys without a leading "./") to their paths. All must be found.
func untarFromCommand(ctx context.Context, want map[string]string, name string, args ...string) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	cmd := groupCommand(ctx, name, args...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	left := len(want)
	err = extractMembers(tar.NewReader(stdout), func(name string) string {
		return want[strings.TrimPrefix(name, "./")]
	}, &left)
	cancel() // stop the producer when everything was found before the end
	cmd.Wait()
	if err != nil {
		return fmt.Errorf("%s %s: %w (%s)", name, strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	if left > 0 {
		var missing []string
		for m := range want {
			missing = append(missing, m)
		}
		return fmt.Errorf("%s %s: %d of the wanted members missing (wanted %q)", name, strings.Join(args, " "), left, missing)
	}
	return nil
}

// extractMembers writes each regular member for which dest returns a path, until
// *left reaches zero or the archive ends.
func extractMembers(tr *tar.Reader, dest func(name string) string, left *int) error {
	for *left > 0 {
		h, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		path := dest(h.Name)
		if path == "" || h.Typeflag != tar.TypeReg {
			continue
		}
		if err := writeFileFrom(path, tr, os.FileMode(h.Mode&0o777)); err != nil {
			return err
		}
		*left--
	}
	return nil
}

func writeFileFrom(path string, r io.Reader, mode os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, mode|0o200)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, r); err != nil {
		f.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

func writeFileAtomic(path string, data []byte) error {
	return writeFileFrom(path, bytes.NewReader(data), 0o644)
}

// BuildID returns the GNU build ID note of an ELF file, in hex.
func BuildID(path string) (string, error) {
	f, err := elf.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	for _, s := range f.Sections {
		if s.Type != elf.SHT_NOTE {
			continue
		}
		data, err := s.Data()
		if err != nil {
			return "", fmt.Errorf("%s section %s: %w", path, s.Name, err)
		}
		// Elf64_Nhdr {namesz, descsz, type} then name and desc, each 4-byte aligned.
		for len(data) >= 12 {
			namesz := int(f.ByteOrder.Uint32(data[0:]))
			descsz := int(f.ByteOrder.Uint32(data[4:]))
			typ := f.ByteOrder.Uint32(data[8:])
			nameEnd := 12 + (namesz+3)&^3
			descEnd := nameEnd + (descsz+3)&^3
			if descEnd > len(data) || nameEnd < 12 {
				break
			}
			if typ == 3 /* NT_GNU_BUILD_ID */ && namesz == 4 && string(data[12:15]) == "GNU" {
				return hex.EncodeToString(data[nameEnd : nameEnd+descsz]), nil
			}
			data = data[descEnd:]
		}
	}
	return "", fmt.Errorf("%s: no GNU build ID note", path)
}

func run(ctx context.Context, dir, name string, args ...string) error {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		if len(out) > 4000 {
			out = out[len(out)-4000:]
		}
		return fmt.Errorf("%s %s: %w\n%s", name, strings.Join(args, " "), err, out)
	}
	return nil
}

// lkdtmPatchMarker is what buildLKDTM writes in place of the guard of
// lkdtm_UNSET_SMEP's body: native_write_cr4 is exported to modules only when the
// kernel itself has CONFIG_LKDTM (arch/x86/kernel/cpu/common.c), which Debian's lacks.
const lkdtmPatchMarker = "#if 0 /* kcrash lab: native_write_cr4 is not exported */"

// buildLKDTM extracts drivers/misc/lkdtm from the linux-source package into dir and
// builds lkdtm.ko against the installed linux-headers-$release.
func buildLKDTM(ctx context.Context, srcDeb, dir, release, series string) (string, error) {
	return buildLKDTMWith(ctx, func(dir string) error { return extractLKDTM(ctx, srcDeb, dir, series) },
		dir, "/usr/src/linux-headers-"+release)
}

// buildLKDTMWith builds lkdtm.ko in dir from the source fetch writes there, against
// the kernel headers in headers, with extra make arguments (ARCH=, CROSS_COMPILE=).
func buildLKDTMWith(ctx context.Context, fetch func(dir string) error, dir, headers string, makeArgs ...string) (string, error) {
	os.RemoveAll(dir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	if err := fetch(dir); err != nil {
		return "", err
	}
	bugs := filepath.Join(dir, "bugs.c")
	data, err := os.ReadFile(bugs)
	if err != nil {
		return "", err
	}
	patched, err := patchUnsetSMEP(string(data))
	if err != nil {
		return "", fmt.Errorf("%s: %w", bugs, err)
	}
	if err := os.WriteFile(bugs, []byte(patched), 0o644); err != nil {
		return "", err
	}
	// File names in WARN/BUG reports as in a kernel build: drivers/misc/lkdtm/…
	mk, err := os.OpenFile(filepath.Join(dir, "Makefile"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return "", err
	}
	fmt.Fprintf(mk, "ccflags-y += -fmacro-prefix-map=$(src)/=drivers/misc/lkdtm/\n")
	if err := mk.Close(); err != nil {
		return "", err
	}
	jobs := fmt.Sprintf("-j%d", min(runtime.NumCPU(), 2))
	args := append([]string{"-s", "-C", headers, "M=" + dir, "CONFIG_LKDTM=m", jobs}, makeArgs...)
	if err := run(ctx, "", "make", append(args, "modules")...); err != nil {
		return "", err
	}
	ko := filepath.Join(dir, "lkdtm.ko")
	if _, err := os.Stat(ko); err != nil {
		return "", fmt.Errorf("lkdtm build made no lkdtm.ko: %w", err)
	}
	return ko, nil
}

// patchUnsetSMEP compiles out the body of lkdtm_UNSET_SMEP (see lkdtmPatchMarker).
func patchUnsetSMEP(src string) (string, error) {
	start := strings.Index(src, "\nstatic void lkdtm_UNSET_SMEP(void)")
	if start < 0 {
		return src, nil // a kernel without the function needs no patch
	}
	end := strings.Index(src[start:], "\n}\n")
	if end < 0 {
		return "", errors.New("lkdtm_UNSET_SMEP has no end")
	}
	body := src[start : start+end]
	if strings.Contains(body, lkdtmPatchMarker) {
		return src, nil // patched already (a copy of a patched tree)
	}
	const guard = "#if IS_ENABLED(CONFIG_X86_64) && !IS_ENABLED(CONFIG_UML)"
	if !strings.Contains(body, guard) {
		return "", fmt.Errorf("lkdtm_UNSET_SMEP lacks %q", guard)
	}
	body = strings.Replace(body, guard, lkdtmPatchMarker, 1)
	return src[:start] + body + src[start+end:], nil
}

// extractLKDTM copies linux-source-$series/drivers/misc/lkdtm/ out of the source
// tarball inside the linux-source package, stopping once past that directory.
func extractLKDTM(ctx context.Context, srcDeb, dir, series string) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	outer := groupCommand(ctx, "dpkg-deb", "--fsys-tarfile", srcDeb)
	op, err := outer.StdoutPipe()
	if err != nil {
		return err
	}
	if err := outer.Start(); err != nil {
		return err
	}
	defer outer.Wait()
	defer cancel()
	tr := tar.NewReader(op)
	for {
		h, err := tr.Next()
		if err != nil {
			return fmt.Errorf("%s: no usr/src/linux-source-%s.tar.xz: %v", srcDeb, series, err)
		}
		if strings.TrimPrefix(h.Name, "./") == "usr/src/linux-source-"+series+".tar.xz" {
			break
		}
	}
	xz := groupCommand(ctx, "xz", "-dc")
	xz.Stdin = tr
	xp, err := xz.StdoutPipe()
	if err != nil {
		return err
	}
	if err := xz.Start(); err != nil {
		return err
	}
	defer xz.Wait()
	defer cancel()
	prefix := "linux-source-" + series + "/drivers/misc/lkdtm/"
	inner := tar.NewReader(xp)
	seen := 0
	for {
		h, err := inner.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("linux-source-%s.tar.xz: %w", series, err)
		}
		name := strings.TrimPrefix(h.Name, "./")
		if !strings.HasPrefix(name, prefix) {
			if seen > 0 {
				break // tar keeps a directory's members together
			}
			continue
		}
		seen++
		rel := strings.TrimPrefix(name, prefix)
		if h.Typeflag != tar.TypeReg || rel == "" || strings.Contains(rel, "..") {
			continue
		}
		if err := writeFileFrom(filepath.Join(dir, rel), inner, 0o644); err != nil {
			return err
		}
	}
	if seen == 0 {
		return fmt.Errorf("%s: no %s", srcDeb, prefix)
	}
	return nil
}

// groupCommand is exec.CommandContext for a producer that is stopped early: the
// command runs in its own process group and cancelling ctx kills the whole group
// (dpkg-deb --fsys-tarfile decompresses in a child process that would otherwise
// keep the pipe open and Wait blocked).
func groupCommand(ctx context.Context, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	return cmd
}
