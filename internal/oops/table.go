package oops

import "regexp"

// This file is the recogniser table: which lines start a report, how the report is
// titled and which frame names it. It is data; the engine is in extract.go and stack.go.
//
// Titles follow the conventions of syzkaller's pkg/report and the public syzbot
// dashboard, so a title can be searched there. The kernel messages matched here come
// from the kernel sources named next to each group.

// recognizer is one family of reports sharing a header literal.
type recognizer struct {
	// header is a literal every start line of the family contains.
	header string
	// ignore lists lines that contain header but are not reports.
	ignore []*regexp.Regexp
	// formats are tried in order on the report text; see extractTitle.
	formats []format
	// kind is the family's default Kind.
	kind Kind
	// match, when set, must also match the line (for headers too common on their own).
	match *regexp.Regexp
	// continues marks headers that may appear inside another report without starting
	// a new one (a panic after an oops, the invalid opcode line of a BUG).
	continues bool
}

// format turns a matched report into a title.
type format struct {
	// title must match a line of the report; its submatches are arguments.
	title *regexp.Regexp
	// report, when set, must match the report text and supplies the arguments instead.
	report *regexp.Regexp
	// fmt builds the title from the arguments, then the frames found by stack
	// (fmt.Sprintf with explicit argument indexes).
	fmt string
	alt []string
	// stack says how to find the frame that names the bug; nil means no frame.
	stack *stackSpec
	// noStack disables the check that the report carries a stack trace.
	noStack bool
	// corrupted marks formats that only match truncated reports.
	corrupted bool
	// kind overrides the recognizer's kind.
	kind Kind
}

// stackSpec describes how to find the guilty frame. parts are matched in order over the
// report lines: a pattern part consumes lines up to the first that matches it and adds
// the frames it captures; the traceMarker part reads a call trace.
type stackSpec struct {
	parts []*regexp.Regexp
	// fallbacks are tried in order when parts finds no frame.
	fallbacks [][]*regexp.Regexp
	skip      []string // frame-name patterns to pass over, on top of skipFrames
	pick      func(frames []string) (string, int)
}

// traceMarker is the stackSpec part meaning "parse a call trace here".
var traceMarker = regexp.MustCompile(`\A\z trace marker`)

var (
	ripFrame  = re(`(?:IP|NIP|pc |PC is at):? (?:(?:[0-9]+:)?(?:{{PC}} +){0,2}{{FUNC}}|(?:[0-9]+:)?0x[0-9a-f]+|(?:[0-9]+:)?{{PC}} +\[< *\(null\)>\] +\(null\)|[0-9]+: +\(null\))`)
	callTrace = re(`(?:Call (?:T|t)race:)|(?:Backtrace:)`)
	warnFrame = re(`(?:` + ripFrame.String() + `|--- interrupt: [0-9]+ at {{FUNC}})`)
)

func stack(parts ...*regexp.Regexp) *stackSpec { return &stackSpec{parts: parts} }

func (s *stackSpec) skipping(skip ...string) *stackSpec { s.skip = skip; return s }

func (s *stackSpec) picking(f func([]string) (string, int)) *stackSpec { s.pick = f; return s }

func (s *stackSpec) orElse(parts ...*regexp.Regexp) *stackSpec {
	s.fallbacks = append(s.fallbacks, parts)
	return s
}

// ripTrace is the common x86/arm stack shape: the faulting IP, then the call trace.
func ripTrace() *stackSpec { return stack(ripFrame, callTrace, traceMarker) }

// traceOnly reads the frames after "Call Trace:".
func traceOnly() *stackSpec { return stack(callTrace, traceMarker) }

// warningStack: newer x86 kernels trap into the WARN and print RIP then the trace;
// older ones and other arches print just the trace.
func warningStack(skip ...string) *stackSpec {
	s := stack(warnFrame, traceMarker)
	s.fallbacks = [][]*regexp.Regexp{{callTrace, traceMarker}}
	s.skip = skip
	return s
}

// stackStarts are lines after which a stack trace must follow (corruption check) and at
// which a trace being read ends.
var stackStarts = []*regexp.Regexp{
	regexp.MustCompile(`Call (?:T|t)race`),
	regexp.MustCompile(`Allocated:`),
	regexp.MustCompile(`Allocated by task [0-9]+:`),
	regexp.MustCompile(`Freed:`),
	regexp.MustCompile(`Freed by task [0-9]+:`),
	regexp.MustCompile(`[^k] backtrace(?: \(crc [[:xdigit:]]*\))?:`), // not "stack backtrace:"
	regexp.MustCompile(`Backtrace:`),
	regexp.MustCompile(`Uninit was stored to memory at`),
	riscvStackStart,
}

// riscvStackStart is the last line show_regs() prints on riscv before the stack.
var riscvStackStart = regexp.MustCompile(`status: [0-9a-f]{16} badaddr: [0-9a-f]{16} cause: [0-9a-f]{16}`)

// corruptedFrameLines make a report corrupted when met while reading frames: fault
// injection stacks interleave with crash reports.
var corruptedFrameLines = res(`^( \[\<?(?:0x)?[0-9a-f]+\>?\])? should_fail(slab)?(\.[a-z0-9.]+)?\+0x`)

// skipFrames are frame-name patterns never used to name a bug: sanitizer runtime,
// reporting, allocation, locking, string and copy helpers, generic infrastructure.
var skipFrames = []string{
	"__sanitizer", "__asan", "kasan", "hwasan", "__msan", "kmsan", "kcsan_setup_watchpoint",
	"check_memory_region", "check_heap_object", "check_object", "read_word_at_a_time",
	"(read|write)_once_.*nocheck", "print_address_description", "panic", "invalid_op",
	"report_bug", "fixup_bug", "print_report", "print_usage_bug", "do_error", `_trap$|do_trap`,
	"show_stack", "dump_stack", "walk_stack", "dump_backtrace", "warn_slowpath", "warn_alloc",
	"warn_bogus", "__warn", "alloc_page", "k?v?(?:m|z|c)alloc", "krealloc", "kmem_cache",
	"allocate_slab", "__alloc_frozen_pages_noprof", "folio_(?:alloc|unlock)", "filemap_alloc_folio",
	"__filemap_get_folio", "find_or_create_page", "do_read_cache_folio", "read_cache_page",
	"pagecache_get_page", "grab_cache_page_write_begin", "slab_", "debug_object",
	"timer_is_static_object", "work_is_static_object", "__might_fault", "print_unlock",
	"imbalance_bug", "lockdep", "bh_enable", "bh_disable", "perf_trace", "lock_acquire",
	"lock_release", "lock_class", "mark_lock", "(reacquire|mark)_held_locks", "raw_spin_rq",
	"spin_lock", "spin_trylock", "spin_unlock", "read_lock", "read_trylock", "write_lock",
	"write_trylock", "read_unlock", "write_unlock", "^down$", "down_read", "down_write",
	"down_read_trylock", "down_write_trylock", "down_trylock", "up_read", "up_write", "^mutex_",
	"^__mutex_", "^rt_mutex_", "owner_on_cpu", "osq_lock", "osq_unlock",
	"atomic(64)?_(dec|inc|read|set|or|xor|and|add|sub|fetch|xchg|cmpxchg|try)",
	"(set|clear|change|test)_bit", "__wake_up", "^refcount_", "^kref_", "ref_tracker",
	"seqprop_assert", "memcpy", "memcmp", "memset", "memchr", "memmove", "memdup", "strcmp",
	"strncmp", "strcpy", "strlcpy", "strncpy", "strscpy", "strlen", "strstr", "strnstr", "strnlen",
	"strchr", "strdup", "strndup", "copy_to_user", "copy_from_user", "copy_to_iter",
	"copy_from_iter", "copy_page_to_iter", "copy_page_from_iter", "copy_folio_to_iter",
	"^copyin$", "^copyout$", "put_user", "get_user", "might_fault", "might_sleep", "list_add",
	"list_del", "list_replace", "list_move", "list_splice", "^rb_", "^__rb_", "_indirect_thunk_",
	"string", "pointer", "snprintf", "scnprintf", "kasprintf", "kvasprintf", "printk", "va_format",
	"dev_info", "dev_notice", "dev_warn", "dev_err", "dev_alert", "dev_crit", "dev_emerg",
	"program_check_exception", "program_check_common", "del_timer", "flush_work",
	"__cancel_work_timer", "cancel_work_sync", "try_to_grab_pending", "flush_workqueue",
	"drain_workqueue", "destroy_workqueue", "queue_work", "finish_wait", "kthread_stop",
	"kobject_", "add_uevent_var", "get_device_parent", "device_add", "device_del",
	"device_unregister", "device_destroy", "device_release", "devres_release_all",
	"hwrng_unregister", "i2c_del_adapter", "__unregister_client", "device_for_each_child",
	"rollback_registered", "unregister_netdev", "sysfs_remove", "device_remove_file",
	"tty_unregister_device", "dummy_urb_enqueue", "usb_kill_urb", "usb_kill_anchored_urbs",
	"usb_control_msg", "usb_hcd_submit_urb", "usb_submit_urb", "^complete$",
	"wait_for_completion", "^kv?free$", "kfree_skb", "readb$", "readw$", "readl$", "readq$",
	"writeb$", "writew$", "writel$", "writeq$", "logic_in", "logic_out", `^crc\d+`, "crc_itu_t",
	"__might_resched", "assertfail", "^iput$", "^iput_final$", "^ihold$", "hex_dump_to_buffer",
	"print_hex_dump", "^klist_", "(trace|lockdep)_(hard|soft)irq", "^(un)?lock_page",
	"stack_trace_consume_entry", "arch_stack_walk", "stack_trace_save", "insert_work",
	"__queue_delayed_work", "queue_delayed_work_on", "ida_free",
	// arm64 exception entry.
	"do_(kernel|translation)_fault", "do_mem_abort", "el1_abort", "el1h_64_sync(?:_handler)?",
	"print_tainted", "xas_(?:start|load|find)", "find_lock_entries", "truncate_inode_pages_range",
	"__phys_addr", "__fortify_report", "cleanup_srcu_struct", "rhashtable_lookup",
	"extract_(user|iter)_to_sg", "drop_nlink", "^get_taint$", "^put_device$", "lock_timer_base",
	"__timer_delete_sync", "sk_stop_timer_sync", "__mod_timer", "fast_dput", "dput",
	"mark_buffer_dirty",
}

// syscallPrefixes are stripped from frame names so that one bug has one title on every
// arch and kernel version (__x64_sys_foo, __se_sys_foo, SyS_foo → foo).
var syscallPrefixes = []string{
	"SYSC_", "SyS_", "sys_", "__x64_", "__ia32_", "__arm64_", "____sys_", "___sys_", "__sys_",
	"__se_", "__se_sys_", "__do_sys_", "compat_SYSC_", "compat_SyS_", "ksys_",
}

// startIgnores match oops lines that may sit inside another report without starting a
// new one.
var startIgnores = res(`invalid opcode: 0000`, `Kernel panic - not syncing`,
	`unregister_netdevice: waiting for`, `PANIC: double fault`, `Internal error:`,
	`INFO: (?:Allocated|Freed) in `, `INFO: Slab 0x`, `INFO: Object 0x`) // the lines of a SLUB report

// infoWithStack are messages that carry a stack but are no bug; met inside a report,
// they end its title region.
var infoWithStack = []string{"vmalloc: allocation failure:", "FAULT_INJECTION: forcing a failure",
	"FAULT_FLAG_ALLOW_RETRY missing"}

// recognizers, in priority order: a line is claimed by the first family whose header
// it contains (and no ignore pattern matches).
var recognizers = []*recognizer{
	{
		header: "BUG:", kind: KindBUG,
		formats: []format{
			// mm/kasan/report.c
			{title: re(`BUG: KASAN:`), kind: KindKASAN,
				report: re(`BUG: KASAN: ([a-z\-]+) in {{FUNC}}(?:.*\n)+?.*(Read|Write) (?:of size|at addr) (?:[0-9a-f]+)`),
				fmt:    "KASAN: %[1]v %[3]v in %[4]v", alt: []string{"bad-access in %[4]v"},
				stack: stack(re(`BUG: KASAN: (?:[a-z\-]+) in {{FUNC}}`), callTrace, traceMarker).
					skipping("kernel_fault", "tag_check", "mem_abort", "^el1_", "^el1h_")},
			{title: re(`BUG: KASAN:`), kind: KindKASAN,
				report: re(`BUG: KASAN: (?:double-free or invalid-free|double-free|invalid-free) in {{FUNC}}`),
				fmt:    "KASAN: invalid-free in %[2]v", alt: []string{"invalid-free in %[2]v"},
				stack: stack(re(`BUG: KASAN: (?:double-free or invalid-free|double-free|invalid-free) in {{FUNC}}`), callTrace, traceMarker).
					skipping("slab_", "kfree", "vunmap", "vfree")},
			{title: re(`BUG: KASAN: ([a-z\-]+) on address(?:.*\n)+?.*(Read|Write) of size ([0-9]+)`),
				fmt: "KASAN: %[1]v %[2]v", kind: KindKASAN},
			{title: re(`BUG: KASAN: (.*)`), fmt: "KASAN: %[1]v", corrupted: true, kind: KindKASAN},
			// mm/kmsan/report.c
			{title: re(`BUG: KMSAN: kernel-usb-infoleak`), kind: KindKMSAN,
				report: re(`BUG: KMSAN: kernel-usb-infoleak in {{FUNC}}`),
				fmt:    "KMSAN: kernel-usb-infoleak in %[2]v", alt: []string{"KMSAN origin in %[3]v"},
				stack: stack(traceMarker, re(`(Local variable .* created at:|Uninit was created at:)`), traceMarker).
					skipping("alloc_skb", "usb_submit_urb", "usb_start_wait_urb", "usb_bulk_msg", "usb_interrupt_msg", "usb_control_msg"),
				noStack: true},
			{title: re(`BUG: KMSAN:`), kind: KindKMSAN,
				report: re(`BUG: KMSAN: ([a-z\-]+) in {{FUNC}}`),
				fmt:    "KMSAN: %[1]v in %[3]v", alt: []string{"bad-access in %[3]v"},
				stack: stack(traceMarker, re(`(Local variable .* created at:|Uninit was created at:)`), traceMarker).
					skipping("alloc_skb", "netlink_ack", "netlink_rcv_skb", "_encrypt$", "^(?:crypto|cipher|drbg|rng)_"),
				noStack: true},
			// kernel/kcsan/report.c
			{title: re(`BUG: KCSAN: data-race`), report: re(`BUG: KCSAN: (.*)`), fmt: "KCSAN: %[1]v", noStack: true, kind: KindKCSAN},
			{title: re(`BUG: KCSAN:`), report: re(`BUG: KCSAN: (.*)`), fmt: "KCSAN: %[1]v", noStack: true, kind: KindKCSAN},
			// mm/kfence/report.c
			{title: re(`BUG: KFENCE: (use-after-free|out-of-bounds) (read|write) in {{FUNC}}`), kind: KindKFENCE,
				fmt: "KFENCE: %[1]v %[2]v in %[4]v", alt: []string{"bad-access in %[4]v"},
				stack: stack(re(`BUG: KFENCE: (?:[a-z\- ]+) in {{FUNC}}`), traceMarker)},
			{title: re(`BUG: KFENCE: invalid free in {{FUNC}}`), kind: KindKFENCE,
				fmt: "KFENCE: invalid free in %[2]v", alt: []string{"invalid-free in %[2]v"}, noStack: true,
				stack: stack(re(`BUG: KFENCE: (?:[a-z\- ]+) in {{FUNC}}`), traceMarker)},
			{title: re(`BUG: KFENCE: invalid (read|write) in {{FUNC}}`), kind: KindKFENCE,
				fmt: "KFENCE: invalid %[1]v in %[3]v", alt: []string{"bad-access in %[3]v"},
				stack: stack(re(`BUG: KFENCE: (?:[a-z\- ]+) in {{FUNC}}`), traceMarker)},
			{title: re(`BUG: KFENCE: memory corruption in {{FUNC}}`), kind: KindKFENCE,
				fmt: "KFENCE: memory corruption in %[2]v", noStack: true,
				stack: stack(re(`BUG: KFENCE: (?:[a-z\- ]+) in {{FUNC}}`), traceMarker)},
			// arch/x86/mm/fault.c: page_fault_oops / show_fault_oops
			{title: re(`BUG: (?:unable to handle kernel paging request|unable to handle page fault for address|Unable to handle kernel data access)`),
				fmt: "BUG: unable to handle kernel paging request in %[1]v", alt: []string{"bad-access in %[1]v"},
				stack: ripTrace(), kind: KindPageFault},
			{title: re(`BUG: (?:unable to handle kernel NULL pointer dereference|kernel NULL pointer dereference|Kernel NULL pointer dereference)`),
				fmt: "BUG: unable to handle kernel NULL pointer dereference in %[1]v", alt: []string{"bad-access in %[1]v"},
				stack: ripTrace(), kind: KindNullDeref},
			// The second half of the header is a separate printk and may be lost.
			{title: re(`BUG: (?:unable to handle kernel|Unable to handle kernel)`), fmt: "BUG: unable to handle kernel", corrupted: true, kind: KindPageFault},
			// kernel/locking/spinlock_debug.c
			{title: re(`BUG: (spinlock|rwlock) (lockup suspected|already unlocked|recursion|cpu recursion|bad magic|wrong owner|wrong CPU|trylock failure on UP)`),
				fmt: "BUG: %[1]v %[2]v in %[3]v", stack: traceOnly().skipping("spin_", "_lock", "_unlock"), kind: KindLockdep},
			// kernel/watchdog.c
			{title: re(`BUG: soft lockup`), fmt: "BUG: soft lockup in %[1]v", alt: []string{"stall in %[1]v"},
				stack: ripTrace().picking(stallFrame), kind: KindSoftLockup},
			// kernel/locking/lockdep.c
			{title: re(`BUG: .*still has locks held!`), report: re(`BUG: .*still has locks held!(?:.*\n)+?.*{{PC}} +{{FUNC}}`),
				fmt: "BUG: still has locks held in %[1]v", kind: KindLockdep},
			{title: re(`BUG: scheduling while atomic`), fmt: "BUG: scheduling while atomic in %[1]v",
				stack: traceOnly().skipping("schedule"), kind: KindAtomicSleep},
			{title: re(`BUG: lock held when returning to user space`),
				report: re(`BUG: lock held when returning to user space(?:.*\n)+?.*leaving the kernel with locks still held(?:.*\n)+?.*at: (?:{{PC}} +)?{{FUNC}}`),
				fmt:    "BUG: lock held when returning to user space in %[1]v", noStack: true, kind: KindLockdep},
			{title: re(`BUG: bad unlock balance detected!`), fmt: "BUG: bad unlock balance in %[1]v",
				stack: stack(re(`{{PC}} +{{FUNC}}`), callTrace, traceMarker), kind: KindLockdep},
			{title: re(`BUG: held lock freed!`), report: re(`BUG: held lock freed!(?:.*\n)+?.*{{PC}} +{{FUNC}}`),
				fmt: "BUG: held lock freed in %[1]v", kind: KindLockdep},
			// mm/
			{title: re(`BUG: Bad rss-counter state`), fmt: "BUG: Bad rss-counter state", noStack: true},
			{title: re(`BUG: non-zero nr_ptes on freeing mm`), fmt: "BUG: non-zero nr_ptes on freeing mm", noStack: true},
			{title: re(`BUG: non-zero nr_pmds on freeing mm`), fmt: "BUG: non-zero nr_pmds on freeing mm", noStack: true},
			// fs/dcache.c: the filesystem and device names are left out of the title.
			{title: re(`BUG: Dentry .* still in use`), report: re(`BUG: Dentry .* still in use \([0-9]+\) \[(unmount) of ([^\]]+)\]`),
				fmt: "BUG: Dentry still in use in %[1]v", alt: []string{"BUG: Dentry still in use [%[1]v of %[2]v]"}},
			{title: re(`BUG: Bad page (state|cache)`), fmt: "BUG: Bad page %[1]v in %[2]v", kind: KindPageCorruption,
				stack: stack(re(`page last allocated`), traceMarker).skipping("(free|put|get|update|release)_page",
					"free_unref", "^_*folio", "truncate_inode_pages", "page_frag_free", "alloc", "vmap", "page_owner")},
			{title: re(`BUG: Bad page map`), fmt: "BUG: Bad page map"},
			// kernel/workqueue.c
			{title: re(`BUG: workqueue lockup`), fmt: "BUG: workqueue lockup", noStack: true, kind: KindSoftLockup},
			{title: re(`BUG: sleeping function called from invalid context at (.*)`),
				fmt: "BUG: sleeping function called from invalid context in %[2]v", stack: traceOnly(), kind: KindAtomicSleep},
			{title: re(`BUG: using ([a-z_]+)\(\) in preemptible`), fmt: "BUG: using %[1]v() in preemptible code in %[2]v",
				stack: traceOnly().skipping("dump_stack", "preemption", "preempt", "debug_", "processor_id", "this_cpu"), kind: KindLockdep},
			{title: re(`BUG: workqueue leaked lock or atomic`),
				report: re(`BUG: workqueue leaked lock or atomic(?:.*\n)+?.*last function: ([a-zA-Z0-9_]+)\n`),
				fmt:    "BUG: workqueue leaked lock or atomic in %[1]v", noStack: true, kind: KindLockdep},
			// mm/kmemleak.c
			{title: re(`BUG: memory leak`), fmt: "memory leak in %[1]v", kind: KindMemoryLeak,
				stack: stack(re(`backtrace(?: \(crc [[:xdigit:]]*\))?:`), traceMarker).skipping("kmemleak", "mmap", "kmem", "slab",
					"alloc", "create_object", "idr_get", "list_lru_init", "kasprintf", "kvasprintf", "pcpu_create", "strdup", "strndup", "memdup")},
			// arch/x86/kernel/traps.c: handle_stack_overflow
			{title: re(`BUG: .*stack guard page was hit at`), fmt: "BUG: stack guard page was hit in %[1]v",
				alt: []string{"stack-overflow in %[1]v"}, stack: ripTrace().picking(stallFrame), kind: KindStackOverflow},
			// arm/arm64 print this for what x86 calls a lockdep locking bug.
			{title: re(`BUG: Invalid wait context`), fmt: "WARNING: locking bug in %[1]v",
				stack: traceOnly().skipping("lock_sock", "release_sock"), kind: KindLockdep},
			{title: re(`BUG:[[:space:]]*(?:\n|$)`), fmt: "BUG: corrupted", corrupted: true},
		},
		ignore: res(`ODEBUG:`, `Boot_DEBUG:`, `xlog_status:`, `DEBUG:`, `BUG: no syscalls can create resource`),
	},
	{
		header: "WARNING:", kind: KindWarning,
		formats: []format{
			{title: re(`WARNING: .*lib/debugobjects\.c.* (?:debug_print|debug_check|at)`), fmt: "WARNING: ODEBUG bug in %[1]v",
				stack: warningStack("debug_", "rcu", "hrtimer_", "timer_", "work_", "percpu_", "vunmap", "vfree", "__free_", "debug_check", "kobject_")},
			{title: re(`WARNING: .*mm/usercopy\.c.* (?:usercopy_warn|at)`), fmt: "WARNING: bad usercopy in %[1]v",
				stack: warningStack("usercopy", "__check")},
			{title: re(`WARNING: .*lib/kobject\.c.* (?:kobject_|at)`), fmt: "WARNING: kobject bug in %[1]v", stack: warningStack("kobject_")},
			{title: re(`WARNING: .*fs/proc/generic\.c.* (?:proc_register|at)`), fmt: "WARNING: proc registration bug in %[1]v", stack: warningStack("proc_")},
			{title: re(`WARNING: .*lib/refcount\.c.* (?:refcount_|at)`), fmt: "WARNING: refcount bug in %[1]v",
				stack: warningStack("refcount", "kobject_"), kind: KindRefcount},
			{title: re(`WARNING: .*kernel/locking/lockdep\.c.*lock_`), fmt: "WARNING: locking bug in %[1]v",
				stack: warningStack("lock_sock", "release_sock"), kind: KindLockdep},
			{title: re(`WARNING: .*still has locks held!`), report: re(`WARNING: .*still has locks held!(?:.*\n)+?.*at: {{FUNC}}`),
				fmt: "WARNING: still has locks held in %[1]v", kind: KindLockdep},
			{title: re(`WARNING: Nested lock was not taken`), fmt: "WARNING: nested lock was not taken in %[1]v", stack: warningStack(), kind: KindLockdep},
			{title: re(`WARNING: lock held when returning to user space`),
				report: re(`WARNING: lock held when returning to user space(?:.*\n)+?.*leaving the kernel with locks still held(?:.*\n)+?.*at: (?:{{PC}} +)?{{FUNC}}`),
				fmt:    "WARNING: lock held when returning to user space in %[1]v", noStack: true, kind: KindLockdep},
			{title: re(`WARNING: .*mm/.*\.c.* k?.?malloc`), fmt: "WARNING: kmalloc bug in %[1]v", stack: warningStack("kmalloc", "krealloc", "slab", "kmem")},
			{title: re(`WARNING: .*mm/vmalloc.c.*__vmalloc_node`), fmt: "WARNING: zero-size vmalloc in %[1]v", stack: warningStack()},
			{title: re(`WARNING: .* usb_submit_urb`), fmt: "WARNING in %[1]v/usb_submit_urb",
				stack: warningStack("usb_submit_urb", "usb_start_wait_urb", "usb_bulk_msg", "usb_interrupt_msg", "usb_control_msg")},
			// lib/list_debug.c without BUG_ON_DATA_CORRUPTION: same title as any WARNING.
			{title: re(`WARNING: .* at lib/list_debug\.c:[0-9]+ {{FUNC}}`), fmt: "WARNING in %[2]v", stack: warningStack(), kind: KindListCorruption},
			// kernel/panic.c __warn, 6.19+ layout.
			{title: re(`WARNING: {{SRC}} at 0x\d+, CPU#\d+`), fmt: "WARNING in %[2]v", stack: warningStack()},
			{title: re(`WARNING: .* at {{SRC}} {{FUNC}}`), fmt: "WARNING in %[3]v", stack: warningStack()},
			{title: re(`WARNING: {{SRC}} at {{FUNC}}`), fmt: "WARNING in %[3]v", stack: warningStack()},
			{title: re(`WARNING: \[.*\] {{SRC}} at {{FUNC}}.*`), fmt: "WARNING in %[3]v", stack: warningStack()},
			// kernel/locking/lockdep.c
			{title: re(`WARNING: possible circular locking dependency detected`), kind: KindLockdep,
				report: re(`WARNING: possible circular locking dependency detected(?:.*\n)+?.*is trying to acquire lock`),
				fmt:    "possible deadlock in %[1]v",
				stack: stack(re(`at: (?:{{PC}} +)?{{FUNC}}`), re(`at: (?:{{PC}} +)?{{FUNC}}`), traceMarker).
					skipping("process_one_work", "flush_workqueue", "drain_workqueue", "destroy_workqueue")},
			{title: re(`WARNING: possible irq lock inversion dependency detected`), kind: KindLockdep,
				report: re(`WARNING: possible irq lock inversion dependency detected(?:.*\n)+?.*just changed the state of lock(?:.*\n)+?.*at: (?:{{PC}} +)?{{FUNC}}`),
				fmt:    "possible deadlock in %[1]v"},
			{title: re(`WARNING: .*-safe -> .*-unsafe lock order detected`), fmt: "possible deadlock in %[1]v", kind: KindLockdep,
				stack: stack(re(`which became (?:.*) at:`), traceMarker)},
			{title: re(`WARNING: possible recursive locking detected`), kind: KindLockdep,
				report: re(`WARNING: possible recursive locking detected(?:.*\n)+?.*is trying to acquire lock(?:.*\n)+?.*at: (?:{{PC}} +)?{{FUNC}}`),
				fmt:    "possible deadlock in %[1]v"},
			{title: re(`WARNING: inconsistent lock state`), kind: KindLockdep,
				report: re(`WARNING: inconsistent lock state(?:.*\n)+?.*takes(?:.*\n)+?.*at: (?:{{PC}} +)?{{FUNC}}`),
				fmt:    "inconsistent lock state in %[2]v", stack: traceOnly()},
			{title: re(`WARNING: suspicious RCU usage`), report: re(`WARNING: suspicious RCU usage(?:.*\n)+?.*?{{SRC}}`), kind: KindLockdep,
				fmt: "WARNING: suspicious RCU usage in %[2]v", stack: traceOnly().skipping("rcu", "kmem", "slab")},
			// arch/x86/kernel/unwind_frame.c
			{title: re(`WARNING: kernel stack regs at [0-9a-f]+ in [^ ]* has bad '([^']+)' value`),
				fmt: "WARNING: kernel stack regs has bad '%[1]v' value", noStack: true},
			{title: re(`WARNING: kernel stack frame pointer at [0-9a-f]+ in [^ ]* has bad value`),
				fmt: "WARNING: kernel stack frame pointer has bad value", noStack: true},
			{title: re(`WARNING: bad unlock balance detected!`), fmt: "WARNING: bad unlock balance in %[1]v",
				stack: stack(re(`{{PC}} +{{FUNC}}`), callTrace, traceMarker), kind: KindLockdep},
			{title: re(`WARNING: held lock freed!`), report: re(`WARNING: held lock freed!(?:.*\n)+?.*at:(?: {{PC}})? +{{FUNC}}`),
				fmt: "WARNING: held lock freed in %[1]v", kind: KindLockdep},
			{title: re(`WARNING: kernel stack regs .* has bad 'bp' value`), fmt: "WARNING: kernel stack regs has bad value", noStack: true},
			{title: re(`WARNING: kernel stack frame pointer .* has bad value`), fmt: "WARNING: kernel stack regs has bad value", noStack: true},
			{title: re(`WARNING:[[:space:]]*(?:\n|$)`), fmt: "WARNING: corrupted", corrupted: true},
		},
		ignore: res(`WARNING: /etc/ssh/moduli does not exist, using fixed modulus`,
			`WARNING: workqueue cpumask: online intersect > possible intersect`, `WARNING: [Tt]he mand mount option`,
			`WARNING: Unsupported flag value\(s\) of 0x%x in DT_FLAGS_1`, `WARNING: Unprivileged eBPF is enabled with eIBRS`,
			`WARNING: fbcon: Driver '(.*)' missed to adjust virtual screen size (\((?:\d+)x(?:\d+) vs\. (?:\d+)x(?:\d+)\))`,
			`WARNING: See https.* for mitigation options.`, `WARNING: kernel not compiled with CPU_SRSO`,
			`EXT4-[Ff][Ss](?: \(.*\))?:`, `(?i)warning: .* uses (deprecated v2 capabilities|wireless extensions)`, `XFS \(\w+\): WARNING`),
	},
	{
		header: "INFO:", kind: KindOther,
		formats: []format{
			{title: re(`INFO: possible circular locking dependency detected`), kind: KindLockdep,
				report: re(`INFO: possible circular locking dependency detected \](?:.*\n)+?.*is trying to acquire lock(?:.*\n)+?.*at: {{PC}} +{{FUNC}}`),
				fmt:    "possible deadlock in %[1]v"},
			{title: re(`INFO: possible irq lock inversion dependency detected`), kind: KindLockdep,
				report: re(`INFO: possible irq lock inversion dependency detected \](?:.*\n)+?.*just changed the state of lock(?:.*\n)+?.*at: {{PC}} +{{FUNC}}`),
				fmt:    "possible deadlock in %[1]v"},
			{title: re(`INFO: SOFTIRQ-safe -> SOFTIRQ-unsafe lock order detected`), kind: KindLockdep,
				report: re(`INFO: SOFTIRQ-safe -> SOFTIRQ-unsafe lock order detected \](?:.*\n)+?.*is trying to acquire(?:.*\n)+?.*at: {{PC}} +{{FUNC}}`),
				fmt:    "possible deadlock in %[1]v"},
			{title: re(`INFO: possible recursive locking detected`), kind: KindLockdep,
				report: re(`INFO: possible recursive locking detected \](?:.*\n)+?.*is trying to acquire lock(?:.*\n)+?.*at: {{PC}} +{{FUNC}}`),
				fmt:    "possible deadlock in %[1]v"},
			{title: re(`INFO: inconsistent lock state`), kind: KindLockdep,
				report: re(`INFO: inconsistent lock state \](?:.*\n)+?.*takes(?:.*\n)+?.*at: {{PC}} +{{FUNC}}`),
				fmt:    "inconsistent lock state in %[1]v"},
			// kernel/rcu/tree_stall.h
			{title: re(`INFO: rcu_(?:preempt|sched|bh|tasks) (?:self-)?detected(?: expedited)? stall`), kind: KindRCUStall,
				fmt: "INFO: rcu detected stall in %[1]v", alt: []string{"stall in %[1]v"},
				stack: stack(re(`apic_timer_interrupt`), ripFrame, traceMarker).
					orElse(re(`(?:apic_timer_interrupt|Exception stack|el1h_64_irq)`), traceMarker).
					skipping("apic_timer_interrupt", "rcu").picking(stallFrame)},
			{title: re(`INFO: trying to register non-static key`), fmt: "INFO: trying to register non-static key in %[1]v",
				stack: traceOnly().skipping("stack", "lock", "IRQ"), kind: KindLockdep},
			{title: re(`INFO: suspicious RCU usage`), report: re(`INFO: suspicious RCU usage(?:.*\n)+?.*?{{SRC}}`), kind: KindLockdep,
				fmt: "INFO: suspicious RCU usage in %[2]v", stack: traceOnly().skipping("rcu", "kmem", "slab")},
			// kernel/hung_task.c
			{title: re(`INFO: task {{TASK}} blocked (?:in I/O wait )?for more than [0-9]+ seconds`), kind: KindHungTask,
				fmt: "INFO: task hung in %[1]v", alt: []string{"hang in %[1]v"}, stack: traceOnly().picking(hungTaskFrame)},
			{title: re(`INFO: task {{TASK}} can't die for more than .* seconds`), kind: KindHungTask,
				fmt: "INFO: task can't die in %[1]v", alt: []string{"hang in %[1]v"}, stack: traceOnly().skipping("schedule")},
			// Old-style KASAN reports cut before their header.
			{title: re(`INFO: (Freed|Allocated) in (.*)`), fmt: "INFO: %[1]v in %[2]v", corrupted: true},
			{title: re(`INFO:[[:space:]]*(?:\n|$)`), fmt: "INFO: corrupted", corrupted: true},
		},
		ignore: res(`INFO: lockdep is turned off`, `INFO: Stall ended before state dump start`, `INFO: NMI handler`,
			`INFO: recovery required on readonly filesystem`, `(handler|interrupt).*took too long`,
			`INFO: sys_.* is not present in /proc/kallsyms`, `INFO: no syscalls can create resource`, `rmt_storage:INFO:`, `_INFO:`,
			`INFO: 0x[0-9a-f]+-0x[0-9a-f]+`), // SLUB's "First byte … instead of …" line (mm/slub.c)
	},
	{
		// arch/arm64/mm/fault.c die_kernel_fault, arch/arm/mm/fault.c
		header: "Unable to handle kernel", kind: KindPageFault,
		formats: []format{
			{title: re(`Unable to handle kernel (paging request|NULL pointer dereference|access to user memory)`),
				fmt: "BUG: unable to handle kernel %[1]v in %[2]v", alt: []string{"bad-access in %[2]v"}, stack: ripTrace()},
		},
	},
	{
		// arch/x86/kernel/traps.c
		header: "general protection fault", kind: KindGPF,
		formats: []format{{title: re(`general protection fault.*:`), fmt: "general protection fault in %[1]v",
			alt: []string{"bad-access in %[1]v"}, stack: ripTrace()}},
		ignore: res(`general protection fault .* error:\d+ in `), // user-space GPF lines from show_signal
	},
	{
		header: "stack segment: ", kind: KindGPF,
		formats: []format{{title: re(`stack segment: `), fmt: "stack segment fault in %[1]v", stack: ripTrace()}},
	},
	{
		// kernel/panic.c
		header: "Kernel panic", kind: KindPanic, continues: true,
		formats: []format{
			// The kernel may fail to name or unwind the function whose canary died.
			{title: re(`Kernel panic - not syncing: stack-protector:`), kind: KindStackProtector,
				report: re(`Kernel panic - not syncing: stack-protector: Kernel stack is corrupted in: {{FUNC}}`),
				fmt:    "kernel panic: stack is corrupted in %[1]v", noStack: true},
			{title: re(`Kernel panic - not syncing: stack-protector:`), kind: KindStackProtector,
				report: re(`Kernel panic - not syncing: stack-protector: Kernel stack is corrupted in: [a-f0-9]+`),
				fmt:    "kernel panic: stack is corrupted in %[1]v", stack: traceOnly().skipping("stack_chk")},
			{title: re(`Kernel panic - not syncing: corrupted stack end`), kind: KindStackOverflow,
				report: re(`Kernel panic - not syncing: corrupted stack end detected inside scheduler`),
				fmt:    "kernel panic: corrupted stack end in %[1]v", alt: []string{"stack-overflow in %[1]v"},
				stack: traceOnly().skipping("schedule", "retint_kernel").picking(stallFrame)},
			{title: re(`Kernel panic - not syncing: kernel stack overflow`), kind: KindStackOverflow,
				fmt: "kernel stack overflow in %[1]v", alt: []string{"stack-overflow in %[1]v"},
				stack: traceOnly().skipping("bad_stack").picking(stallFrame)},
			{title: re(`Kernel panic - not syncing: Attempted to kill init!`), fmt: "kernel panic: Attempted to kill init!"},
			{title: re(`Kernel panic - not syncing: Couldn't open N_TTY ldisc for [^ ]+ --- error -[0-9]+`), fmt: "kernel panic: Couldn't open N_TTY ldisc"},
			// These panics follow a report: seen first, the report's header was lost.
			{title: re(`Kernel panic - not syncing: Fatal exception`), fmt: "kernel panic: Fatal exception", corrupted: true},
			{title: re(`Kernel panic - not syncing: panic_on_warn set`), fmt: "kernel panic: panic_on_warn set", corrupted: true},
			{title: re(`Kernel panic - not syncing: hung_task: blocked tasks`), fmt: "kernel panic: hung_task: blocked tasks", corrupted: true},
			// arch/x86/kernel/cpu/mce/core.c
			{title: re(`Kernel panic - not syncing: (Fatal machine check|Machine check.*)`), fmt: "kernel panic: %[1]v", kind: KindMCE},
			{title: re(`Kernel panic - not syncing: (.*)`), fmt: "kernel panic: %[1]v"},
		},
	},
	{
		// arch/x86/kernel/traps.c DEFINE_IDTENTRY_DF
		header: "PANIC: double fault", kind: KindDoubleFault, continues: true,
		formats: []format{{title: re(`PANIC: double fault`), fmt: "PANIC: double fault in %[1]v", stack: stack(ripFrame)}},
	},
	{
		header: "rust_kernel: panicked", kind: KindPanic,
		formats: []format{{title: re(`rust_kernel: panicked`), report: re(`rust_kernel: panicked at [^\n]*?\n(.+?)\n`),
			fmt: "%[1]v in %[2]v", stack: traceOnly().skipping(regexp.QuoteMeta(`__rustc::rust_begin_unwind`))}},
	},
	{
		// include/asm-generic/bug.h BUG(), reported by lib/bug.c
		header: "kernel BUG", kind: KindBUG,
		formats: []format{
			{title: re(`kernel BUG at mm/usercopy.c`), fmt: "BUG: bad usercopy in %[1]v", stack: traceOnly().skipping("usercopy", "__check")},
			{title: re(`kernel BUG at lib/list_debug.c`), fmt: "BUG: corrupted list in %[1]v", alt: []string{"bad-access in %[1]v"},
				stack: traceOnly(), kind: KindListCorruption},
			// skb helpers BUG_ON for their callers' mistakes.
			{title: re(`kernel BUG at (.*)`), fmt: "kernel BUG in %[2]v", stack: ripTrace().skipping("^skb_")},
		},
	},
	{header: "Kernel BUG", kind: KindBUG, formats: []format{{title: re(`Kernel BUG (.*)`), fmt: "kernel BUG %[1]v"}}},
	{
		// mm/slub.c slab_bug(): "BUG <cache> (<taint>): <what>"
		header: "BUG ", kind: KindSlabCorruption,
		match: re(`BUG kmalloc-|BUG [a-zA-Z0-9_.:-]+ \((?:Not tainted|Tainted: [^)]*)\): (?:[A-Za-z ]*(?:overwritten|corrupt|already free|Invalid object pointer|Wrong object count|Wrong number of objects|Objects remaining|Not a valid slab|Freelist Pointer|Alignment padding|allocated objects but)|objects [0-9]+ > max|inuse [0-9]+ > max)`),
		formats: []format{
			{title: re(`BUG kmalloc-.*: Object already free`), fmt: "BUG: Object already free"},
			// Not in syzkaller's table (syzbot runs without slub_debug).
			{title: re(`BUG ([a-zA-Z0-9_.:-]+) \((?:Not tainted|Tainted: [^)]*)\): ([^\n]*)`), fmt: "BUG: slab %[2]v in %[1]v", noStack: true},
		},
	},
	{
		header: "divide error:", kind: KindOther,
		formats: []format{{title: re(`divide error: `), fmt: "divide error in %[1]v", stack: stack(ripFrame)}},
	},
	{
		// A misspelling from 9d06c4027f21 ("x86/entry: Convert Divide Error to IDTENTRY").
		header: "divide_error:", kind: KindOther,
		formats: []format{{title: re(`divide_error: `), fmt: "divide error in %[1]v", stack: stack(ripFrame)}},
	},
	{
		header: "invalid opcode:", kind: KindInvalidOpcode, continues: true,
		formats: []format{{title: re(`invalid opcode: `), fmt: "invalid opcode in %[1]v", stack: stack(ripFrame)}},
	},
	{
		header: "int3:", kind: KindOther,
		formats: []format{{title: re(`int3: `), fmt: "int3 in %[1]v", stack: ripTrace()}},
	},
	{
		// lib/ubsan.c
		header: "UBSAN:", kind: KindUBSAN,
		formats: []format{
			{title: re(`UBSAN:`), report: re(`UBSAN: Undefined behaviour in`), fmt: "UBSAN: undefined-behaviour in %[1]v",
				stack: traceOnly().skipping("ubsan", "overflow")},
			{title: re(`UBSAN: array-index-out-of-bounds in`), fmt: "UBSAN: array-index-out-of-bounds in %[1]v",
				alt: []string{"bad-access in %[1]v"}, stack: traceOnly().skipping("ubsan", "overflow")},
			{title: re(`UBSAN:`), report: re(`UBSAN: (.*?) in`), fmt: "UBSAN: %[1]v in %[2]v", stack: traceOnly().skipping("ubsan", "overflow")},
		},
	},
	{
		// arch/x86/boot: a reboot in the middle of a run.
		header: "Booting the kernel.", kind: KindOther,
		formats: []format{{title: re(`^Booting the kernel`), fmt: "unexpected kernel reboot", noStack: true}},
		ignore:  res(`Parsing ELF|Decompressing Linux|Unknown parameter '`),
	},
	{
		// net/core/dev.c netdev_wait_allrefs
		header: "unregister_netdevice: waiting for", kind: KindHungTask, continues: true,
		formats: []format{{title: re(`unregister_netdevice: waiting for (?:.*) to become free`),
			fmt: "unregister_netdevice: waiting for DEV to become free", noStack: true}},
	},
	{
		header: "VFS: Close: file count is 0", kind: KindOther,
		formats: []format{{title: re(`VFS: Close: file count is 0`), fmt: "VFS: Close: file count is zero (use-after-free)", noStack: true}},
	},
	{
		header: "VFS: Busy inodes after unmount", kind: KindOther,
		formats: []format{{title: re(`VFS: Busy inodes after unmount`), fmt: "VFS: Busy inodes after unmount (use-after-free)", noStack: true}},
	},
	{
		// arch/{arm,arm64,riscv}/kernel/traps.c handle_bad_stack(): the report starts
		// here, with the faulting pc; a panic (arm64, riscv) or die() (arm) follows.
		header: "Insufficient stack space to handle exception!", kind: KindStackOverflow,
		formats: []format{
			{title: re(`Kernel panic - not syncing: [Kk]ernel stack overflow`),
				fmt: "kernel stack overflow in %[1]v", alt: []string{"stack-overflow in %[1]v"},
				stack: traceOnly().skipping("bad_stack").picking(stallFrame)},
			{title: re(`Internal error: kernel stack overflow`), fmt: "kernel stack overflow in %[1]v",
				alt: []string{"stack-overflow in %[1]v"}, stack: ripTrace()},
		},
	},
	{
		// arch/arm64/kernel/traps.c die()
		header: "Internal error:", kind: KindInternalError, continues: true,
		formats: []format{
			{title: re(`Internal error: kernel stack overflow`), kind: KindStackOverflow, fmt: "kernel stack overflow in %[1]v",
				alt: []string{"stack-overflow in %[1]v"}, stack: ripTrace()},
			{title: re(`Internal error:`), fmt: "Internal error in %[1]v", alt: []string{"bad-access in %[1]v"}, stack: ripTrace()},
		},
	},
	{
		// arch/arm/mm/fault.c
		header: "Unhandled fault:", kind: KindInternalError,
		formats: []format{{title: re(`Unhandled fault:`), fmt: "Unhandled fault in %[1]v", alt: []string{"bad-access in %[1]v"}, stack: ripTrace()}},
	},
	{
		header: "Alignment trap:", kind: KindOther,
		formats: []format{{title: re(`Alignment trap:`), fmt: "Alignment trap in %[1]v", stack: ripTrace()}},
	},
	{
		header: "trusty: panic", kind: KindPanic,
		formats: []format{
			{title: re(`trusty: panic.* ASSERT FAILED`), report: re(`trusty: panic \(.*?\):(?: DEBUG)? ASSERT FAILED at \(.*?\): (.+)`),
				fmt: "trusty: ASSERT FAILED: %[1]v", noStack: true},
			{title: re(`trusty: panic.* ASSERT FAILED.*: *(.*)`), fmt: "trusty: ASSERT FAILED: %[1]v", corrupted: true},
			{title: re(`trusty: panic`), report: re(`trusty: panic \(.*?\): (.+)`), fmt: "trusty: panic: %[1]v", noStack: true},
		},
	},
	{
		header: "fatal error:", kind: KindOther,
		formats: []format{{title: re(`fatal error:`), fmt: "go runtime error", noStack: true}},
		ignore:  res(`ALSA`, `fatal error: cannot create timer`),
	},
	// Reports kcrash knows beyond syzkaller's table. They come after it so that syzkaller's
	// titles win wherever both match.
	{
		// kernel/watchdog_perf.c / watchdog_hld.c
		// Before 2.6.38: "NMI Watchdog detected LOCKUP on CPU 0".
		header: "LOCKUP on ", kind: KindHardLockup, match: re(`[Ww]atchdog detected (?:hard )?LOCKUP on (?:cpu|CPU)`),
		formats: []format{{title: re(`[Ww]atchdog detected (?:hard )?LOCKUP on (?:cpu|CPU) ?([0-9]+)`), fmt: "BUG: hard lockup in %[2]v",
			alt: []string{"stall in %[2]v"}, stack: ripTrace().orElse(callTrace, traceMarker).picking(stallFrame)}},
	},
	{
		// arch/x86/kernel/cpu/mce/core.c, mce/apei.c
		header: "[Hardware Error]", kind: KindMCE, match: re(`\[Hardware Error\]: .*Machine [Cc]heck`), continues: true,
		formats: []format{{title: re(`\[Hardware Error\]: (?:CPU [0-9]+: )?(Machine [Cc]heck[a-zA-Z ]*)`), fmt: "MCE: %[1]v", noStack: true}},
	},
	{
		// drivers/acpi/apei/ghes.c: firmware-first hardware errors ("{1}[Hardware Error]: …").
		header: "[Hardware Error]: Hardware error from APEI", kind: KindMCE,
		formats: []format{{title: re(`\[Hardware Error\]: Hardware error from APEI`), fmt: "MCE: Hardware error from APEI", noStack: true}},
	},
	{
		// mm/debug_page_alloc.c / mm/page_poison.c: check_poison_mem.
		header: "pagealloc: memory corruption", kind: KindPageCorruption,
		formats: []format{{title: re(`pagealloc: memory corruption`), fmt: "pagealloc: memory corruption in %[1]v",
			stack: traceOnly().skipping("poison", "kernel_map_pages", "prep_new_page", "get_page_from_freelist",
				"post_alloc_hook", "__alloc_pages", "alloc_pages")}},
	},
	{
		// OpenZFS SPL: "VERIFY(cond) failed" then "PANIC at file.c:line:func()"
		// (module/os/linux/spl/spl-err.c spl_panic).
		header: "PANIC at ", kind: KindOther, match: re(`PANIC at [A-Za-z0-9_.-]+:[0-9]+:[A-Za-z0-9_]+\(\)`),
		formats: []format{{title: re(`PANIC at ([A-Za-z0-9_.-]+):[0-9]+:([A-Za-z0-9_]+)\(\)`), fmt: "PANIC at %[1]v in %[2]v", noStack: true}},
	},
	{
		// arch/x86/mm/fault.c: die("Oops", …) of a page fault whose "BUG: unable to
		// handle …" header was lost (cut from a paste). Inside a report it continues it.
		header: "Oops: ", kind: KindPageFault, continues: true, match: re(`(?:^|[\] ])Oops: [0-9a-f]{4} \[#[0-9]+\]`),
		formats: []format{{title: re(`Oops: [0-9a-f]{4} \[#`), fmt: "BUG: unable to handle kernel paging request in %[1]v",
			alt: []string{"bad-access in %[1]v"}, stack: ripTrace()}},
	},
	// Produced by syzkaller's own executor and Go programs; recognised so that such logs
	// get the same titles as on syzbot.
	{header: "SYZFAIL:", kind: KindOther, formats: []format{{title: re(`SYZFAIL:(.*)`), fmt: "SYZFAIL:%[1]v", noStack: true}}},
	{header: "SYZFATAL:", kind: KindOther, formats: []format{{title: re(`SYZFATAL:(.*)()`), alt: []string{"SYZFATAL%[2]s"}, fmt: "SYZFATAL:%[1]v", noStack: true}}},
	{
		header: "panic:", kind: KindPanic,
		formats: []format{
			{title: re(`panic: Sentry detected .* stuck task`), fmt: "panic: Sentry detected stuck tasks", noStack: true},
			{title: re(`panic:(.*)`), fmt: "panic:%[1]v", noStack: true},
		},
		ignore: res(`_panic:`, `xlog_status:`, `ddb\.onpanic:`, `evtlog_status:`),
	},
}

// titleTypes maps title prefixes to syzkaller's bug classes (pkg/report/crash); the first
// matching row wins.
var titleTypes = []struct {
	typ      string
	prefixes []string
}{
	{"KFENCE-USE-AFTER-FREE-WRITE", []string{"KFENCE: use-after-free write"}},
	{"KFENCE-USE-AFTER-FREE-READ", []string{"KFENCE: use-after-free read", "KFENCE: use-after-free"}},
	{"KFENCE-WRITE", []string{"KFENCE: invalid write", "KFENCE: out-of-bounds write"}},
	{"KFENCE-READ", []string{"KFENCE: invalid read", "KFENCE: out-of-bounds read", "KFENCE: out-of-bounds"}},
	{"KFENCE-MEMORY-CORRUPTION", []string{"KFENCE: memory corruption"}},
	{"KFENCE-INVALID-FREE", []string{"KFENCE: invalid free"}},
	{"KMSAN-UNINIT-VALUE", []string{"KMSAN: uninit-value"}},
	{"KMSAN-USE-AFTER-FREE-READ", []string{"KMSAN: kernel-infoleak-after-free", "KMSAN: kernel-usb-infoleak-after-free", "KMSAN: use-after-free"}},
	{"KMSAN-INFO-LEAK", []string{"KMSAN: kernel-infoleak", "KMSAN: kernel-usb-infoleak"}},
	{"KASAN-NULL-POINTER-DEREFERENCE-WRITE", []string{"KASAN: null-ptr-deref Write"}},
	{"KASAN-NULL-POINTER-DEREFERENCE-READ", []string{"KASAN: null-ptr-deref Read"}},
	{"NULL-POINTER-DEREFERENCE", []string{"BUG: unable to handle kernel NULL pointer dereference in"}},
	{"KASAN-WRITE", []string{"KASAN: global-out-of-bounds Write", "KASAN: out-of-bounds Write", "KASAN: slab-out-of-bounds Write",
		"KASAN: stack-out-of-bounds Write", "KASAN: user-memory-access Write", "KASAN: vmalloc-out-of-bounds Write", "KASAN: wild-memory-access Write"}},
	{"KASAN-READ", []string{"KASAN: global-out-of-bounds Read", "KASAN: invalid-access Read", "KASAN: out-of-bounds Read",
		"KASAN: slab-out-of-bounds Read", "KASAN: slab-out-of-bounds", "KASAN: stack-out-of-bounds Read", "KASAN: stack-out-of-bounds",
		"KASAN: unknown-crash Read", "KASAN: user-memory-access Read", "KASAN: vmalloc-out-of-bounds Read", "KASAN: wild-memory-access Read",
		"KASAN: wild-memory-access"}},
	{"KASAN-INVALID-FREE", []string{"KASAN: double-free or invalid-free", "KASAN: invalid-free"}},
	{"KASAN-USE-AFTER-FREE-WRITE", []string{"KASAN: slab-use-after-free Write", "KASAN: use-after-free Write"}},
	{"KASAN-USE-AFTER-FREE-READ", []string{"KASAN: slab-use-after-free Read", "KASAN: use-after-free Read", "KASAN: use-after-free"}},
	{"MEMORY_SAFETY_BUG", []string{"BUG: corrupted list", "BUG: unable to handle kernel paging request"}},
	{"REFCOUNT_WARNING", []string{"WARNING: refcount bug"}},
	{"MEMORY_SAFETY_UBSAN", []string{"UBSAN: array-index-out-of-bounds"}},
	{"KCSAN-DATARACE", []string{"KCSAN: data-race"}},
	{"KCSAN-ASSERT", []string{"KCSAN: assert: race in"}},
	{"LOCKDEP", []string{"BUG: bad unlock balance in", "BUG: held lock freed in", "BUG: rwlock", "BUG: spinlock",
		"BUG: still has locks held in", "BUG: using", "WARNING: bad unlock balance in", "WARNING: held lock freed in",
		"WARNING: lock held", "WARNING: locking bug in", "WARNING: nested lock was not taken in", "WARNING: still has locks held in",
		"WARNING: suspicious RCU usage in", "inconsistent lock state in", "possible deadlock in"}},
	{"ATOMIC_SLEEP", []string{"BUG: scheduling while atomic in", "BUG: sleeping function called from invalid context in"}},
	{"LEAK", []string{"memory leak in"}},
	{"BUG", []string{"BUG: bad usercopy in", "kernel BUG"}},
	{"WARNING", []string{"WARNING in"}},
	{"", []string{"BUG: stack guard page was hit in", "WARNING: corrupted", "WARNING: kernel stack frame pointer has bad value",
		"WARNING: kernel stack regs has bad"}},
	{"HANG", []string{"BUG: soft lockup in", "INFO: rcu detected stall in", "INFO: task can't die in", "INFO: task hung in",
		"BUG: hard lockup in"}},
	{"DoS", []string{"Alignment trap in", "BUG: Object already free", "Internal error in", "PANIC: double fault", "Unhandled fault in",
		"VFS: Busy inodes after unmount (use-after-free)", "VFS: Close: file count is zero (use-after-free)", "divide error in",
		"general protection fault in", "go runtime error", "int3 in", "invalid opcode in", "kernel panic:", "kernel stack overflow",
		"panic:", "rust_kernel panicked", "stack segment fault in", "trusty:", "unregister_netdevice: waiting for DEV to become free"}},
	{"REBOOT", []string{"unexpected kernel reboot"}},
	{"SYZ_FAILURE", []string{"SYZFAIL", "SYZFATAL:"}},
	{"WARNING", []string{"WARNING:"}},
	{"", []string{"BUG:", "INFO:"}},
	{"KASAN-UNKNOWN", []string{"KASAN:"}},
	{"KFENCE-UNKNOWN", []string{"KFENCE:"}},
	{"KMSAN-UNKNOWN", []string{"KMSAN:"}},
	{"UBSAN", []string{"UBSAN:"}},
	{"KCSAN-UNKNOWN", []string{"KCSAN:"}},
}
