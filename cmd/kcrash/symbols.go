package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"

	"github.com/kcrash/kcrash/internal/symbols"
)

// symbolFlags are the flags of the commands that find symbols by themselves
// (decode, vmcore, serve): where to look, in the order tried.
type symbolFlags struct {
	dir        *string
	debuginfod *string
	dbg        *bool
	debDir     *string
	cacheMax   *int64
}

// addSymbolFlags adds the flags; dbgDefault is --dbg-packages's default (which
// $KCRASH_DBG_PACKAGES=0 turns off, as the tests do: a package is 300 MB or more).
func addSymbolFlags(fs *flag.FlagSet, dirUsage string, dbgDefault bool) *symbolFlags {
	if os.Getenv("KCRASH_DBG_PACKAGES") == "0" {
		dbgDefault = false
	}
	return &symbolFlags{
		dir:        fs.String("symbols", "", dirUsage),
		debuginfod: fs.String("debuginfod", "", "debuginfod server `URLs` (space-separated), tried before those in $DEBUGINFOD_URLS"),
		dbg:        fs.Bool("dbg-packages", dbgDefault, "fetch Debian's linux-image-RELEASE-dbg package for a report's release (apt-get download, on Debian)"),
		debDir:     fs.String("deb-dir", "", "`directory` holding linux-image-RELEASE-dbg_*.deb files, used before downloading"),
		cacheMax:   fs.Int64("symbols-cache-max", symbols.DefaultCacheMax, "size cap in `bytes` of the debuginfod download cache ($DEBUGINFOD_CACHE_PATH or ~/.cache/kcrash/debuginfod)"),
	}
}

// lookup builds the sources: the local tree, debuginfod, then the -dbg packages.
// Progress goes to stderr when it is a terminal.
func (f *symbolFlags) lookup(env *cmdEnv) *symbols.Lookup {
	l := &symbols.Lookup{}
	if *f.dir != "" {
		l.Sources = append(l.Sources, symbols.NewDir(*f.dir))
	}
	urls := append(strings.Fields(*f.debuginfod), symbols.URLsFromEnv()...)
	tty := isTerminal(env.stderr)
	if len(urls) > 0 {
		cache := &symbols.Cache{Dir: symbols.DefaultCacheDir(), Max: *f.cacheMax}
		cache.Clean(24 * time.Hour)
		d := &symbols.Debuginfod{URLs: urls, Cache: cache}
		if tty {
			d.Progress = termProgress(env.stderr)
		}
		l.Sources = append(l.Sources, d)
	}
	if *f.dbg || *f.debDir != "" {
		if _, err := exec.LookPath("dpkg-deb"); err == nil {
			d := &symbols.Debian{Dir: symbols.DefaultDebianDir(), DebDir: *f.debDir}
			// Temporary downloads and unpacks of a killed process.
			(&symbols.Cache{Dir: d.Dir}).Clean(24 * time.Hour)
			if tty {
				d.Progress = func(msg string) { fmt.Fprintf(env.stderr, "kcrash: %s\033[K\n", msg) }
			}
			l.Sources = append(l.Sources, d)
		}
	}
	return l
}

// termProgress prints a download's progress on one terminal line.
func termProgress(w io.Writer) func(url string, done, total int64) {
	var mu sync.Mutex
	return func(url string, done, total int64) {
		mu.Lock()
		defer mu.Unlock()
		if total > 0 {
			fmt.Fprintf(w, "kcrash: fetching %s: %d/%d MB (%d%%)\033[K\r", url, done>>20, total>>20, done*100/total)
			if done >= total {
				fmt.Fprintf(w, "\033[K")
			}
			return
		}
		fmt.Fprintf(w, "kcrash: fetching %s: %d MB\033[K\r", url, done>>20)
	}
}

// findModule returns a decode.Options.FindModule asking l for a release's modules.
func findModule(ctx context.Context, l *symbols.Lookup, release string) func(name, buildID string) (string, error) {
	if l == nil || len(l.Sources) == 0 {
		return nil
	}
	return func(name, buildID string) (string, error) {
		if release == "" && buildID == "" {
			return "", fmt.Errorf("module %s: neither a release nor a build ID to look it up by", name)
		}
		return l.Find(ctx, symbols.Query{Release: release, BuildID: buildID, Module: name})
	}
}
