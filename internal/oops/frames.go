package oops

import (
	"regexp"
	"strings"
)

var (
	// armFromLine is 32-bit arm's unwinder line, "[<pc>] (func) from [<lr>] (caller+off/size)"
	// (older kernels print "(func+off/size)" first, with " [module]" for a module's): the
	// frame is func.
	armFromLine = regexp.MustCompile(`^\[<([0-9a-f]+)>\] \(([A-Za-z0-9_.$]+)(?:\+0x[0-9a-f]+/0x[0-9a-f]+)?(?: \[([A-Za-z0-9_-]+)\])?\) from \[<[0-9a-f]+>\]`)
	// multiFrame finds the frames of a line holding several, as i386 printed them before
	// 2.6.18 ("<c020bb5d> block_uevent+0x10d/0x210   <c020ba50> block_uevent+0x0/0x210").
	multiFrame = regexp.MustCompile(`(?:\[<[0-9a-f]{8,16}>\]|<[0-9a-f]{8,16}>) (?:\? )?[A-Za-z_]`)
)

// appendTraceLineFrames appends the frames one call-trace line holds to dst; ok is
// false when the line is not a frame line. The common one-frame line allocates nothing.
func appendTraceLineFrames(dst []Frame, t string) ([]Frame, bool) {
	if strings.HasPrefix(t, "[<") && strings.Contains(t, ") from [<") {
		if m := armFromLine.FindStringSubmatch(t); m != nil {
			addr, _ := parseHex(m[1])
			return append(dst, Frame{Func: m[2], Module: m[3], Addr: addr, Raw: t, Reliable: true}), true
		}
	}
	if strings.Count(t, "> ") > 1 {
		if idx := multiFrame.FindAllStringIndex(t, -1); len(idx) > 1 {
			n := len(dst)
			for k, loc := range idx {
				end := len(t)
				if k+1 < len(idx) {
					end = idx[k+1][0]
				}
				f, ok := parseFrame(t[loc[0]:end])
				if !ok {
					return dst[:n], false
				}
				dst = append(dst, f)
			}
			return dst, true
		}
	}
	f, ok := parseFrame(t)
	if !ok {
		return dst, false
	}
	return append(dst, f), true
}

// armTraceNoise is what 32-bit arm prints between its frames: the saved registers of
// each frame (" r10:b419dd18 r9:802c509c …"), the exception stack and its hex dump.
var armTraceNoise = regexp.MustCompile(`^(?:r[0-9]{1,2} ?:[0-9a-f]{8}\b|Exception stack\(|[0-9a-f]{4}: (?:[0-9a-f]{8}| ))`)

// traceNoise reports lines inside a call trace that are neither frames nor its end: arm's
// per-frame registers and a few hex digits left by a console overwrite.
func traceNoise(t string) bool {
	if len(t) <= 4 && isHex(t) {
		return true // a console overwrite's leftover ("30")
	}
	return armTraceNoise.MatchString(t)
}
