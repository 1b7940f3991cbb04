// Package symbols finds kernel debug info by itself: a vmlinux or a module's debug
// file for a kernel release, a GNU build ID, or both, from a list of sources tried in
// order (a local directory tree, debuginfod servers, distribution debug packages).
//
// Each source answers with the path of a local file: remote sources download into a
// cache first, to a temporary name, and rename only a file whose build ID was
// verified, so a partial or wrong download is never returned or left behind.
package symbols

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
)

// Query says which debug file is wanted. At least one of Release and BuildID is set.
type Query struct {
	Release string // kernel release (uname -r), "" when unknown
	BuildID string // hex GNU build ID, "" when unknown
	Module  string // module name ("" for the kernel image itself)
}

func (q Query) String() string {
	what := "vmlinux"
	if q.Module != "" {
		what = "module " + q.Module
	}
	var by []string
	if q.Release != "" {
		by = append(by, "release "+q.Release)
	}
	if q.BuildID != "" {
		by = append(by, "build ID "+q.BuildID)
	}
	return what + " (" + strings.Join(by, ", ") + ")"
}

// ErrNotFound is returned (wrapped) by a source that does not have the file.
var ErrNotFound = errors.New("not found")

// Source is one place debug files come from.
type Source interface {
	// Name says what the source is, for messages ("debuginfod https://…").
	Name() string
	// Find returns the path of a local file matching q, or an error wrapping
	// ErrNotFound when the source does not have it. It may download (and block for
	// as long as that takes, bounded by ctx).
	Find(ctx context.Context, q Query) (string, error)
}

// Attempt is one source's answer to a query that no source could satisfy.
type Attempt struct {
	Source string `json:"source"`
	Err    string `json:"error"`
}

// NotFoundError says which sources were tried for a query and what each answered.
type NotFoundError struct {
	Query Query
	Tried []Attempt
}

func (e *NotFoundError) Error() string {
	if len(e.Tried) == 0 {
		return fmt.Sprintf("%s: no symbol sources configured", e.Query)
	}
	var parts []string
	for _, a := range e.Tried {
		parts = append(parts, a.Source+": "+a.Err)
	}
	return fmt.Sprintf("%s not found; tried %s", e.Query, strings.Join(parts, "; "))
}

func (e *NotFoundError) Unwrap() error { return ErrNotFound }

// Lookup tries its sources in order.
type Lookup struct {
	Sources []Source
}

// Find asks each source in turn and returns the first file found. When none has it
// the error is a *NotFoundError listing every source's answer.
func (l *Lookup) Find(ctx context.Context, q Query) (string, error) {
	if q.Release == "" && q.BuildID == "" {
		return "", &NotFoundError{Query: q, Tried: []Attempt{{Source: "query", Err: "neither a release nor a build ID is known"}}}
	}
	nf := &NotFoundError{Query: q}
	if l == nil {
		return "", nf
	}
	for _, s := range l.Sources {
		p, err := s.Find(ctx, q)
		if err == nil {
			return p, nil
		}
		if ctx.Err() != nil {
			return "", ctx.Err()
		}
		nf.Tried = append(nf.Tried, Attempt{Source: s.Name(), Err: err.Error()})
	}
	return "", nf
}

// Names lists the sources, for messages.
func (l *Lookup) Names() []string {
	if l == nil {
		return nil
	}
	var out []string
	for _, s := range l.Sources {
		out = append(out, s.Name())
	}
	return out
}

var (
	releaseRE = regexp.MustCompile(`^[0-9][A-Za-z0-9.+~_-]{0,99}$`)
	buildIDRE = regexp.MustCompile(`^[0-9a-f]{2,128}$`)
	moduleRE  = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)
)

// validRelease says a release string is safe to use in file names and package names.
func validRelease(r string) bool { return releaseRE.MatchString(r) && !strings.Contains(r, "..") }

// validBuildID says a build ID is lower-case hex of a sane length.
func validBuildID(id string) bool { return buildIDRE.MatchString(id) && len(id)%2 == 0 }

func validModule(m string) bool { return m == "" || moduleRE.MatchString(m) }

// check refuses a query whose fields would be unsafe in a path, a URL or a command.
func (q Query) check() error {
	if q.Release != "" && !validRelease(q.Release) {
		return fmt.Errorf("release %q is not a kernel release", q.Release)
	}
	if q.BuildID != "" && !validBuildID(q.BuildID) {
		return fmt.Errorf("build ID %q is not lower-case hex", q.BuildID)
	}
	if !validModule(q.Module) {
		return fmt.Errorf("module name %q is not a module name", q.Module)
	}
	return nil
}

// ModKey is a module's name as the kernel compares it ('-' and '_' are the same).
func ModKey(name string) string { return strings.ReplaceAll(name, "-", "_") }
