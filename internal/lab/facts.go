package lab

import (
	"regexp"
	"strings"
)

// Facts are what a test may assert about one crash, taken from the trigger table
// (Kind) and from the captured console log by the lab itself (the rest).
type Facts struct {
	// Kind is the report kind kcrash parse must find (internal/oops Kind values).
	Kind string `json:"kind"`
	// RIPFunc is the function of the first kernel-mode "RIP: 0010:func+off/size [mod]"
	// line, without offset, size and module; empty when the log has none (PANIC,
	// HUNG_TASK, CORRUPT_STACK, the slab reports).
	RIPFunc string `json:"rip_func"`
	// RIPModule is the module of that line ("lkdtm"), empty for the kernel proper.
	RIPModule string `json:"rip_module,omitempty"`
	// PanicMessage is the text after "Kernel panic - not syncing: ".
	PanicMessage string `json:"panic_message,omitempty"`
	// KASLROffset is the hex offset of "Kernel Offset: 0x… from 0x…" (printed at panic).
	KASLROffset string `json:"kaslr_offset,omitempty"`
	// Release is the kernel release named on the log's "CPU: … Tainted: … RELEASE #1" line.
	Release string `json:"release,omitempty"`
	// PanicTrailer says whether the log ends the panic with "---[ end Kernel panic".
	PanicTrailer bool `json:"panic_trailer"`
}

var (
	ripRE     = regexp.MustCompile(`RIP: 0010:([^\s+]+)\+0x[0-9a-f]+/0x[0-9a-f]+(?: \[([^\]\s]+)\])?`)
	panicRE   = regexp.MustCompile(`Kernel panic - not syncing: ([^\r\n]*)`)
	offsetRE  = regexp.MustCompile(`Kernel Offset: (0x[0-9a-f]+) from 0x[0-9a-f]+`)
	releaseRE = regexp.MustCompile(`CPU: \d+ (?:UID: \d+ )?PID: \d+ Comm: .*? (?:Tainted: .*?|Not tainted) +(\d+\.\d+\.\d+\S*) #`)
)

// ExtractFacts reads the facts of one console log (kernel log text, with or without
// "[ time]" prefixes); kind is the expected report kind, copied into the facts.
// Each fact comes from the first line that has it.
func ExtractFacts(log []byte, kind string) Facts {
	f := Facts{Kind: kind}
	if m := ripRE.FindSubmatch(log); m != nil {
		f.RIPFunc = string(m[1])
		f.RIPModule = string(m[2])
	}
	if m := panicRE.FindSubmatch(log); m != nil {
		f.PanicMessage = strings.TrimSpace(string(m[1]))
	}
	if m := offsetRE.FindSubmatch(log); m != nil {
		f.KASLROffset = string(m[1])
	}
	if m := releaseRE.FindSubmatch(log); m != nil {
		f.Release = string(m[1])
	}
	f.PanicTrailer = strings.Contains(string(log), PanicTrailer)
	return f
}
