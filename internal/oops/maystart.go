package oops

import "bytes"

// MayStart reports whether text holds one of the needles a report's first line
// must hold: when it is false, Detect(text) is false too. It is Detect's prefilter
// alone, allocates nothing and runs at memory speed, for callers that look at every
// console line (the collector) or every datagram (its overload triage).
func MayStart(text []byte) bool {
	p := needles()
	for i := 0; i+1 < len(text); i++ {
		k := uint16(text[i])<<8 | uint16(text[i+1])
		if p.bits[k>>6]&(1<<(k&63)) == 0 {
			continue
		}
		for _, ni := range p.byBigram[k] {
			if s := i - p.anchor[ni]; s >= 0 && bytes.HasPrefix(text[s:], p.needles[ni]) {
				return true
			}
		}
	}
	return false
}
