package oops

import "bytes"

// prefilter finds the lines that may start a report without looking at every line: it
// scans the log once for an anchor bigram of each needle (a pair of adjacent bytes chosen
// to be rare in console text), verifies the needle at each hit, and returns the start
// offsets of the lines holding a needle. On crash-free console text it runs at memory
// speed rather than at regexp speed; see BenchmarkCleanConsole.
type prefilter struct {
	needles [][]byte
	// anchor[i] is the offset of needle i's anchor bigram.
	anchor []int
	// bits has bit (b0<<8|b1) set for every anchor bigram.
	bits [1 << 16 / 64]uint64
	// byBigram lists the needles anchored on each bigram.
	byBigram map[uint16][]int
}

// commonBigrams are frequent in English and kernel log text; anchors avoid them.
var commonBigrams = func() map[string]bool {
	m := map[string]bool{}
	for _, b := range []string{"th", "he", "in", "er", "an", "re", "on", "at", "en", "nd", "ti", "es",
		"or", "te", "of", "ed", "is", "it", "al", "ar", "st", "to", "nt", "ng", "se", "ha", "as", "ou",
		"io", "le", "ve", "co", "me", "de", "hi", "ri", "ro", "ic", "ne", "ea", "ra", "ce", "li", "ch",
		"ll", "be", "ma", "si", "om", "ur", "ge", "ot", "ec", "ct", "ul", "lt", "ta", "ab", "un", "ne",
		"ck", "ke", "rn", "el", "ai", "ad", "di", "vi", "id", "pr", "ag", "ic", "sh", "ol", "fo"} {
		m[b] = true
	}
	return m
}()

func byteRarity(c byte) int {
	switch {
	case c >= 'A' && c <= 'Z', c == ':', c == '[', c == ']', c == '#':
		return 1
	case c >= '0' && c <= '9':
		return 3
	case c == ' ':
		return 6
	default:
		return 4
	}
}

func newPrefilter(needles []string) *prefilter {
	p := &prefilter{byBigram: map[uint16][]int{}}
	for i, n := range needles {
		b := []byte(n)
		best, bestScore := 0, 1<<30
		for j := 0; j+1 < len(b); j++ {
			score := byteRarity(b[j]) + byteRarity(b[j+1])
			if commonBigrams[string(b[j:j+2])] {
				score += 10
			}
			if score < bestScore {
				best, bestScore = j, score
			}
		}
		p.needles = append(p.needles, b)
		p.anchor = append(p.anchor, best)
		k := uint16(b[best])<<8 | uint16(b[best+1])
		p.bits[k>>6] |= 1 << (k & 63)
		p.byBigram[k] = append(p.byBigram[k], i)
	}
	return p
}

// lines returns the start offsets of the distinct lines of data holding a needle, in
// order. Lines longer than maxLine are cut into pieces for this purpose only.
func (p *prefilter) lines(data []byte) []int {
	var out []int
	lastLine := -1
	n := len(data)
	for i := 0; i+1 < n; i++ {
		k := uint16(data[i])<<8 | uint16(data[i+1])
		if p.bits[k>>6]&(1<<(k&63)) == 0 {
			continue
		}
		for _, ni := range p.byBigram[k] {
			s := i - p.anchor[ni]
			if s < 0 || !bytes.HasPrefix(data[s:], p.needles[ni]) {
				continue
			}
			ls := bytes.LastIndexByte(data[:s], '\n') + 1
			if ls != lastLine {
				out = append(out, ls)
				lastLine = ls
			}
			// Skip to the end of this line: one hit per line is enough.
			if e := bytes.IndexByte(data[i:], '\n'); e >= 0 {
				i += e
			} else {
				i = n
			}
			break
		}
	}
	return out
}
