package collector

import (
	"container/list"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// logChunk is console text of one host waiting to be written.
type logChunk struct {
	host string
	data []byte
}

// Raw log buffers are recycled by size class: a host's next buffer is taken the
// size its last chunk needed, so a busy host appends without growing a buffer from
// nothing every few seconds, and an idle one holds none.
var (
	logClasses = [...]int{1 << 10, 4 << 10, 16 << 10, 64 << 10}
	logPools   [len(logClasses)]sync.Pool // of *[]byte
)

// getLogBuf returns an empty buffer of at least n bytes' capacity.
func getLogBuf(n int) []byte {
	for i, c := range logClasses {
		if n <= c {
			if v := logPools[i].Get(); v != nil {
				return (*v.(*[]byte))[:0]
			}
			return make([]byte, 0, c)
		}
	}
	return make([]byte, 0, n)
}

// putLogBuf recycles a buffer getLogBuf returned, once written.
func putLogBuf(b []byte) {
	for i, c := range logClasses {
		if cap(b) == c {
			b = b[:0]
			logPools[i].Put(&b)
			return
		}
	}
}

// logWriter appends to per-host raw logs, rotating each at max bytes (the previous
// file becomes HOST.log.1), so a host costs at most 2×max of disk. It keeps up to
// maxOpen files open (least recently written closed first): with thousands of hosts,
// opening every log on every flush costs more than everything else the collector does.
type logWriter struct {
	dir  string
	max  int64
	open map[string]*list.Element // host → element of lru holding *openLog
	lru  *list.List
	// After a failed write (a full disk), chunks are shed until retryAt (UnixNano;
	// read by the ticks too).
	retryAt atomic.Int64
}

// shedding says whether raw logs are being shed at now after a failed write.
func (w *logWriter) shedding(now time.Time) bool { return now.UnixNano() < w.retryAt.Load() }

// logRetry is how long raw logs are shed after a failed write before the writer
// tries the disk again.
const logRetry = time.Second

// openLog is an open raw log and its size; nothing is kept of a closed one, so the
// writer's memory is bounded by maxOpen however many hosts come and go.
type openLog struct {
	host string
	f    *os.File
	size int64
}

// maxOpen bounds the raw log files kept open: half the process's file limit (Go
// raises the soft limit to the hard one at start), between 256 and 65536.
var maxOpen = func() int {
	var r syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &r); err != nil {
		return 1024
	}
	return int(min(max(r.Cur/2, 256), 65536))
}()

func newLogWriter(dir string, max int64) *logWriter {
	return &logWriter{dir: dir, max: max, open: map[string]*list.Element{}, lru: list.New()}
}

// file returns the open log of host, opening it (and closing the least recently
// used one beyond maxOpen) when needed.
func (w *logWriter) file(host, path string) (*openLog, error) {
	if e, ok := w.open[host]; ok {
		w.lru.MoveToFront(e)
		return e.Value.(*openLog), nil
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	ol := &openLog{host, f, fi.Size()}
	w.open[host] = w.lru.PushFront(ol)
	for w.lru.Len() > maxOpen {
		old := w.lru.Remove(w.lru.Back()).(*openLog)
		old.f.Close()
		delete(w.open, old.host)
	}
	return ol, nil
}

func (w *logWriter) closeFile(host string) {
	if e, ok := w.open[host]; ok {
		e.Value.(*openLog).f.Close()
		w.lru.Remove(e)
		delete(w.open, host)
	}
}

// Close closes the open log files.
func (w *logWriter) Close() {
	for h := range w.open {
		w.closeFile(h)
	}
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

// write appends the chunks to their hosts' logs and returns the bytes it could not
// write (shed) with the first error. Raw logs are what is shed first when the disk
// is full: a failed write drops its chunk, and after one the writer sheds every
// chunk, without a system call, for logRetry, then tries again.
func (w *logWriter) write(chunks []logChunk, now time.Time) (shed int64, _ error) {
	if len(chunks) == 0 {
		return 0, nil
	}
	if w.shedding(now) {
		for _, ch := range chunks {
			shed += int64(len(ch.data))
		}
		return shed, nil
	}
	var first error
	defer func() {
		if first != nil {
			w.retryAt.Store(now.Add(logRetry).UnixNano())
		}
	}()
	if err := os.MkdirAll(w.dir, 0o755); err != nil {
		first = err
		for _, ch := range chunks {
			shed += int64(len(ch.data))
		}
		return shed, err
	}
	for i, ch := range chunks {
		if first != nil && i > 0 {
			shed += int64(len(ch.data)) // the disk failed: shed the rest of this round
			continue
		}
		path := filepath.Join(w.dir, LogName(ch.host))
		ol, err := w.file(ch.host, path)
		if err == nil && ol.size+int64(len(ch.data)) > w.max && ol.size > 0 {
			w.closeFile(ch.host)
			if err := os.Rename(path, path+".1"); err != nil && first == nil {
				first = err
			}
			ol, err = w.file(ch.host, path)
		}
		if err != nil {
			if first == nil {
				first = err
			}
			shed += int64(len(ch.data))
			continue
		}
		n, err := ol.f.Write(ch.data)
		if err != nil && first == nil {
			first = err
		}
		ol.size += int64(n)
		shed += int64(len(ch.data) - n)
	}
	return shed, first
}
