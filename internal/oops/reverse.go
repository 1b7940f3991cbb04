package oops

import "strings"

// Logs read newest first (`journalctl -r`, some web log viewers) print a report upside
// down: the end marker, then the call trace, then the header. They are detected from
// console timestamps that mostly decrease, or, without timestamps, from the report's own
// order (an end marker above its call trace above its header), and put back in printing
// order.

// newestFirst reports whether lines run newest first.
func newestFirst(lines []rline) bool {
	up, down := 0, 0
	prev, have := 0.0, false
	for i := range lines {
		if _, _, n := contextSpan([]byte(lines[i].text), 0); n == 0 {
			continue
		}
		v, ok := tsValue([]byte(lines[i].text))
		if !ok {
			continue
		}
		if have && v > prev {
			up++
		} else if have && v < prev {
			down++
		}
		prev, have = v, true
	}
	if up+down >= 4 {
		return down > 2*up
	}
	// No timestamps to go by: the report's parts in reverse order.
	end, trace, header := -1, -1, -1
	for i := range lines {
		t := strings.TrimSpace(lines[i].body())
		switch {
		case end < 0 && strings.HasPrefix(t, "---[ end trace"):
			end = i
		case trace < 0 && (t == "Call Trace:" || t == "Call trace:"):
			trace = i
		case header < 0 && trace >= 0 && claim([]byte(t)) != nil:
			header = i
		}
	}
	if trace < 0 || header < trace {
		return false
	}
	if end >= 0 && end < trace {
		return true
	}
	// The frames above "Call Trace:", none below it.
	isFrame := func(i int) bool {
		return i >= 0 && i < len(lines) && frameName([]byte(strings.TrimPrefix(strings.TrimSpace(lines[i].body()), "? "))) != nil
	}
	return isFrame(trace-1) && isFrame(trace-2) && !isFrame(trace+1)
}

// reverseLines puts lines in the opposite order, marking each as repaired.
func reverseLines(lines []rline) {
	for i, j := 0, len(lines)-1; i < j; i, j = i+1, j-1 {
		lines[i], lines[j] = lines[j], lines[i]
	}
	for i := range lines {
		lines[i].events = append(lines[i].events, repReversed)
	}
}
