// Package e2e holds end-to-end tests that run the kcrash binary on what the crash
// lab captured from real kernel crashes. They need the lab's matrix:
//
//	go run ./cmd/kcrash lab run     # or bash test.sh, which does it first
//
// Without it they skip, except under CI=true, where they fail.
package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/kcrash/kcrash/internal/lab"
)

// kcrashBin is the kcrash binary TestMain builds, run as a user would.
var kcrashBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "kcrash-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	kcrashBin = filepath.Join(dir, "kcrash")
	_, here, _, _ := runtime.Caller(0)
	build := exec.Command("go", "build", "-o", kcrashBin, "./cmd/kcrash")
	build.Dir = filepath.Join(filepath.Dir(here), "..")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "go build ./cmd/kcrash: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// needLab skips (or under CI=true fails) with how to build the lab.
func needLab(t *testing.T, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...) + "; build the crash lab with: go run ./cmd/kcrash lab run (or bash test.sh)"
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

// MatrixKernels are the kernels whose crash matrix the e2e tests read: the default
// cloud ABI and the newest 6.12 cloud ABI (test.sh runs both matrices).
var MatrixKernels = []string{"default", "6.12"}

// manifests loads the matrix manifest of every kernel of MatrixKernels.
func manifests(t *testing.T) []*lab.Manifest {
	t.Helper()
	var out []*lab.Manifest
	for _, spec := range MatrixKernels {
		abi, err := lab.ResolveKernel(context.Background(), spec)
		if err != nil {
			needLab(t, "%v", err)
		}
		out = append(out, loadManifest(t, filepath.Join(lab.DefaultDir(), abi, "matrix", lab.ManifestName)))
	}
	return out
}

// manifest loads the current lab manifest, checking it is complete and current.
func manifest(t *testing.T) *lab.Manifest {
	t.Helper()
	path, err := lab.FindManifest(lab.DefaultDir())
	if err != nil {
		needLab(t, "%v", err)
	}
	if os.Getenv("KCRASH_LAB_MANIFEST") == "" {
		// The default kernel's matrix, whichever ran last.
		if abi, err := lab.ResolveABI(context.Background()); err == nil {
			path = filepath.Join(lab.DefaultDir(), abi, "matrix", lab.ManifestName)
		}
	}
	return loadManifest(t, path)
}

func loadManifest(t *testing.T, path string) *lab.Manifest {
	t.Helper()
	m, err := lab.LoadManifest(path)
	if err != nil {
		needLab(t, "%v", err)
	}
	if want := lab.RecipeHash("128M"); m.RecipeHash != want && os.Getenv("KCRASH_LAB_MANIFEST") == "" {
		needLab(t, "%s is stale (recipe %s, this lab's is %s)", path, m.RecipeHash, want)
	}
	if !m.Complete {
		needLab(t, "%s is incomplete", path)
	}
	return m
}

// report is the part of kcrash parse --json's report object these tests read.
type report struct {
	Title     string `json:"title"`
	Kind      string `json:"kind"`
	Signature string `json:"signature"`
	Corrupted bool   `json:"corrupted"`
	IP        *struct {
		Func   string `json:"func"`
		Module string `json:"module"`
		Raw    string `json:"raw"`
	} `json:"ip"`
	Panicked     bool   `json:"panicked"`
	PanicMessage string `json:"panic_message"`
}

// parse runs `kcrash parse --json FILE` and decodes its answer.
func parse(t *testing.T, file string) []report {
	t.Helper()
	cmd := exec.Command(kcrashBin, "parse", "--json", file)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("kcrash parse --json %s: %v\n%s", file, err, stderr.Bytes())
	}
	var res struct {
		Reports []report `json:"reports"`
	}
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("kcrash parse --json %s: %v\n%.500s", file, err, out)
	}
	return res.Reports
}

// find returns the first report of the expected kind (and RIP function, when the
// lab found one on the console), or nil.
func find(reports []report, f lab.Facts) *report {
	for i := range reports {
		r := &reports[i]
		if r.Kind != f.Kind {
			continue
		}
		if f.RIPFunc != "" && (r.IP == nil || r.IP.Func != f.RIPFunc) {
			continue
		}
		return r
	}
	return nil
}

func summary(reports []report) string {
	var b strings.Builder
	for _, r := range reports {
		ip := "<nil>"
		if r.IP != nil {
			ip = r.IP.Func
		}
		fmt.Fprintf(&b, "\n  kind=%s ip=%s title=%q signature=%s corrupted=%v", r.Kind, ip, r.Title, r.Signature, r.Corrupted)
	}
	if b.Len() == 0 {
		return " (no reports)"
	}
	return b.String()
}

// TestParseMatrix: kcrash parse finds the expected report, with the expected kind
// and RIP function, in every capture (serial, plain and extended netconsole) of
// every crash of the matrix; the plain and extended streams of one crash give
// reports with the same signature.
func TestParseMatrix(t *testing.T) {
	for _, m := range manifests(t) {
		t.Run(m.Kernel.Release, func(t *testing.T) { parseMatrix(t, m) })
	}
}

func parseMatrix(t *testing.T, m *lab.Manifest) {
	for _, e := range m.Entries {
		t.Run(e.Name, func(t *testing.T) {
			found := map[string]*report{}
			for _, kind := range append(lab.Captures, lab.ArtVmcoreDmesg) {
				a := e.Artifact(kind, "")
				if a == nil {
					if kind == lab.ArtVmcoreDmesg {
						if e.Artifact(lab.ArtVmcore, "kdump-lzo") != nil {
							t.Errorf("%s: a kdump-lzo dump without its vmcore-dmesg", e.Name)
						}
						continue
					}
					if kind == lab.ArtSerial || e.Trigger.Netconsole != "none" {
						t.Errorf("%s: no %s capture in the manifest", e.Name, kind)
					}
					continue
				}
				path := m.Path(a.Path)
				reports := parse(t, path)
				r := find(reports, e.Facts)
				if r == nil {
					t.Errorf("%s: no report of kind %q with RIP function %q; kcrash parse found:%s",
						path, e.Facts.Kind, e.Facts.RIPFunc, summary(reports))
					continue
				}
				found[kind] = r
			}
			p, x := found[lab.ArtNetconsole], found[lab.ArtNetconsoleExt]
			if p != nil && x != nil && p.Signature != x.Signature {
				t.Errorf("%s: plain netconsole signature %s (%q) != extended %s (%q)",
					e.Name, p.Signature, p.Title, x.Signature, x.Title)
			}
			if e.Trigger.Panics && e.Facts.PanicMessage != "" {
				reports := parse(t, m.Path(e.Artifact(lab.ArtSerial, "").Path))
				ok := false
				for _, r := range reports {
					ok = ok || (r.Panicked && r.PanicMessage == e.Facts.PanicMessage)
				}
				if !ok {
					t.Errorf("%s: the console says \"Kernel panic - not syncing: %s\" but no report has panicked with that message:%s",
						e.Name, e.Facts.PanicMessage, summary(reports))
				}
			}
		})
	}
}
