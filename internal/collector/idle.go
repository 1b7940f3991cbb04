package collector

import (
	"bytes"
	"compress/flate"
	"io"
	"time"
)

// An idle host (nothing heard for idleAfter, nothing held or being captured) keeps
// its context compressed and its stream's scratch released: most of a fleet is
// quiet most of the time, and a quiet host must cost a few kilobytes, not the 8 to
// 16 KiB of its context. The first line it sends again restores the context.
const idleAfter = 30 * time.Second

// compactPerTick bounds the contexts compressed per slow tick (each costs tens of
// microseconds under its shard's lock).
const compactPerTick = 2000

// compactor compresses idle contexts; it is used by the tick only (Run's goroutine).
type compactor struct {
	buf bytes.Buffer
	w   *flate.Writer
}

// compact compresses h's context when h is idle; it returns whether it did. The
// shard lock is held.
func (c *Collector) compact(z *compactor, h *host, now time.Time) bool {
	if h.ctxZ != nil || len(h.ctx) == 0 || h.capture != nil || h.busy() || h.logged < len(h.ctx) || now.Sub(h.lastLine) < c.o.IdleAfter {
		return false
	}
	ctx := h.ctx[h.ctxFrom:]
	if len(ctx) > c.o.ContextBytes {
		ctx = ctx[cutAt(ctx, len(ctx)-c.o.ContextBytes):]
	}
	z.buf.Reset()
	if z.w == nil {
		z.w, _ = flate.NewWriter(&z.buf, flate.BestSpeed)
	} else {
		z.w.Reset(&z.buf)
	}
	z.w.Write(ctx)
	if z.w.Close() != nil {
		return false
	}
	h.ctxZ = bytes.Clone(z.buf.Bytes())
	h.ctx, h.logged, h.ctxFrom = nil, 0, 0
	h.stream.Compact()
	return true
}

// inflate restores h's compressed context. The shard lock is held.
func (h *host) inflate() {
	if h.ctxZ == nil {
		return
	}
	h.ctx = contextOf(h.ctxZ)
	h.ctxZ, h.logged, h.ctxFrom = nil, len(h.ctx), 0 // written before it was compressed
}

// contextOf decompresses a context; a corrupt one (never written by compact)
// yields what could be read.
func contextOf(z []byte) []byte {
	r := flate.NewReader(bytes.NewReader(z))
	defer r.Close()
	out, _ := io.ReadAll(r)
	return out
}
