package symbols

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func write(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestDir(t *testing.T) {
	const rel = "6.1.0-57-cloud-amd64"
	root := t.TempDir()
	write(t, filepath.Join(root, rel, "vmlinux"), makeELF(t, idA, 0))
	write(t, filepath.Join(root, rel, "kernel/fs/ext4/ext4.ko"), makeELF(t, idB, 0))
	write(t, filepath.Join(root, "usr/lib/debug/.build-id/cc", idC[2:]+".debug"), makeELF(t, idC, 0))
	write(t, filepath.Join(root, "usr/lib/debug/boot/vmlinux-6.12.1"), makeELF(t, idB, 0))
	d := NewDir(root)
	for _, tc := range []struct {
		q    Query
		want string // relative path; "" = not found
	}{
		{Query{Release: rel}, rel + "/vmlinux"},
		{Query{Release: rel, BuildID: idA}, rel + "/vmlinux"},
		{Query{Release: rel, BuildID: idB}, ""}, // the release's vmlinux has another ID
		{Query{Release: rel, Module: "ext4"}, rel + "/kernel/fs/ext4/ext4.ko"},
		{Query{Release: rel, Module: "ext4", BuildID: idB}, rel + "/kernel/fs/ext4/ext4.ko"},
		{Query{Release: rel, Module: "xfs"}, ""},
		{Query{BuildID: idC, Module: "lkdtm"}, "usr/lib/debug/.build-id/cc/" + idC[2:] + ".debug"},
		{Query{Release: "6.12.1"}, "usr/lib/debug/boot/vmlinux-6.12.1"},
		{Query{Release: "6.2.0"}, ""},
		{Query{BuildID: idA}, ""},
	} {
		p, err := d.Find(context.Background(), tc.q)
		if tc.want == "" {
			if !errors.Is(err, ErrNotFound) {
				t.Errorf("%v: got %s, %v; want not found", tc.q, p, err)
			}
			continue
		}
		if err != nil || p != filepath.Join(root, tc.want) {
			t.Errorf("%v: got %s, %v; want %s", tc.q, p, err, tc.want)
		}
	}
	if _, err := d.Find(context.Background(), Query{Release: "../etc"}); err == nil || errors.Is(err, ErrNotFound) {
		t.Errorf("a release with a path in it: %v, want a refusal", err)
	}
}

func TestLookupSaysWhatWasTried(t *testing.T) {
	l := &Lookup{Sources: []Source{NewDir(t.TempDir()), &Debuginfod{Cache: &Cache{Dir: t.TempDir()}}}}
	_, err := l.Find(context.Background(), Query{Release: "6.1.0-57-amd64", BuildID: idA})
	var nf *NotFoundError
	if !errors.As(err, &nf) || len(nf.Tried) != 2 || !errors.Is(err, ErrNotFound) {
		t.Fatalf("got %v", err)
	}
	for _, s := range []string{"directory ", "no vmlinux for 6.1.0-57-amd64", "debuginfod", "no server URLs"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("%q does not say %q", err, s)
		}
	}
}

// buildDeb makes a linux-image-REL-dbg .deb (with dpkg-deb) holding a vmlinux,
// one module debug file and a file that must not be unpacked.
func buildDeb(t *testing.T, dir, rel string) string {
	t.Helper()
	needDpkg(t)
	root := t.TempDir()
	write(t, filepath.Join(root, "DEBIAN/control"), []byte("Package: "+DbgPackage(rel)+"\nVersion: 1\nArchitecture: amd64\nMaintainer: test <t@example.org>\nDescription: test\n"))
	write(t, filepath.Join(root, "usr/lib/debug/boot/vmlinux-"+rel), makeELF(t, idA, 100))
	write(t, filepath.Join(root, "usr/lib/debug/lib/modules", rel, "kernel/fs/xfs/xfs.ko"), makeELF(t, idB, 100))
	write(t, filepath.Join(root, "usr/share/doc", DbgPackage(rel), "copyright"), []byte("x"))
	deb := filepath.Join(dir, DbgPackage(rel)+"_1_amd64.deb")
	if out, err := exec.Command("dpkg-deb", "--root-owner-group", "-Zgzip", "--build", root, deb).CombinedOutput(); err != nil {
		t.Fatalf("dpkg-deb --build: %v: %s", err, out)
	}
	return deb
}

func TestDebian(t *testing.T) {
	const rel = "6.1.0-99-cloud-amd64"
	debs := t.TempDir()
	deb := buildDeb(t, debs, rel)
	var asked []string
	d := &Debian{Dir: t.TempDir(), Download: func(ctx context.Context, pkg, dir string) error {
		asked = append(asked, pkg)
		data, err := os.ReadFile(deb)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dir, filepath.Base(deb)), data, 0o644)
	}}
	ctx := context.Background()
	p, err := d.Find(ctx, Query{Release: rel, BuildID: idA})
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(d.Dir, rel, "usr/lib/debug/boot/vmlinux-"+rel); p != want {
		t.Errorf("vmlinux at %s, want %s", p, want)
	}
	m, err := d.Find(ctx, Query{Release: rel, Module: "xfs"})
	if err != nil || filepath.Base(m) != "xfs.ko" {
		t.Errorf("module: %s, %v", m, err)
	}
	if _, err := d.Find(ctx, Query{Release: rel, BuildID: idC}); !errors.Is(err, ErrNotFound) {
		t.Errorf("a build ID the package's vmlinux does not have: %v", err)
	}
	if len(asked) != 1 || asked[0] != DbgPackage(rel) {
		t.Errorf("downloads: %q, want one of %s", asked, DbgPackage(rel))
	}
	got := files(t, d.Dir)
	for _, f := range got {
		if strings.Contains(f, "copyright") || strings.Contains(f, ".deb") || strings.Contains(f, tmpPrefix) {
			t.Errorf("left in the cache: %s", f)
		}
	}
	// A release the archive does not have is not found, and leaves nothing.
	d.Download = func(ctx context.Context, pkg, dir string) error {
		return errors.New("E: Unable to locate package " + pkg)
	}
	if _, err := d.Find(ctx, Query{Release: "6.1.0-1-amd64"}); !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "Unable to locate") {
		t.Errorf("missing package: %v", err)
	}
	if _, err := os.Stat(filepath.Join(d.Dir, "6.1.0-1-amd64")); err == nil {
		t.Error("a failed download left a release directory")
	}
	// DebDir: the package is taken from a directory without downloading.
	d2 := &Debian{Dir: t.TempDir(), DebDir: debs, Download: func(context.Context, string, string) error {
		t.Error("downloaded although DebDir has the package")
		return errors.New("no")
	}}
	if _, err := d2.Find(ctx, Query{Release: rel}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(deb); err != nil {
		t.Errorf("the DebDir package was removed: %v", err)
	}
}

// TestDebianCorruptPackage: a .deb that is not one fails and leaves nothing unpacked.
func TestDebianCorruptPackage(t *testing.T) {
	needDpkg(t)
	const rel = "6.1.0-98-amd64"
	d := &Debian{Dir: t.TempDir(), Download: func(ctx context.Context, pkg, dir string) error {
		return os.WriteFile(filepath.Join(dir, pkg+"_1_amd64.deb"), []byte("<html>not a deb</html>"), 0o644)
	}}
	if _, err := d.Find(context.Background(), Query{Release: rel}); err == nil {
		t.Fatal("a corrupt package was accepted")
	}
	for _, f := range files(t, d.Dir) {
		if !strings.HasSuffix(f, ".lock") {
			t.Errorf("left behind: %s", f)
		}
	}
}

// needDpkg skips without dpkg-deb, except in CI (a Debian machine) where it fails.
func needDpkg(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("dpkg-deb"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("dpkg-deb not installed")
		}
		t.Skip("dpkg-deb not installed (not a Debian system)")
	}
}

func TestDebianRelease(t *testing.T) {
	for rel, want := range map[string]bool{
		"6.1.0-57-cloud-amd64": true, "6.1.0-57-amd64": true, "6.12.117+deb12-cloud-amd64": true,
		"6.12.38+deb13-amd64": true, "4.19.0-27-686-pae": true, "6.1.0-57-cloud-arm64": true,
		"6.1.0-57-rt-amd64": true, "2.6.32-5-amd64": true,
		"5.15.0-91-generic": false, "5.0.3-cmm": false, "6.5.0-rc3-next-20230801": false,
		"6.1.0-57-cloud-amd64; rm -rf /": false, "": false, "6.1.0-57-cloud-amd64\n": false,
	} {
		if got := debianRelease.MatchString(rel); got != want {
			t.Errorf("debianRelease(%q) = %v, want %v", rel, got, want)
		}
	}
}
