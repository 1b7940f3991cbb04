package symbols

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
)

// Dir is a local directory tree of debug files, laid out in any of the ways kcrash
// and the distributions use:
//
//	DIR/RELEASE/vmlinux, DIR/vmlinux-RELEASE
//	DIR/RELEASE/usr/lib/debug/boot/vmlinux-RELEASE, DIR/usr/lib/debug/boot/vmlinux-RELEASE
//	DIR/.build-id/NN/NNNN….debug, DIR/usr/lib/debug/.build-id/… (gdb's layout)
//	modules anywhere under DIR/RELEASE/ or DIR/usr/lib/debug/lib/modules/RELEASE/ as
//	NAME.ko, NAME.ko.debug or NAME.ko.dbg
type Dir struct {
	Root string

	mu   sync.Mutex
	mods map[string]map[string]string // release → module key → path
}

// NewDir returns the source for a directory tree.
func NewDir(root string) *Dir { return &Dir{Root: root} }

// Name implements Source.
func (d *Dir) Name() string { return "directory " + d.Root }

// Find implements Source. A file found by release is returned only when its build ID
// matches the query's (when it has one).
func (d *Dir) Find(ctx context.Context, q Query) (string, error) {
	if err := q.check(); err != nil {
		return "", err
	}
	if q.BuildID != "" {
		for _, base := range []string{d.Root, filepath.Join(d.Root, "usr/lib/debug")} {
			p := filepath.Join(base, ".build-id", q.BuildID[:2], q.BuildID[2:]+".debug")
			if regular(p) {
				return p, nil
			}
		}
	}
	if q.Release == "" {
		return "", fmt.Errorf("no .build-id/%s/%s.debug: %w", q.BuildID[:2], q.BuildID[2:], ErrNotFound)
	}
	var p string
	if q.Module == "" {
		p = FindVmlinux(d.Root, q.Release)
		if p == "" {
			return "", fmt.Errorf("no vmlinux for %s: %w", q.Release, ErrNotFound)
		}
	} else {
		p = d.modules(q.Release)[ModKey(q.Module)]
		if p == "" {
			return "", fmt.Errorf("no %s.ko for %s: %w", q.Module, q.Release, ErrNotFound)
		}
	}
	return verified(p, q.BuildID)
}

// verified returns p when it has build ID id (or id is "").
func verified(p, id string) (string, error) {
	if id == "" {
		return p, nil
	}
	got, err := FileBuildID(p)
	if err != nil {
		return "", fmt.Errorf("%s: %v: %w", p, err, ErrNotFound)
	}
	if got != id {
		return "", fmt.Errorf("%s has build ID %s, not %s: %w", p, got, id, ErrNotFound)
	}
	return p, nil
}

func regular(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular()
}

// FindVmlinux looks for the kernel image of a release under dir: dir/RELEASE/vmlinux,
// dir/vmlinux-RELEASE, dir/RELEASE/usr/lib/debug/boot/vmlinux-RELEASE (a
// linux-image-…-dbg package unpacked there) or dir/usr/lib/debug/boot/vmlinux-RELEASE.
// It returns "" when there is none or the release is not a plain name.
func FindVmlinux(dir, release string) string {
	if dir == "" || !validRelease(release) {
		return ""
	}
	for _, p := range []string{
		filepath.Join(dir, release, "vmlinux"),
		filepath.Join(dir, "vmlinux-"+release),
		filepath.Join(dir, release, "usr/lib/debug/boot", "vmlinux-"+release),
		filepath.Join(dir, "usr/lib/debug/boot", "vmlinux-"+release),
	} {
		if regular(p) {
			return p
		}
	}
	return ""
}

// modules indexes the module debug files of a release once (a walk of its tree).
func (d *Dir) modules(release string) map[string]string {
	d.mu.Lock()
	defer d.mu.Unlock()
	if m, ok := d.mods[release]; ok {
		return m
	}
	m := map[string]string{}
	for _, root := range []string{
		filepath.Join(d.Root, release),
		filepath.Join(d.Root, "usr/lib/debug/lib/modules", release),
	} {
		indexModules(root, m)
	}
	if d.mods == nil {
		d.mods = map[string]map[string]string{}
	}
	d.mods[release] = m
	return m
}

// indexModules adds the module files under root to m (first found wins).
func indexModules(root string, m map[string]string) {
	filepath.WalkDir(root, func(p string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return nil
		}
		if k := moduleFileKey(e.Name()); k != "" {
			if _, dup := m[k]; !dup {
				m[k] = p
			}
		}
		return nil
	})
}

// moduleFileKey returns the module key of a module debug file name, or "".
func moduleFileKey(name string) string {
	for _, ext := range []string{".ko", ".ko.debug", ".ko.dbg"} {
		if strings.HasSuffix(name, ext) {
			return ModKey(strings.TrimSuffix(name, ext))
		}
	}
	return ""
}
