package oops

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
)

// SignatureVersion is the version of the grouping signature. It changes whenever the
// inputs below change, so stored groups can be recomputed.
const SignatureVersion = 1

// signature returns "v1:" and 16 hex digits of SHA-256 over:
//
//	kind | title | IP function | IP module
//
// The title is already free of addresses, offsets, line numbers, CPU numbers and PIDs
// (see cleanTitle) and names the guilty frame; the IP function (without .cold/.isra/…
// suffixes and without its offset) separates bugs whose titles name a common caller.
// Nothing here depends on timestamps, KASLR, the task or the machine, so the same bug
// on any host, boot or capture path (serial, netconsole, vmcore log) gets the same
// signature.
func signature(r *Report) string {
	ip, mod := "", ""
	if r.IP != nil {
		ip, mod = baseName(r.IP.Func), r.IP.Module
	}
	h := sha256.Sum256([]byte(strings.Join([]string{string(r.Kind), r.Title, ip, mod}, "|")))
	return "v1:" + hex.EncodeToString(h[:8])
}

// baseName strips compiler suffixes: foo.cold, foo.isra.0, foo.constprop.3.
func baseName(f string) string {
	if i := strings.IndexByte(f, '.'); i > 0 {
		return f[:i]
	}
	return f
}
