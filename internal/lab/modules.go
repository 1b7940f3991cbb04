package lab

import (
	"bufio"
	"compress/gzip"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// module is one .ko of the kernel image: rel is its path under lib/modules/$KVER.
type module struct {
	name string
	rel  string
	path string
}

// modName normalises a module name: file name without .ko, '-' as '_' (as modprobe does).
func modName(s string) string {
	s = filepath.Base(s)
	s = strings.TrimSuffix(s, ".xz")
	s = strings.TrimSuffix(s, ".zst")
	s = strings.TrimSuffix(s, ".ko")
	return strings.ReplaceAll(s, "-", "_")
}

// moduleOrder returns the modules named (and what they depend on) in an order in
// which insmod can load them, read from modules.dep (made by depmod, "path: dep dep…")
// in moddir. Built-in modules (modules.builtin) are skipped; unknown names are an error.
func moduleOrder(moddir string, names []string) ([]module, error) {
	deps := map[string][]string{}
	rels := map[string]string{}
	f, err := os.Open(filepath.Join(moddir, "modules.dep"))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		path, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		n := modName(path)
		rels[n] = path
		for _, d := range strings.Fields(rest) {
			deps[n] = append(deps[n], modName(d))
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	builtin := map[string]bool{}
	if data, err := os.ReadFile(filepath.Join(moddir, "modules.builtin")); err == nil {
		for _, l := range strings.Fields(string(data)) {
			builtin[modName(l)] = true
		}
	}
	var order []module
	state := map[string]int{} // 1 visiting, 2 done
	var visit func(n string) error
	visit = func(n string) error {
		switch state[n] {
		case 1:
			return fmt.Errorf("module dependency cycle at %s", n)
		case 2:
			return nil
		}
		rel, ok := rels[n]
		if !ok {
			if builtin[n] {
				state[n] = 2
				return nil
			}
			return fmt.Errorf("module %s is neither in %s/modules.dep nor built in", n, moddir)
		}
		state[n] = 1
		for _, d := range deps[n] {
			if err := visit(d); err != nil {
				return err
			}
		}
		state[n] = 2
		order = append(order, module{name: n, rel: rel, path: filepath.Join(moddir, rel)})
		return nil
	}
	for _, n := range names {
		if err := visit(modName(n)); err != nil {
			return nil, err
		}
	}
	return order, nil
}

// cpioWriter writes the "newc" cpio format the kernel unpacks as initramfs
// (Documentation/driver-api/early-userspace/buffer-format.rst): a 110-byte ASCII
// header of 13 hex fields, the NUL-terminated name, data, each padded to 4 bytes.
type cpioWriter struct {
	w   io.Writer
	n   int64
	ino int
	err error
}

func (c *cpioWriter) write(p []byte) {
	if c.err != nil {
		return
	}
	var n int
	n, c.err = c.w.Write(p)
	c.n += int64(n)
}

func (c *cpioWriter) pad() {
	if r := c.n % 4; r != 0 {
		c.write(make([]byte, 4-r))
	}
}

// entry writes one member; mode includes the file type bits (0o040000 dir,
// 0o100000 file, 0o020000 char device, 0o120000 symlink).
func (c *cpioWriter) entry(name string, mode uint32, data []byte, rdevMajor, rdevMinor uint32) {
	c.ino++
	nlink := 1
	if mode&0o170000 == 0o040000 {
		nlink = 2
	}
	hdr := fmt.Sprintf("070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
		c.ino, mode, 0, 0, nlink, 0, len(data), 0, 0, rdevMajor, rdevMinor, len(name)+1, 0)
	c.write([]byte(hdr))
	c.write(append([]byte(name), 0))
	c.pad()
	c.write(data)
	c.pad()
}

// writeInitramfs writes a gzipped initramfs: busybox as /bin/busybox, init as /init,
// the modules in /lib/modules with their load order in /lib/modules/load-order.
func writeInitramfs(out, busybox string, init []byte, modules []string) error {
	bb, err := os.ReadFile(busybox)
	if err != nil {
		return fmt.Errorf("initramfs: %w (busybox-static installed?)", err)
	}
	f, err := os.Create(out + ".tmp")
	if err != nil {
		return err
	}
	defer os.Remove(out + ".tmp")
	zw, _ := gzip.NewWriterLevel(f, gzip.BestSpeed)
	c := &cpioWriter{w: zw}
	for _, d := range []string{"bin", "dev", "proc", "sys", "tmp", "lib", "lib/modules"} {
		c.entry(d, 0o040755, nil, 0, 0)
	}
	c.entry("dev/console", 0o020600, nil, 5, 1)
	c.entry("bin/busybox", 0o100755, bb, 0, 0)
	c.entry("init", 0o100755, init, 0, 0)
	var order strings.Builder
	for _, m := range modules {
		data, err := os.ReadFile(m)
		if err != nil {
			f.Close()
			return fmt.Errorf("initramfs: %w", err)
		}
		c.entry("lib/modules/"+filepath.Base(m), 0o100644, data, 0, 0)
		fmt.Fprintf(&order, "%s\n", filepath.Base(m))
	}
	c.entry("lib/modules/load-order", 0o100644, []byte(order.String()), 0, 0)
	c.entry("TRAILER!!!", 0, nil, 0, 0)
	if c.err == nil {
		c.err = zw.Close()
	}
	if err := f.Close(); c.err == nil {
		c.err = err
	}
	if c.err != nil {
		return fmt.Errorf("writing %s: %w", out, c.err)
	}
	return os.Rename(out+".tmp", out)
}
