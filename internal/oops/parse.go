package oops

// Parse finds every report in log. (placeholder while the recognisers land)
func Parse(log []byte) []*Report { return nil }

// RegisterOrder gives the printing order of a register name.
func RegisterOrder(name string) int { return 0 }
