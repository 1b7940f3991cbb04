package agent

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"sort"
	"strings"
)

//go:embed *.go
var sources embed.FS

// SourceHash identifies this package's code (a hash of its Go files): the lab's
// pstore scenario, which runs the agent inside a guest, is cached by it, so a change
// to the agent re-runs the scenario while other changes to kcrash do not.
var SourceHash = func() string {
	names, _ := fs.Glob(sources, "*.go")
	sort.Strings(names)
	h := sha256.New()
	for _, n := range names {
		if strings.HasSuffix(n, "_test.go") {
			continue
		}
		data, _ := sources.ReadFile(n)
		h.Write([]byte(n))
		h.Write([]byte{0})
		h.Write(data)
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}()
