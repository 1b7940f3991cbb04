// Package oops finds Linux kernel crash reports (oopses, panics, BUGs, WARNINGs, sanitizer
// reports, lockups, hung tasks, machine checks) in console text and parses them into
// structured Reports with syzbot-compatible titles and stable grouping signatures.
//
// The package never logs and never panics on input: any byte string is a valid log.
package oops

// Kind is the class of a crash report, independent of the exact message.
type Kind string

// The kinds of report the recognisers know. Titles carry the finer detail.
const (
	KindNullDeref      Kind = "null-ptr-deref"  // BUG: kernel NULL pointer dereference
	KindPageFault      Kind = "page-fault"      // BUG: unable to handle page fault / paging request
	KindGPF            Kind = "gpf"             // general protection fault
	KindBUG            Kind = "bug"             // kernel BUG at file:line / BUG: generic
	KindInvalidOpcode  Kind = "invalid-opcode"  // invalid opcode without a BUG line
	KindWarning        Kind = "warning"         // WARNING: CPU: … at file:line func
	KindKASAN          Kind = "kasan"           // BUG: KASAN: …
	KindKFENCE         Kind = "kfence"          // BUG: KFENCE: …
	KindUBSAN          Kind = "ubsan"           // UBSAN: …
	KindKMSAN          Kind = "kmsan"           // BUG: KMSAN: …
	KindKCSAN          Kind = "kcsan"           // BUG: KCSAN: …
	KindSlabCorruption Kind = "slab-corruption" // BUG cache (Tainted…): Poison overwritten, double free …
	KindListCorruption Kind = "list-corruption" // list_add/list_del corruption
	KindStackProtector Kind = "stack-protector" // stack-protector: Kernel stack is corrupted
	KindStackOverflow  Kind = "stack-overflow"  // stack guard page was hit / kernel stack overflow
	KindSoftLockup     Kind = "soft-lockup"     // watchdog: BUG: soft lockup
	KindHardLockup     Kind = "hard-lockup"     // NMI watchdog: hard LOCKUP
	KindRCUStall       Kind = "rcu-stall"       // rcu: INFO: rcu_preempt detected stalls
	KindHungTask       Kind = "hung-task"       // INFO: task X blocked for more than N seconds
	KindPanic          Kind = "panic"           // Kernel panic - not syncing: … (no earlier report)
	KindDoubleFault    Kind = "double-fault"    // double fault
	KindMCE            Kind = "mce"             // Machine check / mce: [Hardware Error]
	KindLockdep        Kind = "lockdep"         // possible deadlock, lock held when returning …
	KindAtomicSleep    Kind = "atomic-sleep"    // BUG: sleeping function called from invalid context
	KindMemoryLeak     Kind = "memory-leak"     // BUG: memory leak
	KindRefcount       Kind = "refcount"        // refcount_t: underflow / saturated
	KindUnhandledFault Kind = "arm64-fault"     // arm64 Unable to handle kernel …
	KindInternalError  Kind = "internal-error"  // arm64 Internal error: …
	KindPageCorruption Kind = "page-corruption" // BUG: Bad page state, pagealloc: memory corruption
	KindOther          Kind = "other"           // recognised report of a rarer class
)

// Report is one crash report found in a log.
type Report struct {
	// Title is syzbot-compatible: "KASAN: use-after-free Read in foo",
	// "BUG: unable to handle kernel NULL pointer dereference in bar", "WARNING in baz".
	Title string `json:"title"`
	// AltTitles are other titles the same bug is known under (e.g. the title built from
	// a different frame or an older kernel's wording).
	AltTitles []string `json:"alt_titles"`
	// Type is the bug class in syzkaller's vocabulary (e.g. "KASAN-USE-AFTER-FREE-READ",
	// "NULL-POINTER-DEREFERENCE", "WARNING", "HANG", "DoS"); empty when unknown.
	Type string `json:"type"`
	// Corrupted is true when the report is truncated or interleaved beyond repair, so its
	// title or frames may be wrong. CorruptedReason says why.
	Corrupted       bool   `json:"corrupted"`
	CorruptedReason string `json:"corrupted_reason,omitempty"`
	Kind            Kind   `json:"kind"`
	// Message is the report's headline as the kernel printed it, without the log prefix.
	Message string `json:"message"`
	// Signature groups reports of the same bug; see signature.go for its definition.
	Signature string `json:"signature"`
	// Frame is the function the title names, when any.
	Frame string `json:"frame,omitempty"`

	FaultAddress *uint64 `json:"fault_address,omitempty"` // address reported as faulting (CR2 for page faults)
	ErrorCode    *uint64 `json:"error_code,omitempty"`    // page fault error code (Oops: NNNN) or GPF code
	// AddressHint is the KASAN non-canonical hint ("probably user-memory-access in range …").
	AddressHint string `json:"address_hint,omitempty"`
	// Source is the file:line of a BUG or WARNING.
	Source string `json:"source,omitempty"`

	IP        *Frame            `json:"ip"`                 // the faulting instruction (RIP/pc line)
	CPU       *int              `json:"cpu,omitempty"`      // CPU number from the CPU: line
	PID       *int              `json:"pid,omitempty"`      // PID from the CPU: line
	Comm      string            `json:"comm,omitempty"`     // task name
	Taint     string            `json:"taint,omitempty"`    // taint flags, e.g. "G OE" → "OE"; "" for "Not tainted"
	Release   string            `json:"release,omitempty"`  // kernel release, e.g. 6.1.0-56-cloud-amd64
	Build     string            `json:"build,omitempty"`    // build string after the release, e.g. "#1 SMP PREEMPT_DYNAMIC Debian 6.1.158-1"
	Hardware  string            `json:"hardware,omitempty"` // Hardware name: …
	Arch      string            `json:"arch,omitempty"`     // "x86_64", "arm64" or "" when not known
	Registers map[string]uint64 `json:"registers"`          // register dump of the faulting context
	Code      *Code             `json:"code"`               // Code: bytes
	Frames    []Frame           `json:"frames"`             // call trace in printed order
	Sections  []Section         `json:"sections,omitempty"` // <IRQ>, <TASK>, exception frames …
	Modules   []string          `json:"modules,omitempty"`  // Modules linked in:
	Panicked  bool              `json:"panicked"`           // the log went on to "Kernel panic - not syncing"
	PanicMsg  string            `json:"panic_message,omitempty"`

	// Context holds up to 5 lines printed just before the report in the same printk
	// context (e.g. "list_add corruption. prev->next should be next …" before its BUG).
	Context []string `json:"context,omitempty"`

	// Repairs says what transport damage (mail quoting, wrapping, log prefixes, lost
	// addresses) had to be undone in the report's text; nil when none.
	Repairs *Repairs `json:"repairs,omitempty"`

	// Start and End are the byte span of the report in the input; Text is that span
	// with log prefixes removed.
	Start int    `json:"start"`
	End   int    `json:"end"`
	Text  string `json:"-"`
}

// Frame is one call-trace entry or an IP line: func+off/size [module].
type Frame struct {
	Func     string `json:"func,omitempty"`
	Offset   uint64 `json:"offset,omitempty"`
	Size     uint64 `json:"size,omitempty"`
	Module   string `json:"module,omitempty"`
	BuildID  string `json:"build_id,omitempty"` // module build ID (CONFIG_STACKTRACE_BUILD_ID: "[mod 0123…]")
	Addr     uint64 `json:"addr,omitempty"`     // address when printed ([<ffffffff…>] or pc : …)
	Reliable bool   `json:"reliable"`           // false when printed with "?"
	Section  string `json:"section,omitempty"`  // IRQ, TASK, NMI, SOFTIRQ, EXC … ("" outside sections)
	Inline   bool   `json:"inline,omitempty"`   // "[inline]" frames of a symbolized report
	File     string `json:"file,omitempty"`     // file:line when the report was already symbolized
	Raw      string `json:"raw"`                // the line as printed, without log prefix
}

// Section is a bounded part of a call trace: an <IRQ>/<NMI>/<TASK> block or an exception
// frame with its own RIP and registers printed inside the trace.
type Section struct {
	Name       string            `json:"name"`        // IRQ, NMI, TASK, SOFTIRQ, EOI, EXC
	FirstFrame int               `json:"first_frame"` // index into Frames
	EndFrame   int               `json:"end_frame"`   // one past the last frame
	IP         *Frame            `json:"ip,omitempty"`
	Registers  map[string]uint64 `json:"registers,omitempty"`
	User       bool              `json:"user,omitempty"` // RIP: 0033: user mode context
}

// Code is the Code: line of an oops.
type Code struct {
	Bytes []byte `json:"bytes"`
	// Trap is the index in Bytes of the byte the kernel marked (<xx> or (xxxx) on x86,
	// (xxxxxxxx) on arm64); -1 when unmarked.
	Trap int `json:"trap"`
	// TrapLen is the width of the marked unit in bytes (1 for <xx>, 2 for (xxxx), 4 on arm64).
	TrapLen int    `json:"trap_len"`
	Raw     string `json:"raw"`
	// Unreadable is set for "Code: Unable to access opcode bytes at …" and ???????? words.
	Unreadable bool `json:"unreadable,omitempty"`
}
