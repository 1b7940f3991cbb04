package collector

import (
	"os"
	"path/filepath"
	"strings"
)

// logChunk is console text of one host waiting to be written.
type logChunk struct {
	host string
	data []byte
}

// logWriter appends to per-host raw logs, rotating each at max bytes (the previous
// file becomes HOST.log.1), so a host costs at most 2×max of disk.
type logWriter struct {
	dir   string
	max   int64
	sizes map[string]int64
}

func newLogWriter(dir string, max int64) *logWriter {
	return &logWriter{dir: dir, max: max, sizes: map[string]int64{}}
}

// LogName is the raw log file name of a host id: safe for any id ("10.0.0.1:6665"
// becomes "10.0.0.1_6665.log").
func LogName(id string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '.', r == '-':
			return r
		}
		return '_'
	}, id) + ".log"
}

func (w *logWriter) write(chunks []logChunk) error {
	if len(chunks) == 0 {
		return nil
	}
	if err := os.MkdirAll(w.dir, 0o755); err != nil {
		return err
	}
	var first error
	for _, ch := range chunks {
		path := filepath.Join(w.dir, LogName(ch.host))
		size, ok := w.sizes[ch.host]
		if !ok {
			if fi, err := os.Stat(path); err == nil {
				size = fi.Size()
			}
		}
		if size+int64(len(ch.data)) > w.max && size > 0 {
			if err := os.Rename(path, path+".1"); err != nil && first == nil {
				first = err
			}
			size = 0
		}
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
		if err != nil {
			if first == nil {
				first = err
			}
			continue
		}
		n, err := f.Write(ch.data)
		f.Close()
		if err != nil && first == nil {
			first = err
		}
		w.sizes[ch.host] = size + int64(n)
	}
	return first
}
