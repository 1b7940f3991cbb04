package symbols

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// Cache holds downloaded debug files by build ID in elfutils' debuginfod client
// layout (DIR/BUILDID/debuginfo), so a cache shared through DEBUGINFOD_CACHE_PATH
// works with gdb and friends too. Its total size is kept under Max by evicting the
// least recently used files (a hit refreshes the file's modification time).
type Cache struct {
	Dir string
	Max int64 // bytes; <= 0 means DefaultCacheMax
}

// DefaultCacheMax is the cache's size cap when none is given: room for a few
// distribution vmlinux files (each 0.5–1 GB) and their modules.
const DefaultCacheMax = 8 << 30

// tmpPrefix names files being written; they are never returned and are removed when
// a writer fails (or by Clean when a writer was killed).
const tmpPrefix = ".tmp-"

// ErrTooLarge is returned for a file larger than the cache may hold.
var ErrTooLarge = errors.New("larger than the cache cap")

func (c *Cache) max() int64 {
	if c.Max <= 0 {
		return DefaultCacheMax
	}
	return c.Max
}

// Path is where a build ID's file lives in the cache.
func (c *Cache) Path(id string) string { return filepath.Join(c.Dir, id, "debuginfo") }

// Get returns the cached file for a build ID and marks it recently used.
func (c *Cache) Get(id string) (string, bool) {
	if !validBuildID(id) {
		return "", false
	}
	p := c.Path(id)
	if !regular(p) {
		return "", false
	}
	now := time.Now()
	os.Chtimes(p, now, now)
	return p, true
}

// Put streams r into the cache as build ID id's file. size is the announced length
// (-1 when unknown): a file over the cap is refused before or while reading, and a
// short read (fewer bytes than announced) fails. The file is written under a temporary
// name, its ELF build ID checked against id, and only then renamed into place; on
// any failure nothing is left behind. progress (may be nil) is called as bytes
// arrive.
func (c *Cache) Put(id string, r io.Reader, size int64, progress func(done int64)) (string, error) {
	if !validBuildID(id) {
		return "", fmt.Errorf("build ID %q is not lower-case hex", id)
	}
	max := c.max()
	if size > max {
		return "", fmt.Errorf("%d bytes: %w (%d bytes)", size, ErrTooLarge, max)
	}
	if err := os.MkdirAll(c.Dir, 0o755); err != nil {
		return "", err
	}
	tmp, err := os.CreateTemp(c.Dir, tmpPrefix+id+"-")
	if err != nil {
		return "", err
	}
	ok := false
	defer func() {
		if !ok {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	w := io.Writer(tmp)
	if progress != nil {
		w = &progressWriter{w: tmp, f: progress}
	}
	n, err := io.Copy(w, io.LimitReader(r, max+1))
	if err != nil {
		return "", fmt.Errorf("download: %w", err)
	}
	if n > max {
		return "", fmt.Errorf("more than %d bytes: %w", max, ErrTooLarge)
	}
	if size >= 0 && n != size {
		return "", fmt.Errorf("truncated: %d of %d bytes", n, size)
	}
	got, err := ReadBuildID(tmp, n)
	if err != nil {
		return "", fmt.Errorf("not an ELF file with a build ID: %v", err)
	}
	if got != id {
		return "", fmt.Errorf("build ID mismatch: the file has %s, %s was asked for", got, id)
	}
	if err := tmp.Sync(); err != nil {
		return "", err
	}
	if err := tmp.Close(); err != nil {
		return "", err
	}
	dst := c.Path(id)
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return "", err
	}
	if err := os.Rename(tmp.Name(), dst); err != nil {
		return "", err
	}
	ok = true
	c.evict(max, dst)
	return dst, nil
}

type progressWriter struct {
	w    io.Writer
	n    int64
	f    func(int64)
	last time.Time
}

func (p *progressWriter) Write(b []byte) (int, error) {
	n, err := p.w.Write(b)
	p.n += int64(n)
	if now := time.Now(); now.Sub(p.last) > 200*time.Millisecond {
		p.last = now
		p.f(p.n)
	}
	return n, err
}

type cached struct {
	path  string
	size  int64
	mtime time.Time
}

// Entries lists the cached files, least recently used first.
func (c *Cache) entries() []cached {
	dirs, _ := os.ReadDir(c.Dir)
	var out []cached
	for _, d := range dirs {
		if !d.IsDir() || !validBuildID(d.Name()) {
			continue
		}
		p := filepath.Join(c.Dir, d.Name(), "debuginfo")
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() {
			out = append(out, cached{p, fi.Size(), fi.ModTime()})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].mtime.Before(out[j].mtime) })
	return out
}

// Size returns the bytes the cached files take.
func (c *Cache) Size() int64 {
	var n int64
	for _, e := range c.entries() {
		n += e.size
	}
	return n
}

// evict removes least recently used files until the cache fits max, keeping keep.
func (c *Cache) evict(max int64, keep string) {
	es := c.entries()
	var total int64
	for _, e := range es {
		total += e.size
	}
	for _, e := range es {
		if total <= max {
			break
		}
		if e.path == keep {
			continue
		}
		if os.Remove(e.path) == nil {
			os.Remove(filepath.Dir(e.path))
			total -= e.size
		}
	}
}

// Clean removes temporary files older than age left by writers that were killed.
func (c *Cache) Clean(age time.Duration) {
	dirs, _ := os.ReadDir(c.Dir)
	for _, d := range dirs {
		if !strings.HasPrefix(d.Name(), tmpPrefix) {
			continue
		}
		if fi, err := d.Info(); err == nil && time.Since(fi.ModTime()) > age {
			os.RemoveAll(filepath.Join(c.Dir, d.Name()))
		}
	}
}
