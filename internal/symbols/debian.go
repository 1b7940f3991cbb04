package symbols

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Debian finds debug files by release in Debian's linux-image-RELEASE-dbg package:
// the package is fetched (from DebDir when it holds it, else with apt-get download,
// which uses the host's configured archive), its vmlinux and module debug files are
// unpacked into Dir/RELEASE (usr/lib/debug/…), and the .deb is removed. An unpacked
// release is complete or absent: it is unpacked under a temporary name and renamed.
type Debian struct {
	Dir string
	// DebDir, when set, is a directory searched for linux-image-RELEASE-dbg_*.deb
	// before the archive is asked (a local mirror or a previous download).
	DebDir string
	// Download fetches package pkg into dir (nil: apt-get download).
	Download func(ctx context.Context, pkg, dir string) error
	// Progress, when set, is told what is being done (a download takes minutes).
	Progress func(msg string)

	mu   sync.Mutex
	mods map[string]map[string]string
}

// DefaultDebianDir is ~/.cache/kcrash/debian.
func DefaultDebianDir() string {
	if d, err := os.UserCacheDir(); err == nil {
		return filepath.Join(d, "kcrash", "debian")
	}
	return filepath.Join(os.TempDir(), "kcrash-debian")
}

// Name implements Source.
func (d *Debian) Name() string { return "debian -dbg packages in " + d.Dir }

// debianRelease matches the releases Debian's kernel packages carry: an ABI number
// ("6.1.0-57-cloud-amd64", "4.19.0-27-686-pae") or, from 6.12 on, the upstream
// version with a +debN suffix ("6.12.117+deb12-cloud-amd64"), then a flavour.
var debianRelease = regexp.MustCompile(`^[2-9]\.\d+(?:\.\d+)?(?:-\d+|\+deb\d+(?:u\d+)?|\+bpo)(?:-[a-z0-9]+)*-(?:amd64|arm64|i386|686|686-pae|armmp|armmp-lpae|armel|marvell|rpi|powerpc64le|ppc64el|s390x|riscv64|mips64r2el|octeon|loongson-3|4kc-malta|5kc-malta)$`)

// DbgPackage is the name of a release's debug package.
func DbgPackage(release string) string { return "linux-image-" + release + "-dbg" }

// Find implements Source.
func (d *Debian) Find(ctx context.Context, q Query) (string, error) {
	if err := q.check(); err != nil {
		return "", err
	}
	if q.Release == "" {
		return "", fmt.Errorf("a release is needed: %w", ErrNotFound)
	}
	if !debianRelease.MatchString(q.Release) {
		// 5.15.0-91-generic, 6.5.0-rc3-next-20230801, 5.0.3-cmm: no Debian package has
		// them, and asking apt costs seconds per report.
		return "", fmt.Errorf("%s is not a Debian kernel release: %w", q.Release, ErrNotFound)
	}
	root, err := d.unpacked(ctx, q.Release)
	if err != nil {
		return "", err
	}
	if q.Module == "" {
		p := filepath.Join(root, "usr/lib/debug/boot", "vmlinux-"+q.Release)
		if !regular(p) {
			return "", fmt.Errorf("%s has no vmlinux: %w", DbgPackage(q.Release), ErrNotFound)
		}
		return verified(p, q.BuildID)
	}
	d.mu.Lock()
	m, ok := d.mods[q.Release]
	if !ok {
		m = map[string]string{}
		indexModules(filepath.Join(root, "usr/lib/debug/lib/modules", q.Release), m)
		if d.mods == nil {
			d.mods = map[string]map[string]string{}
		}
		d.mods[q.Release] = m
	}
	d.mu.Unlock()
	p := m[ModKey(q.Module)]
	if p == "" {
		return "", fmt.Errorf("%s has no %s.ko: %w", DbgPackage(q.Release), q.Module, ErrNotFound)
	}
	return verified(p, q.BuildID)
}

func (d *Debian) progress(format string, args ...any) {
	if d.Progress != nil {
		d.Progress(fmt.Sprintf(format, args...))
	}
}

// unpacked returns Dir/RELEASE, fetching and unpacking the package when it is not
// there yet. Concurrent processes serialize on a lock file per release.
func (d *Debian) unpacked(ctx context.Context, release string) (string, error) {
	root := filepath.Join(d.Dir, release)
	if fi, err := os.Stat(root); err == nil && fi.IsDir() {
		return root, nil
	}
	if err := os.MkdirAll(d.Dir, 0o755); err != nil {
		return "", err
	}
	lock, err := os.OpenFile(filepath.Join(d.Dir, "."+release+".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return "", err
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return "", err
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)
	if fi, err := os.Stat(root); err == nil && fi.IsDir() {
		return root, nil // another process unpacked it meanwhile
	}
	pkg := DbgPackage(release)
	deb, cleanup, err := d.fetch(ctx, pkg)
	if err != nil {
		return "", err
	}
	defer cleanup()
	tmp, err := os.MkdirTemp(d.Dir, tmpPrefix+release+"-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	d.progress("unpacking %s", filepath.Base(deb))
	start := time.Now()
	if err := unpackDebug(ctx, deb, tmp, release); err != nil {
		return "", fmt.Errorf("%s: %w", filepath.Base(deb), err)
	}
	if !regular(filepath.Join(tmp, "usr/lib/debug/boot", "vmlinux-"+release)) {
		return "", fmt.Errorf("%s has no usr/lib/debug/boot/vmlinux-%s", filepath.Base(deb), release)
	}
	if err := os.Chmod(tmp, 0o755); err != nil {
		return "", err
	}
	if err := os.Rename(tmp, root); err != nil {
		return "", err
	}
	d.progress("unpacked %s in %s", pkg, time.Since(start).Round(time.Second))
	return root, nil
}

// fetch returns the path of pkg's .deb: from DebDir, or downloaded into a temporary
// directory that cleanup removes.
func (d *Debian) fetch(ctx context.Context, pkg string) (deb string, cleanup func(), err error) {
	if d.DebDir != "" {
		if m, _ := filepath.Glob(filepath.Join(d.DebDir, pkg+"_*.deb")); len(m) > 0 {
			return m[len(m)-1], func() {}, nil
		}
	}
	dir, err := os.MkdirTemp(d.Dir, tmpPrefix+"download-")
	if err != nil {
		return "", nil, err
	}
	cleanup = func() { os.RemoveAll(dir) }
	dl := d.Download
	if dl == nil {
		dl = aptDownload
	}
	d.progress("downloading %s", pkg)
	start := time.Now()
	if err := dl(ctx, pkg, dir); err != nil {
		cleanup()
		return "", nil, fmt.Errorf("%s: %v: %w", pkg, err, ErrNotFound)
	}
	got, _ := filepath.Glob(filepath.Join(dir, "*.deb"))
	if len(got) != 1 {
		cleanup()
		return "", nil, fmt.Errorf("downloading %s left %d .deb files: %w", pkg, len(got), ErrNotFound)
	}
	if fi, err := os.Stat(got[0]); err == nil {
		d.progress("downloaded %s (%d MB) in %s", filepath.Base(got[0]), fi.Size()>>20, time.Since(start).Round(time.Second))
	}
	return got[0], cleanup, nil
}

// aptDownload runs apt-get download in dir.
func aptDownload(ctx context.Context, pkg, dir string) error {
	if _, err := exec.LookPath("apt-get"); err != nil {
		return errors.New("apt-get not found (not a Debian system)")
	}
	cmd := exec.CommandContext(ctx, "apt-get", "download", "-qq", pkg)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("apt-get download %s: %v: %s", pkg, err, strings.TrimSpace(lastLine(string(out))))
	}
	return nil
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return s[i+1:]
	}
	return s
}

// unpackDebug streams the package's data (dpkg-deb --fsys-tarfile) and writes the
// vmlinux and the module debug files of release under dir.
func unpackDebug(ctx context.Context, deb, dir, release string) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	cmd := exec.CommandContext(ctx, "dpkg-deb", "--fsys-tarfile", deb)
	// dpkg-deb decompresses in a child; kill the whole group when stopped early.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	err = extractTar(out, dir, release)
	if err != nil {
		cancel()
		cmd.Wait()
		return err
	}
	if err := cmd.Wait(); err != nil {
		return fmt.Errorf("dpkg-deb --fsys-tarfile: %v: %s", err, strings.TrimSpace(stderr.String()))
	}
	return nil
}

// extractTar writes the wanted regular files of a package's tar stream under dir.
func extractTar(r io.Reader, dir, release string) error {
	vmlinux := "usr/lib/debug/boot/vmlinux-" + release
	modPrefix := "usr/lib/debug/lib/modules/" + release + "/"
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		name := strings.TrimPrefix(h.Name, "./")
		if h.Typeflag != tar.TypeReg || strings.Contains(name, "..") {
			continue
		}
		if name != vmlinux && !(strings.HasPrefix(name, modPrefix) && moduleFileKey(filepath.Base(name)) != "") {
			continue
		}
		if err := writeFrom(filepath.Join(dir, name), tr); err != nil {
			return err
		}
	}
}

func writeFrom(path string, r io.Reader) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, r); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
