package oops

import (
	"bytes"
	"sync/atomic"

	"github.com/ianlancetaylor/demangle"
	"regexp"
	"strings"
	"sync"
)

// armFrame is the 32-bit arm unwinder's line: "[<c0101234>] (foo) from [<c0105678>] (bar+0x..".
var armFrame = re(`^ *{{PC}} \(([a-zA-Z0-9_.]+)\) from {{PC}} \({{FUNC}}`)

// parsePC consumes "[<ffffffff81000000>]" (angle brackets and 0x optional) at the start of s.
func parsePC(s []byte) int {
	if len(s) < 3 || s[0] != '[' {
		return 0
	}
	i := 1
	if s[i] == '<' {
		i++
	}
	if i+1 < len(s) && s[i] == '0' && s[i+1] == 'x' {
		i += 2
	}
	start := i
	for i < len(s) && (s[i] >= '0' && s[i] <= '9' || s[i] >= 'a' && s[i] <= 'f') {
		i++
	}
	if i == start {
		return 0
	}
	if i < len(s) && s[i] == '>' {
		i++
	}
	if i < len(s) && s[i] == ']' {
		return i + 1
	}
	return 0
}

func isIdent(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_'
}

// frameName returns the function a call-trace line names: optional spaces, up to two
// bracketed addresses, then name followed by '.' or '+'. It matches the same lines as
// `^ *(?:{{PC}} ){0,2}{{FUNC}}` without a regexp.
func frameName(line []byte) []byte {
	i := 0
	for i < len(line) && line[i] == ' ' {
		i++
	}
	for k := 0; k < 2; k++ {
		n := parsePC(line[i:])
		if n == 0 || i+n >= len(line) || line[i+n] != ' ' {
			break
		}
		i += n + 1
	}
	s := i
	for i < len(line) && isIdent(line[i]) {
		i++
	}
	if i == s || i >= len(line) || line[i] != '.' && line[i] != '+' {
		return nil
	}
	return line[s:i]
}

// lineFrames returns the frames a line names (two for arm's "from" lines).
func lineFrames(line []byte) [][]byte {
	if f := frameName(line); f != nil {
		return [][]byte{f}
	}
	if bytes.Contains(line, []byte(") from [")) {
		if m := armFrame.FindSubmatch(line); m != nil {
			return m[1:]
		}
	}
	return nil
}

// skipper decides whether a frame name is passed over when naming a bug. Literal
// patterns are checked as substrings and the rest as one regexp; answers are cached
// process-wide (bounded), since the same frame names recur in every report.
type skipper struct {
	once     sync.Once
	spec     *stackSpec
	literals []string
	re       *regexp.Regexp
	mu       sync.RWMutex
	cache    map[string]bool // bounded by maxSkipCache
}

const maxSkipCache = 1 << 16

var skippers sync.Map // *stackSpec → *skipper

func skipperFor(s *stackSpec) *skipper {
	if v, ok := skippers.Load(s); ok {
		return v.(*skipper)
	}
	v, _ := skippers.LoadOrStore(s, &skipper{spec: s})
	return v.(*skipper)
}

// skipBytes is skip for a name still in the log's bytes; it allocates only for names it
// has not seen.
func (sk *skipper) skipBytes(name []byte) bool {
	sk.mu.RLock()
	v, ok := sk.cache[string(name)]
	sk.mu.RUnlock()
	if ok {
		return v
	}
	return sk.skip(string(name))
}

func (sk *skipper) skip(name string) bool {
	sk.once.Do(func() {
		var rest []string
		for _, p := range append(append([]string{}, skipFrames...), sk.spec.skip...) {
			if regexp.QuoteMeta(p) == p {
				sk.literals = append(sk.literals, p)
			} else {
				rest = append(rest, p)
			}
		}
		if len(rest) > 0 {
			sk.re = regexp.MustCompile(strings.Join(rest, "|"))
		}
	})
	sk.mu.RLock()
	v, ok := sk.cache[name]
	sk.mu.RUnlock()
	if ok {
		return v
	}
	for _, l := range sk.literals {
		if strings.Contains(name, l) {
			v = true
			break
		}
	}
	if !v && sk.re != nil {
		v = sk.re.MatchString(name)
	}
	sk.mu.Lock()
	if sk.cache == nil {
		sk.cache = map[string]bool{}
	}
	if len(sk.cache) < maxSkipCache {
		sk.cache[name] = v
	}
	sk.mu.Unlock()
	return v
}

// partMatch matches a stack part against a line, rejecting most lines by a literal check
// before running the regexp.
func partMatch(part *regexp.Regexp, line []byte) [][]byte {
	switch part {
	case ripFrame:
		if !bytes.Contains(line, []byte("IP")) && !bytes.Contains(line, []byte("pc ")) && !bytes.Contains(line, []byte("PC is at")) {
			return nil
		}
	case callTrace:
		if !bytes.Contains(line, []byte("race:")) {
			return nil
		}
	case warnFrame:
		if !bytes.Contains(line, []byte("IP")) && !bytes.Contains(line, []byte("pc ")) &&
			!bytes.Contains(line, []byte("PC is at")) && !bytes.Contains(line, []byte("--- interrupt: ")) {
			return nil
		}
	default:
		ts := scanOf(part)
		if len(ts.prefix) > 0 && !bytes.Contains(line, ts.prefix) || len(ts.need) > 0 && !bytes.Contains(line, ts.need) {
			return nil
		}
	}
	return part.FindSubmatch(line)
}

type keyFrame struct {
	canonical string // with syscall prefixes stripped (or the picker's choice)
	raw       string // as printed
}

// stripPrefixes returns the shortest name left by removing one syscall prefix.
func stripPrefixes(name string) string {
	best := name
	for _, p := range syscallPrefixes {
		if s := strings.TrimPrefix(name, p); len(s) < len(best) {
			best = s
		}
	}
	return best
}

// findFrames walks the report lines following spec and returns the key frame of each
// stack it read; ok is false when a stack yielded no usable frame or a fault-injection
// stack was interleaved.
func findFrames(spec *stackSpec, lines []byte) ([]keyFrame, bool) {
	sk := skipperFor(spec)
	frames, ok := walkParts(spec, spec.parts, lines, sk)
	for _, alt := range spec.fallbacks {
		if ok {
			break
		}
		frames, ok = walkParts(spec, alt, lines, sk)
	}
	return frames, ok
}

func walkParts(spec *stackSpec, parts []*regexp.Regexp, text []byte, sk *skipper) ([]keyFrame, bool) {
	pos := 0
	// next returns the next line of text, or nil at the end.
	next := func() []byte {
		if pos > len(text) || pos == len(text) && (pos == 0 || text[pos-1] == '\n') {
			pos = len(text) + 1
			return nil
		}
		e := lineEnd(text, pos)
		ln := text[pos:e]
		pos = e + 1
		return ln
	}
	var raw []string
	var out []keyFrame
	ok := true
	traces := 0
	add := func(names [][]byte) {
		for _, n := range names {
			if spec.pick == nil && len(raw) > 0 {
				return // only the first usable frame names the bug
			}
			if n == nil {
				continue
			}
			// Rust (v0 and legacy) and C++ symbols are named demangled, without parameters.
			if len(n) > 2 && n[0] == '_' && (n[1] == 'Z' || n[1] == 'R') {
				s := demangle.Filter(string(n), demangle.NoParams, demangle.MaxLength(12))
				if !sk.skip(s) {
					raw = append(raw, s)
				}
				continue
			}
			if !sk.skipBytes(n) {
				raw = append(raw, string(n))
			}
		}
	}
	flush := func() {
		kf := pickFrame(spec, raw)
		if kf.canonical == "" {
			kf, ok = keyFrame{"corrupted", "corrupted"}, false
		}
		out = append(out, kf)
		raw = nil
	}
	for pi := 0; ; pi++ {
		if pi == len(parts) || parts[pi] == traceMarker && traces > 0 {
			flush()
		}
		if pi == len(parts) {
			break
		}
		part := parts[pi]
		if part != traceMarker {
			for ln := next(); ln != nil || pos <= len(text); ln = next() {
				if corruptedFrameLine(ln) {
					ok = false
					break
				}
				if m := partMatch(part, ln); m != nil {
					add(m[1:])
					break
				}
			}
			continue
		}
		traces++
	trace:
		for ln := next(); ln != nil || pos <= len(text); ln = next() {
			if corruptedFrameLine(ln) {
				ok = false
				break
			}
			names := lineFrames(ln)
			if names == nil && isStackStart(ln) {
				break
			}
			if pi+1 < len(parts) {
				if m := partMatch(parts[pi+1], ln); m != nil {
					add(m[1:])
					pi++
					break trace
				}
			}
			add(names)
		}
	}
	return out, ok
}

// isStackStart reports whether a line starts a (new) stack trace. The literal checks
// keep the regexps off the hot path.
func isStackStart(ln []byte) bool {
	for i, lit := range stackStartLiterals {
		if bytes.Contains(ln, lit) && stackStarts[i].Match(ln) {
			return true
		}
	}
	return false
}

func pickFrame(spec *stackSpec, raw []string) keyFrame {
	if len(raw) == 0 {
		return keyFrame{}
	}
	stripped := make([]string, len(raw))
	for i, r := range raw {
		stripped[i] = stripPrefixes(r)
	}
	if spec.pick == nil {
		return keyFrame{stripped[0], raw[0]}
	}
	f, i := spec.pick(stripped)
	if f == "" {
		return keyFrame{}
	}
	return keyFrame{f, raw[i]}
}

// stallAnchors are generic dispatch functions (syscall entry, workqueues, timers, file
// and socket operations). A stall's stack loops somewhere above one of them; the frame
// just above the first anchor names the stall, so one bug gets one title.
var stallAnchors = res("process_one_work", "do_syscall_", "do_fast_syscall_", "sysenter_dispatch",
	"tracesys_phase2", "el0_svc_handler", "invoke_syscall", "ret_fast_syscall", "netif_receive_skb",
	"do_softirq", "call_timer_fn", "_run_timers", "run_timer_softirq", "hrtimer_run", "run_ksoftirqd",
	"smpboot_thread_fn", "^kthread$", "start_secondary", "cpu_startup_entry", "ret_from_fork",
	"vfs_write", "vfs_read", "vfs_iter_read", "vfs_iter_write", "do_iter_read", "do_iter_write",
	"call_read_iter", "call_write_iter", "new_sync_read", "new_sync_write", "vfs_ioctl", "ksys_ioctl",
	"compat_ioctl", "compat_sys_ioctl", "blkdev_driver_ioctl", "blkdev_ioctl", "^call_read_iter",
	"^call_write_iter", "do_iter_readv_writev", "^call_mmap", "mmap_region", "do_mmap", "do_dentry_open",
	"vfs_open", "^sock_sendmsg", "^sock_recvmsg", "^sock_release", "^__sock_release", "^setsockopt$",
	"kernel_setsockopt", "sock_common_setsockopt", "^listen$", "kernel_listen", "sk_common_release",
	"^sock_mmap", "^accept$", "kernel_accept", "^sock_do_ioctl", "^sock_ioctl", "^compat_sock_ioctl",
	"^nfnetlink_rcv_msg", "^rtnetlink_rcv_msg", "^netlink_dump", "^(sys_)?(socketpair|connect|ioctl)",
	"__do_fault", "do_page_fault", "^page_fault$", "__fput", "task_work_run", "exit_to_usermode",
	"smp_call_function", "tasklet_action", "tasklet_hi_action")

func corruptedFrameLine(ln []byte) bool {
	return bytes.Contains(ln, []byte("should_fail")) && matchAny(ln, corruptedFrameLines)
}

var (
	anchorCache  sync.Map // frame name → bool
	anchorCached atomic.Int64
)

func isStallAnchor(f string) bool {
	if v, ok := anchorCache.Load(f); ok {
		return v.(bool)
	}
	v := matchAny([]byte(f), stallAnchors)
	if anchorCached.Add(1) < maxSkipCache {
		anchorCache.Store(f, v)
	}
	return v
}

// stallFrame picks the frame above the first dispatch anchor.
func stallFrame(frames []string) (string, int) {
	prev, prevIdx := frames[0], 0
	for i, f := range frames {
		if isStallAnchor(f) {
			if strings.Contains(f, "smp_call_function") {
				return "smp_call_function", i
			}
			return prev, prevIdx
		}
		prev, prevIdx = f, i
	}
	return "", -1
}

// hungTaskFrame groups hung tasks: waits on RCU synchronisation and on rtnl_lock are
// victims of one cause each, so they are named by the wait; otherwise the first frame
// that is not scheduling or locking machinery.
func hungTaskFrame(frames []string) (string, int) {
	for i, f := range frames {
		switch {
		case strings.Contains(f, "rtnl_lock"):
			return f, i
		case strings.Contains(f, "synchronize_rcu"), strings.Contains(f, "synchronize_srcu"),
			strings.Contains(f, "synchronize_net"), strings.Contains(f, "synchronize_sched"):
			return "synchronize_rcu", i
		}
	}
next:
	for i, f := range frames {
		for _, s := range []string{"sched", "_lock", "_slowlock", "down", "rwsem", "completion", "kthread",
			"wait", "synchronize", "context_switch", "__switch_to", "cancel_delayed_work", "rcu_barrier"} {
			if strings.Contains(f, s) {
				continue next
			}
		}
		return f, i
	}
	return "", -1
}
