package lab

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
)

// The arm64 guest: Debian's arm64 cloud kernel under qemu-system-aarch64 (TCG,
// machine virt, a Cortex-A57), the same busybox /init (lab/init.sh) with Debian's
// arm64 busybox-static, and LKDTM cross-built against the arm64 headers with
// gcc-aarch64-linux-gnu and the host's linux-kbuild (its tools run on the host).
// It has a small matrix of its own (Arm64Matrix) and QEMU's two dump formats; its
// cache is Dir/ABI like the x86-64 kernels', with Dir/arm64 naming the last one run.

// Arm64Flavor is the Debian flavour of the arm64 guest's kernel.
const Arm64Flavor = "cloud-arm64"

// Arm64MetaPackage names the current arm64 cloud ABI in the host's package lists
// (with arm64 added to dpkg's architectures).
const Arm64MetaPackage = "linux-image-cloud-arm64:arm64"

// Arm64GuestModules are the modules the arm64 guest loads: the NIC (so init's
// network setup does not wait for a carrier) and fw_cfg, which hands VMCOREINFO to
// QEMU's dump-guest-memory. Debian's arm64 cloud kernel has no pvpanic: the host
// sees the panic on the console (PanicTrailer).
var Arm64GuestModules = []string{"virtio_pci", "virtio_net", "qemu_fw_cfg"}

// Arm64Packages are the host packages the arm64 guest needs besides the lab's.
var Arm64Packages = []string{"qemu-system-arm", "gcc-aarch64-linux-gnu", "binutils-aarch64-linux-gnu"}

// Arm64Matrix is the arm64 guest's crash matrix: a NULL dereference in a module
// (an oops through the exception vector: pt_regs on the stack) and a BUG() (a brk
// instruction). No netconsole: the console and the dumps are what arm64 is for.
var Arm64Matrix = []Trigger{
	{Name: "ACCESS_NULL", LKDTM: "ACCESS_NULL", Args: "oops=panic", Kind: "null-ptr-deref", Panics: true, Netconsole: "none"},
	{Name: "BUG", LKDTM: "BUG", Args: "oops=panic", Kind: "bug", Panics: true, Netconsole: "none"},
}

// arm64DumpSpecs are QEMU's formats for aarch64: ELF and kdump-compressed (zlib,
// makedumpfile's flattened layout).
var arm64DumpSpecs = []dumpSpec{
	{format: "elf", qemu: "elf"},
	{format: "kdump-zlib-flat", qemu: "kdump-zlib"},
}

func dumpSpecsFor(k *Kernel) []dumpSpec {
	if k.Arch == "arm64" {
		return arm64DumpSpecs
	}
	return dumpSpecs
}

// Arm64Triggers returns the arm64 matrix with defaults filled in.
func Arm64Triggers() []Trigger {
	out := make([]Trigger, len(Arm64Matrix))
	for i, t := range Arm64Matrix {
		out[i] = t.normalized()
	}
	return out
}

// IsArm64 says whether a --kernel value selects the arm64 guest: "arm64", the
// flavour "cloud-arm64" or an ABI of it (6.1.0-57-cloud-arm64).
func IsArm64(spec string) bool {
	return spec == "arm64" || strings.HasSuffix(spec, Arm64Flavor)
}

// QEMUBinary is the QEMU system emulator of the kernel's architecture.
func QEMUBinary(k *Kernel) string {
	if k != nil && k.Arch == "arm64" {
		return "qemu-system-aarch64"
	}
	return "qemu-system-x86_64"
}

// consoleArg is the console= parameter of the kernel's serial port.
func consoleArg(k *Kernel) string {
	if k != nil && k.Arch == "arm64" {
		return "console=ttyAMA0"
	}
	return "console=ttyS0"
}

// arm64Args are the qemu-system-aarch64 arguments: TCG, machine virt (GICv2, a
// PL011 UART as ttyAMA0, fw_cfg over MMIO), a Cortex-A57 (ARMv8.0: no pointer
// authentication, 48-bit VA), a virtio NIC and the vmcoreinfo device.
func (c GuestConfig) arm64Args() []string {
	vcpus := c.VCPUs
	if vcpus == 0 {
		vcpus = 1
	}
	mem := c.Memory
	if mem == "" {
		mem = "128M"
	}
	args := []string{
		"-accel", "tcg", "-machine", "virt", "-cpu", "cortex-a57", "-m", mem, "-smp", strconv.Itoa(vcpus),
		"-display", "none",
	}
	if !c.WarmReset {
		args = append(args, "-no-reboot")
	}
	args = append(args, "-monitor", "none",
		"-kernel", c.Kernel.Vmlinuz, "-initrd", c.Kernel.Initramfs,
		"-append", strings.TrimSpace("console=ttyAMA0 "+c.Append),
		"-serial", "file:"+c.Serial,
		"-netdev", "user,id=n0", "-device", "virtio-net-pci,netdev=n0",
		"-action", "panic=none",
		"-device", "vmcoreinfo",
		"-qmp", "unix:"+c.QMP+",server=on,wait=off",
	)
	return args
}

// arm64SetupHash covers what the arm64 kernel files are made from besides the ABI.
func arm64SetupHash() string {
	h := sha256.New()
	fmt.Fprintf(h, "version %s arm64 modules %q packages %q\n", Version, Arm64GuestModules, Arm64Packages)
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// Arm64RecipeHash is RecipeHash for the arm64 matrix.
func Arm64RecipeHash(memory string) string {
	h := sha256.New()
	fmt.Fprintf(h, "lab %s arm64 setup %s init %s base %q memory %q\n", Version, arm64SetupHash(), initHash(), BaseArgs, memory)
	tt, _ := json.Marshal(Arm64Triggers())
	h.Write(tt)
	qa, _ := json.Marshal(GuestConfig{Kernel: &Kernel{Arch: "arm64"}}.QEMUArgs())
	h.Write(qa)
	for _, d := range arm64DumpSpecs {
		fmt.Fprintf(h, "%s %s %v\n", d.format, d.qemu, d.paging)
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// ensureArm64Packages adds arm64 to dpkg's architectures (so apt-get download can
// fetch arm64 packages) and installs Arm64Packages, plus extra.
func ensureArm64Packages(ctx context.Context, cfg *Config, extra ...string) error {
	if cfg.NoInstall {
		return nil
	}
	out, err := exec.CommandContext(ctx, "dpkg", "--print-foreign-architectures").Output()
	if err != nil {
		return fmt.Errorf("dpkg --print-foreign-architectures: %w", err)
	}
	if !strings.Contains(" "+strings.Join(strings.Fields(string(out)), " ")+" ", " arm64 ") {
		cfg.progress("lab: adding arm64 to dpkg's architectures (dpkg --add-architecture arm64; apt-get update)")
		if err := run(ctx, "", "dpkg", "--add-architecture", "arm64"); err != nil {
			return err
		}
		if err := run(ctx, "", "apt-get", "update", "-qq"); err != nil {
			return err
		}
	}
	return installPackages(ctx, cfg, append(append([]string{}, Arm64Packages...), extra...)...)
}

var arm64DependsRE = regexp.MustCompile(`(?m)^\s*Depends:\s*linux-image-(\S+?)(?::arm64)?\s*$`)

// ResolveArm64ABI names the current arm64 cloud ABI (Arm64MetaPackage's dependency).
func ResolveArm64ABI(ctx context.Context) (string, error) {
	out, err := exec.CommandContext(ctx, "apt-cache", "depends", Arm64MetaPackage).Output()
	if err != nil {
		return "", fmt.Errorf("apt-cache depends %s: %w", Arm64MetaPackage, err)
	}
	m := arm64DependsRE.FindSubmatch(out)
	if m == nil {
		return "", fmt.Errorf("apt-cache depends %s names no linux-image-*: %q", Arm64MetaPackage, out)
	}
	return string(m[1]), nil
}

// SetupArm64 prepares the arm64 guest's kernel under Dir/ABI (the image, the -dbg
// vmlinux and module debug files, LKDTM cross-built, busybox and the initramfs),
// reusing what an earlier SetupArm64 left there. cfg.Kernel may name an arm64 ABI;
// otherwise the current one is used. It downloads about 290 MB on first use.
func SetupArm64(ctx context.Context, cfg Config) (*Kernel, error) {
	if err := ensureArm64Packages(ctx, &cfg); err != nil {
		return nil, err
	}
	release := cfg.Kernel
	if release == "" || release == "arm64" || release == Arm64Flavor {
		var err error
		if release, err = ResolveArm64ABI(ctx); err != nil {
			return nil, err
		}
	}
	if !strings.HasSuffix(release, "-"+Arm64Flavor) {
		return nil, fmt.Errorf("--kernel %s: not an arm64 cloud ABI such as 6.1.0-57-cloud-arm64", release)
	}
	// The common headers (arch: all) and the host's kbuild of the series: the arm64
	// headers package holds only the generated files and points at both.
	series := Series(release)
	common := strings.TrimSuffix(release, "-"+Arm64Flavor) + "-common"
	if err := installPackages(ctx, &cfg, "linux-headers-"+common, "linux-kbuild-"+series); err != nil {
		return nil, err
	}
	dir := filepath.Join(cfg.Dir, release)
	stamp := filepath.Join(dir, "setup.json")
	if k, err := loadKernel(stamp); err == nil && k.SetupHash == arm64SetupHash() && k.complete() {
		if k.InitHash == initHash() {
			cfg.progress("lab: arm64 kernel %s ready (cached in %s)", release, dir)
			return k, nil
		}
		cfg.progress("lab: rebuilding the initramfs of %s", release)
		if err := k.buildInitramfs(); err != nil {
			return nil, err
		}
		data, _ := json.MarshalIndent(k, "", "  ")
		return k, writeFileAtomic(stamp, append(data, '\n'))
	}
	os.Remove(stamp)
	k := &Kernel{Release: release, Dir: dir, SetupHash: arm64SetupHash(), Arch: "arm64"}
	if err := k.prepareArm64(ctx, &cfg, series); err != nil {
		return nil, fmt.Errorf("lab setup of arm64 kernel %s: %w", release, err)
	}
	data, _ := json.MarshalIndent(k, "", "  ")
	if err := writeFileAtomic(stamp, append(data, '\n')); err != nil {
		return nil, err
	}
	return k, nil
}

func (k *Kernel) prepareArm64(ctx context.Context, cfg *Config, series string) error {
	debs := filepath.Join(k.Dir, "debs")
	if err := os.MkdirAll(debs, 0o755); err != nil {
		return err
	}
	image, err := downloadArch(ctx, cfg, debs, "linux-image-"+k.Release, "arm64", "")
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
	modules, err := moduleOrder(filepath.Join(root, "lib", "modules", k.Release), Arm64GuestModules)
	if err != nil {
		return err
	}

	bb, err := downloadArch(ctx, cfg, debs, "busybox-static", "arm64", "")
	if err != nil {
		return err
	}
	k.Busybox = filepath.Join(k.Dir, "busybox")
	if err := untarFromCommand(ctx, map[string]string{"bin/busybox": k.Busybox}, "dpkg-deb", "--fsys-tarfile", bb); err != nil {
		return err
	}

	dbg, err := downloadArch(ctx, cfg, debs, "linux-image-"+k.Release+"-dbg", "arm64", k.Version)
	if err != nil {
		return err
	}
	cfg.progress("lab: extracting vmlinux and module debug files from %s", filepath.Base(dbg))
	k.Vmlinux = filepath.Join(k.Dir, "vmlinux")
	k.DebugDir = filepath.Join(k.Dir, "debug")
	if err := k.extractDebug(ctx, dbg, modules); err != nil {
		return err
	}
	if k.BuildID, err = BuildID(k.Vmlinux); err != nil {
		return err
	}
	os.Remove(dbg)

	headers, err := k.arm64Headers(ctx, cfg, debs, series)
	if err != nil {
		return err
	}
	fetch, from, err := lkdtmSource(ctx, cfg, k, debs, series)
	if err != nil {
		return err
	}
	k.LKDTMSource = from
	cfg.progress("lab: cross-building lkdtm.ko for arm64 from %s", from)
	k.LKDTM, err = buildLKDTMWith(ctx, fetch, filepath.Join(k.Dir, "lkdtm"), headers,
		"ARCH=arm64", "CROSS_COMPILE=aarch64-linux-gnu-")
	if err != nil {
		return err
	}
	if err := k.buildInitramfs(); err != nil {
		return err
	}
	cfg.progress("lab: arm64 kernel %s (%s) ready in %s", k.Release, k.Version, k.Dir)
	return nil
}

// arm64Headers extracts linux-headers-ABI (arm64) under Dir/ABI/headers and points
// its relative links (../../lib/linux-kbuild-X.Y, and the Makefile's include of the
// common headers, an absolute path) at the host's installed packages.
func (k *Kernel) arm64Headers(ctx context.Context, cfg *Config, debs, series string) (string, error) {
	deb, err := downloadArch(ctx, cfg, debs, "linux-headers-"+k.Release, "arm64", k.Version)
	if err != nil {
		return "", err
	}
	root := filepath.Join(k.Dir, "headers")
	os.RemoveAll(root)
	if err := run(ctx, "", "dpkg-deb", "-x", deb, root); err != nil {
		return "", err
	}
	if err := os.MkdirAll(filepath.Join(root, "usr", "lib"), 0o755); err != nil {
		return "", err
	}
	kbuild := "/usr/lib/linux-kbuild-" + series
	if _, err := os.Stat(filepath.Join(kbuild, "scripts")); err != nil {
		return "", fmt.Errorf("the host's linux-kbuild-%s is missing: %w", series, err)
	}
	if err := os.Symlink(kbuild, filepath.Join(root, "usr", "lib", "linux-kbuild-"+series)); err != nil {
		return "", err
	}
	return filepath.Join(root, "usr", "src", "linux-headers-"+k.Release), nil
}

// lkdtmSource is where the LKDTM source comes from: an x86-64 lab kernel of the
// same series already extracted it (from linux-source-X.Y, the same source the
// arm64 kernel is built from), else linux-source-X.Y is downloaded.
func lkdtmSource(ctx context.Context, cfg *Config, k *Kernel, debs, series string) (func(string) error, string, error) {
	for _, abi := range CachedKernels(cfg.Dir) {
		if Series(abi) != series || abi == k.Release {
			continue
		}
		other, err := loadKernel(filepath.Join(cfg.Dir, abi, "setup.json"))
		if err != nil || other.LKDTM == "" || other.LKDTMSource == "" {
			continue
		}
		src := filepath.Dir(other.LKDTM)
		if _, err := os.Stat(filepath.Join(src, "core.c")); err != nil {
			continue
		}
		return func(dir string) error { return copyLKDTMSource(src, dir) }, other.LKDTMSource + " (as extracted for " + abi + ")", nil
	}
	deb, err := download(ctx, cfg, debs, "linux-source-"+series, k.Version)
	if err != nil {
		if deb, err = download(ctx, cfg, debs, "linux-source-"+series, ""); err != nil {
			return nil, "", err
		}
	}
	return func(dir string) error {
		defer os.Remove(deb)
		return extractLKDTM(ctx, deb, dir, series)
	}, filepath.Base(deb), nil
}

// copyLKDTMSource copies the source files (*.c, *.h, Makefile) of an LKDTM build
// directory, leaving its objects behind.
func copyLKDTMSource(src, dst string) error {
	entries, err := os.ReadDir(src)
	if err != nil {
		return err
	}
	for _, e := range entries {
		n := e.Name()
		if !e.Type().IsRegular() || n == "lkdtm.mod.c" || !(strings.HasSuffix(n, ".c") || strings.HasSuffix(n, ".h") || n == "Makefile") {
			continue
		}
		data, err := os.ReadFile(filepath.Join(src, n))
		if err != nil {
			return err
		}
		if n == "Makefile" {
			// buildLKDTMWith appends the prefix map again.
			data = bytes.ReplaceAll(data, []byte("ccflags-y += -fmacro-prefix-map=$(src)/=drivers/misc/lkdtm/\n"), nil)
		}
		if err := os.WriteFile(filepath.Join(dst, n), data, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// FindArm64Manifest returns the manifest of the last arm64 matrix run in the cache
// dir (dir/arm64/matrix/manifest.json), or the file named by
// $KCRASH_LAB_ARM64_MANIFEST when set.
func FindArm64Manifest(dir string) (string, error) {
	if p := os.Getenv("KCRASH_LAB_ARM64_MANIFEST"); p != "" {
		return p, nil
	}
	p := filepath.Join(dir, "arm64", "matrix", ManifestName)
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("no arm64 lab manifest: %w (build it with: go run ./cmd/kcrash lab run --kernel arm64)", err)
	}
	return p, nil
}
