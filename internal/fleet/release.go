package fleet

import (
	"strings"
)

// CompareReleases orders kernel releases by version: runs of digits compare as
// numbers and everything else as text, so 6.1.0-9 < 6.1.0-55 < 6.1.0-56-cloud-amd64
// < 6.12.1. It returns -1, 0 or 1.
func CompareReleases(a, b string) int {
	for a != "" && b != "" {
		ca, ra := chunk(a)
		cb, rb := chunk(b)
		if c := compareChunk(ca, cb); c != 0 {
			return c
		}
		a, b = ra, rb
	}
	switch {
	case a == b:
		return 0
	case a == "":
		return -1
	}
	return 1
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func chunk(s string) (string, string) {
	d := isDigit(s[0])
	i := 1
	for i < len(s) && isDigit(s[i]) == d {
		i++
	}
	return s[:i], s[i:]
}

func compareChunk(a, b string) int {
	if isDigit(a[0]) && isDigit(b[0]) {
		a, b = strings.TrimLeft(a, "0"), strings.TrimLeft(b, "0")
		if len(a) != len(b) {
			if len(a) < len(b) {
				return -1
			}
			return 1
		}
	}
	return strings.Compare(a, b)
}

// Flavour is what follows a release's version numbers: "cloud-amd64" for
// 6.1.0-56-cloud-amd64, "" for 6.8.0. A bisection compares kernels of one flavour.
func Flavour(release string) string {
	i := 0
	for i < len(release) && (isDigit(release[i]) || release[i] == '.' || release[i] == '-' || release[i] == '+') {
		i++
	}
	return release[i:]
}
