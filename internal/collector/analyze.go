package collector

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"time"

	"github.com/kcrash/kcrash/internal/oops"
	"github.com/kcrash/kcrash/internal/store"
)

// capture is one host's lines around a report, ready to parse.
type capture struct {
	id            string // set when spooled (captureID)
	host, release string
	at            time.Time
	text          []byte
}

// captureID names a spooled capture: its host, start and text.
func captureID(cp capture) string {
	h := sha256.New()
	h.Write([]byte(cp.host))
	h.Write([]byte{0})
	h.Write([]byte(cp.at.UTC().Format(time.RFC3339Nano)))
	h.Write([]byte{0})
	h.Write(cp.text)
	return hex.EncodeToString(h.Sum(nil)[:16])
}

func (c *Collector) analyzer() {
	defer close(c.queue)
	// What a previous run spooled and did not store goes first: its reports, then
	// the captures it had not analyzed.
	for _, r := range c.backlog {
		c.Stats.Queued.Add(1)
		c.queue <- r
	}
	for _, cp := range c.backlogCaptures {
		c.analyzeCapture(cp)
	}
	c.backlog, c.backlogCaptures = nil, nil
	for cp := range c.analyze {
		c.analyzeCapture(cp)
	}
}

// analyzeCapture parses a capture and queues its reports for the store, each
// spooled first when there is a spool; then a spooled capture is marked analyzed.
func (c *Collector) analyzeCapture(cp capture) {
	spooled := true
	for _, r := range oops.Parse(cp.text) {
		sr := c.storeReport(cp, r)
		if c.spool != nil {
			if err := c.spool.add(sr); err != nil {
				c.Stats.SpoolErrors.Add(1)
				spooled = false
			}
		}
		select {
		case c.queue <- sr:
			c.Stats.Queued.Add(1)
		default:
			c.Stats.QueueDrops.Add(1)
		}
	}
	if c.spool != nil && cp.id != "" && spooled {
		if err := c.spool.analyzed(cp.id); err != nil {
			c.Stats.SpoolErrors.Add(1)
		}
	}
}

// reportKey identifies a report for de-duplication: its host and its first lines as
// received (timestamps included), so a replayed or re-imported report has the same
// key while two crashes of one boot never do.
func reportKey(host string, raw []byte) string {
	h := sha256.New()
	h.Write([]byte(host))
	h.Write([]byte{0})
	n := 0
	for i := 0; i < 3; i++ {
		j := bytes.IndexByte(raw[n:], '\n')
		if j < 0 {
			n = len(raw)
			break
		}
		n += j + 1
	}
	// Line endings do not make a report another one: a serial capture's CRLF and
	// netconsole's or pstore's LF give the same key.
	h.Write(bytes.ReplaceAll(raw[:n], []byte("\r\n"), []byte("\n")))
	return hex.EncodeToString(h.Sum(nil)[:16])
}

func (c *Collector) storeReport(cp capture, r *oops.Report) *store.Report {
	start, end := max(0, min(r.Start, len(cp.text))), max(0, min(r.End, len(cp.text)))
	// Start at the beginning of the report's first line.
	if i := bytes.LastIndexByte(cp.text[:start], '\n'); i >= 0 {
		start = i + 1
	} else {
		start = 0
	}
	if end < start {
		end = start
	}
	ctxStart := max(0, start-c.o.ContextBytes)
	if i := bytes.IndexByte(cp.text[ctxStart:start], '\n'); ctxStart > 0 && i >= 0 {
		ctxStart += i + 1
	}
	release := r.Release
	if release == "" {
		release = cp.release
	}
	parsed, _ := json.Marshal(r)
	return &store.Report{
		Key:  reportKey(cp.host, cp.text[start:end]),
		Host: cp.host, Time: cp.at, Kind: string(r.Kind), Title: r.Title, Signature: r.Signature,
		Release: release, Corrupted: r.Corrupted, Panicked: r.Panicked,
		Text: string(cp.text[start:end]), Context: string(cp.text[ctxStart:start]), Parsed: parsed,
	}
}

// writer stores queued reports, retrying with backoff while the store fails, and
// marks each stored one done in the spool; when ctx ends, what is left is counted as
// lost (a spool keeps it for the next run).
func (c *Collector) writer(ctx context.Context) {
	for r := range c.queue {
		c.Stats.Queued.Add(-1)
		if c.o.Store == nil {
			continue
		}
		backoff := 50 * time.Millisecond
		for {
			sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			id, created, err := c.o.Store.SaveReport(sctx, r)
			cancel()
			if err == nil {
				if c.spool != nil && c.spool.done(r.Key) != nil {
					c.Stats.SpoolErrors.Add(1)
				}
				if created {
					r.ID = id
					// Counted once its watchers heard of it: whoever waits for the count
					// (a test, a dashboard) then finds the report everywhere it goes.
					if c.notify != nil {
						c.notify(r)
					}
					c.Stats.Reports.Add(1)
				} else {
					c.Stats.Duplicates.Add(1)
				}
				break
			}
			c.Stats.StoreErrors.Add(1)
			select {
			case <-ctx.Done():
				c.Stats.QueueDrops.Add(1)
			case <-time.After(backoff):
				c.Stats.StoreRetries.Add(1)
				backoff = min(2*backoff, 5*time.Second)
				continue
			}
			break
		}
	}
}
