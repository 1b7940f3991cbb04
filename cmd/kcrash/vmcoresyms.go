package main

import (
	"context"
	"debug/elf"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/kcrash/kcrash/internal/crashcmd"

	"github.com/kcrash/kcrash/internal/dump"
	"github.com/kcrash/kcrash/internal/kernel"
	"github.com/kcrash/kcrash/internal/symbols"
)

// vmcoreArgs resolves `[VMLINUX] VMCORE [COMMAND…]`: when the first argument is a
// vmlinux (an ELF executable) the second is the dump; otherwise the first is the dump
// and the vmlinux is looked up by the build ID and release its VMCOREINFO carries.
func vmcoreArgs(ctx context.Context, args []string, l *symbols.Lookup) (vmlinux, vmcore string, rest []string, err error) {
	if len(args) == 0 {
		return "", "", nil, errUsage
	}
	if isExecutable(args[0]) {
		if len(args) < 2 {
			return "", "", nil, errUsage
		}
		return args[0], args[1], args[2:], nil
	}
	vmcore, rest = args[0], args[1:]
	q, err := dumpQuery(vmcore)
	if err != nil {
		return "", "", nil, err
	}
	vmlinux, err = l.Find(ctx, q)
	if err != nil {
		return "", "", nil, fmt.Errorf("%s: no vmlinux given, and %w", vmcore, err)
	}
	return vmlinux, vmcore, rest, nil
}

// isExecutable says the file is an ELF executable (a vmlinux, not an ELF core dump);
// arm64's vmlinux is position-independent (ET_DYN).
func isExecutable(path string) bool {
	f, err := elf.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	return f.Type == elf.ET_EXEC || f.Type == elf.ET_DYN
}

// dumpQuery reads the build ID and release of the dump's kernel from VMCOREINFO.
func dumpQuery(path string) (symbols.Query, error) {
	d, err := dump.Open(path)
	if err != nil {
		return symbols.Query{}, err
	}
	defer d.Close()
	info := kernel.ParseVMCOREINFO(d.VMCOREINFO())
	q := symbols.Query{BuildID: info["BUILD-ID"], Release: info["OSRELEASE"]}
	if q.BuildID == "" && q.Release == "" {
		return q, fmt.Errorf("%s: no vmlinux given, and the dump's VMCOREINFO has neither BUILD-ID nor OSRELEASE", path)
	}
	return q, nil
}

// vmcoreRunner returns web.Options.Vmcore: crash commands about an uploaded dump,
// with the vmlinux found by the dump's build ID and release.
func vmcoreRunner(l *symbols.Lookup) func(ctx context.Context, dump string, cmds []string) (string, error) {
	return func(ctx context.Context, dump string, cmds []string) (string, error) {
		q, err := dumpQuery(dump)
		if err != nil {
			return "", err
		}
		vmlinux, err := l.Find(ctx, q)
		if err != nil {
			return "", err
		}
		cacheDir := ""
		if d, err := os.UserCacheDir(); err == nil {
			cacheDir = filepath.Join(d, "kcrash", "vmlinux")
		}
		k, err := kernel.OpenWith(vmlinux, dump, kernel.Options{CacheDir: cacheDir})
		if err != nil {
			return "", err
		}
		defer k.Close()
		s := &crashcmd.Session{K: k, VmlinuxPath: vmlinux, DumpPath: dump}
		defer s.Close()
		var b strings.Builder
		for _, c := range cmds {
			if ctx.Err() != nil {
				return b.String(), ctx.Err()
			}
			fmt.Fprintf(&b, "crash> %s\n", c)
			if err := s.Run(&b, c); err != nil {
				fmt.Fprintf(&b, "%s: %v\n", c, err)
			}
		}
		return b.String(), nil
	}
}
