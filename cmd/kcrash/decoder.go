package main

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync"

	"github.com/kcrash/kcrash/internal/decode"
	"github.com/kcrash/kcrash/internal/oops"
	"github.com/kcrash/kcrash/internal/symbols"
	"github.com/kcrash/kcrash/internal/web"
)

// reportDecoder returns the decoder the dashboard's report pages use: kcrash decode,
// with one warm Decoder kept per vmlinux (web.FindVmlinux picks it from --symbols by
// the report's release). Modules are searched under the vmlinux's directory, so a
// symbols tree laid out as <release>/vmlinux plus <release>/…/*.ko serves both.
// Modules not there are asked of the symbol sources (by release and build ID).
func reportDecoder(l *symbols.Lookup) web.Decoder {
	return &cachedDecoder{byPath: map[string]*decode.Decoder{}, lookup: l}
}

// findVmlinux returns web.Options.FindVmlinux: the symbol sources asked by release.
// A download (a -dbg package, a GiB vmlinux from debuginfod) outlives the page's
// deadline: it goes on in the background and a later view of the page finds it.
func findVmlinux(l *symbols.Lookup) func(ctx context.Context, release string) (string, error) {
	return func(ctx context.Context, release string) (string, error) {
		type found struct {
			path string
			err  error
		}
		ch := make(chan found, 1)
		go func() {
			p, err := l.Find(context.Background(), symbols.Query{Release: release})
			ch <- found{p, err}
		}()
		select {
		case f := <-ch:
			return f.path, f.err
		case <-ctx.Done():
			return "", fmt.Errorf("the symbols of %s are still being fetched; reload the page later", release)
		}
	}
}

type cachedDecoder struct {
	mu     sync.Mutex
	byPath map[string]*decode.Decoder
	lookup *symbols.Lookup
}

// maxDecoders bounds the vmlinux files kept open (each maps its debug info).
const maxDecoders = 8

func (c *cachedDecoder) Decode(ctx context.Context, r *oops.Report, vmlinux string) (string, error) {
	c.mu.Lock()
	d, ok := c.byPath[vmlinux]
	if !ok {
		if len(c.byPath) >= maxDecoders {
			for p, old := range c.byPath {
				old.Close()
				delete(c.byPath, p)
				break
			}
		}
		var err error
		d, err = decode.New(decode.Options{Vmlinux: vmlinux, ModulesDir: filepath.Dir(vmlinux),
			FindModule: findModule(context.Background(), c.lookup, r.Release)})
		if err != nil {
			c.mu.Unlock()
			return "", err
		}
		c.byPath[vmlinux] = d
	}
	c.mu.Unlock()
	var b strings.Builder
	printDecoded(&b, d.Decode(r), "")
	return b.String(), nil
}
