package collector

import (
	"bufio"
	"fmt"
	"io"
	"time"

	"github.com/kcrash/kcrash/internal/netconsole"
)

// looksExtended says whether a log line is an extended netconsole record.
func looksExtended(line []byte) bool {
	_, err := netconsole.ParseExtended(line[:len(line)-1])
	return err == nil
}

// Ingest feeds a console log (plain text, dmesg, or extended netconsole records one
// per line) to the pipeline as the host name, then completes the host's capture.
// The reports reach the store through the same queue as netconsole's; end Run to
// wait for them. Lines longer than 64 KiB are cut.
func (c *Collector) Ingest(name string, r io.Reader) error {
	sh := c.shards[0]
	sh.mu.Lock()
	h := sh.named[name]
	if h == nil {
		if h = c.newHost(sh, name); h == nil {
			sh.mu.Unlock()
			return fmt.Errorf("ingest %s: too many hosts", name)
		}
		sh.named[name] = h
	}
	sh.mu.Unlock()
	br := bufio.NewReaderSize(r, 64<<10)
	for {
		line, err := br.ReadSlice('\n')
		if len(line) > 0 {
			now := time.Now()
			sh.mu.Lock()
			c.Stats.Bytes.Add(uint64(len(line)))
			if line[len(line)-1] == '\n' && looksExtended(line) {
				line = line[:len(line)-1] // one record, as one datagram
			}
			c.push(h, line, now, false)
			c.countLines(sh)
			sh.mu.Unlock()
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("ingest %s: %w", name, err)
		}
	}
	sh.mu.Lock()
	h.stream.Flush(func(line []byte, ev netconsole.Event) { c.line(h, line, ev, time.Now(), false) })
	c.finish(h)
	c.countLines(sh)
	sh.mu.Unlock()
	return nil
}
