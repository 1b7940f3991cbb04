package oops

import (
	"regexp"
	"strconv"
	"strings"
)

var (
	cpuLine      = regexp.MustCompile(`^CPU: ([0-9]+) (?:UID: [0-9]+ )?PID: ([0-9]+) Comm: (.*?) (Not tainted|Tainted: [A-Z ]*?) +([0-9]\S*)(?: +(.*))?$`)
	faultAddrRes = res(`address: ([0-9a-f]+)`, `at virtual address ([0-9a-f]+)`, `dereference at ([0-9a-f]+)`, `paging request at ([0-9a-f]+)`, `non-canonical address (0x[0-9a-f]+)`, `at addr ([0-9a-f]+)`)
	errorCodeRes = res(`^Oops: ([0-9a-f]+) \[#`, `: ([0-9a-f]{4}) \[#[0-9]+\]`, `#PF: error_code\((0x[0-9a-f]+)\)`, `Internal error: [^:]*: ([0-9a-f]+) \[#`)
	kasanHint    = regexp.MustCompile(`KASAN: (?:null-ptr-deref|maybe wild-memory-access|probably user-memory-access|maybe user-memory-access|wild-memory-access) in range \[[^\]]*\]`)
	sourceRes    = res(`kernel BUG at ([^!\s]+)!`, `WARNING: .* at {{SRC}} `, `WARNING: {{SRC}} at `)
	lockupTask   = regexp.MustCompile(`CPU#([0-9]+) stuck for [0-9]+s! \[(.*):([0-9]+)\]`)
	hungTaskRe   = regexp.MustCompile(`INFO: task (.*):([0-9]+) blocked`)
	armPCLine    = regexp.MustCompile(`(pc|lr|pstate) ?: (?:\[<)?([0-9a-f]+)`)
	ripLine      = regexp.MustCompile(`^(RIP|EIP|pc|NIP|IP): ?(?:([0-9a-f]{4}):)?(.*)$`)
	// The access a sanitizer caught: "BUG: KASAN: slab-out-of-bounds in foo+0x1a/0x40".
	sanitizerFunc = regexp.MustCompile(`BUG: K(?:ASAN|FENCE|MSAN): [a-z -]+ in ([A-Za-z0-9_.]+\+0x[0-9a-f]+/0x[0-9a-f]+(?: \[[A-Za-z0-9_]+\])?)`)
	// KFENCE's access line heads the access trace: "Use-after-free read at 0x… (in kfence-#3):".
	kfenceAccess   = regexp.MustCompile(`^(?:Use-after-free|Out-of-bounds|Invalid|Corrupted memory|Invalid free) [a-z ]*at 0x[0-9a-f]+.*:$`)
	warnFunc       = regexp.MustCompile(`WARNING: .*at \S+:[0-9]+ ([A-Za-z0-9_.]+\+0x[0-9a-f]+/0x[0-9a-f]+(?: \[[A-Za-z0-9_]+\])?)`)
	decimalSym     = regexp.MustCompile(`^[A-Za-z0-9_.]+\+[0-9]+/[0-9]+$`)
	decodedFrameRe = regexp.MustCompile(`^([A-Za-z0-9_.]+) \((\S+:[0-9]+)[^)]*\)( \[inline\])?\s*$`)
	inlineFrameRe  = regexp.MustCompile(`^([A-Za-z0-9_.]+) (\S+:[0-9]+)( \[inline\])?$`)
	x86Regs        = map[string]bool{"RAX": true, "RBX": true, "RCX": true, "RDX": true, "RSI": true, "RDI": true, "RBP": true,
		"RSP": true, "R08": true, "R09": true, "R10": true, "R11": true, "R12": true, "R13": true, "R14": true, "R15": true,
		"FS": true, "GS": true, "knlGS": true, "CS": true, "DS": true, "ES": true, "CR0": true, "CR2": true, "CR3": true,
		"CR4": true, "DR0": true, "DR1": true, "DR2": true, "DR3": true, "DR6": true, "DR7": true, "PKRU": true,
		"EFLAGS": true, "ORIG_RAX": true, "EAX": true, "EBX": true, "ECX": true, "EDX": true, "ESI": true, "EDI": true,
		"EBP": true, "ESP": true, "SS": true}
)

// registerOrder is the order registers print in (x86-64 show_regs, then arm64).
var registerOrder = func() map[string]int {
	m := map[string]int{}
	names := strings.Fields(`RIP SS RSP EFLAGS ORIG_RAX RAX RBX RCX RDX RSI RDI RBP R08 R09 R10 R11 R12 R13 R14 R15
		FS GS knlGS CS DS ES CR0 CR2 CR3 CR4 DR0 DR1 DR2 DR3 DR6 DR7 PKRU EIP EAX EBX ECX EDX ESI EDI EBP ESP
		pc lr sp pstate`)
	for i, n := range names {
		m[n] = i
	}
	for i := 30; i >= 0; i-- {
		m["x"+strconv.Itoa(i)] = len(names) + 30 - i
	}
	return m
}()

// RegisterOrder gives the position of a register name in the kernel's register dump, for
// printing registers in the familiar order; unknown names sort last.
func RegisterOrder(name string) int {
	if v, ok := registerOrder[name]; ok {
		return v
	}
	return 1000
}

func parseHex(s string) (uint64, bool) {
	s = strings.TrimPrefix(s, "0x")
	v, err := strconv.ParseUint(s, 16, 64)
	return v, err == nil
}

func isHex(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

func isSymbol(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !isIdent(c) && c != '.' && c != '$' {
			return false
		}
	}
	return true
}

// parseFrame parses a call-trace entry: "[<addr>] ? func+0x14/0x53 [mod]", optionally
// symbolized ("func+0x14/0x53 net/core/dev.c:123", "func net/core/dev.c:123 [inline]").
func parseFrame(s string) (Frame, bool) {
	s = strings.TrimSpace(s)
	f := Frame{Raw: s, Reliable: true}
	rest := s
	for {
		if r, ok := strings.CutPrefix(rest, "? "); ok {
			f.Reliable, rest = false, r
			continue
		}
		if strings.HasPrefix(rest, "[<") {
			if j := strings.Index(rest, ">] "); j > 2 && isHex(rest[2:j]) {
				f.Addr, _ = parseHex(rest[2:j])
				rest = rest[j+3:]
				continue
			}
		}
		if strings.HasPrefix(rest, "<") { // i386 before 2.6.18: "<c020bb5d> func+0x…"
			if j := strings.Index(rest, "> "); j >= 9 && isHex(rest[1:j]) {
				f.Addr, _ = parseHex(rest[1:j])
				rest = rest[j+2:]
				continue
			}
		}
		if strings.HasPrefix(rest, "[") { // early 2.6 kallsyms: "[ide_cmd+108/116] ide_cmd+0x6c/0x74"
			if j := strings.Index(rest, "] "); j > 1 && decimalSym.MatchString(rest[1:j]) {
				rest = rest[j+2:]
				continue
			}
			// powerpc: "[e101dcf8] [c03a6bf8] bmac_probe+0x540/0x618" (stack pointer, pc).
			if j := strings.Index(rest, "] "); j >= 9 && j <= 17 && isHex(rest[1:j]) {
				f.Addr, _ = parseHex(rest[1:j])
				rest = rest[j+2:]
				continue
			}
		}
		if strings.HasPrefix(rest, ":") { // 2.6.18 x86-64 modules: ":fcdslusb2:claim_urb+0x1d/0x8f"
			if j := strings.IndexByte(rest[1:], ':'); j > 0 && isSymbol(rest[1:j+1]) {
				f.Module = rest[1 : j+1]
				rest = rest[j+2:]
				continue
			}
		}
		break
	}
	if r, ok := strings.CutSuffix(rest, " (unreliable)"); ok { // powerpc
		f.Reliable, rest = false, r
	}
	plus := strings.Index(rest, "+0x")
	if plus <= 0 || !isSymbol(rest[:plus]) {
		if !strings.Contains(s, ":") {
			return f, false
		}
		if im := inlineFrameRe.FindStringSubmatch(s); im != nil {
			return Frame{Raw: s, Func: im[1], File: im[2], Inline: im[3] != "", Reliable: f.Reliable}, true
		}
		// decode_stacktrace.sh output: "do_wp_page (include/linux/page-flags.h:251 mm/memory.c:3047)".
		if dm := decodedFrameRe.FindStringSubmatch(rest); dm != nil {
			return Frame{Raw: s, Func: dm[1], File: dm[2], Inline: dm[3] != "", Addr: f.Addr, Reliable: f.Reliable}, true
		}
		return f, false
	}
	f.Func = rest[:plus]
	r := rest[plus+3:]
	slash := strings.Index(r, "/0x")
	if slash <= 0 || !isHex(r[:slash]) {
		return Frame{Raw: s, Reliable: true}, false
	}
	f.Offset, _ = parseHex(r[:slash])
	r = r[slash+3:]
	k := 0
	for k < len(r) && isHex(r[k:k+1]) {
		k++
	}
	if k == 0 {
		return Frame{Raw: s, Reliable: true}, false
	}
	f.Size, _ = parseHex(r[:k])
	r = r[k:]
	if strings.HasPrefix(r, " [") {
		if end := strings.IndexByte(r, ']'); end > 2 {
			if fs := strings.Fields(r[2:end]); len(fs) > 0 {
				f.Module = fs[0]
				if len(fs) > 1 && len(fs[1]) >= 16 && isHex(fs[1]) {
					f.BuildID = fs[1]
				}
			}
			r = r[end+1:]
		}
	}
	if fs := strings.Fields(r); len(fs) > 0 && strings.Contains(fs[0], ":") {
		f.File = fs[0]
		f.Inline = len(fs) > 1 && fs[1] == "[inline]"
	}
	return f, true
}

// parseIP parses the text after "RIP: 0010:" or "pc : ".
func parseIP(s string) *Frame {
	s = strings.TrimSpace(s)
	// Old x86: "[<ffffffff81234567>]  [<ffffffff81234567>] foo+0x1/0x2"
	for strings.HasPrefix(s, "[<") {
		if i := strings.Index(s, ">]"); i > 0 {
			s = strings.TrimSpace(s[i+2:])
		} else {
			break
		}
	}
	if f, ok := parseFrame(s); ok {
		return &f
	}
	f := &Frame{Raw: s, Reliable: true}
	if fs := strings.Fields(s); len(fs) > 0 {
		if v, ok := parseHex(fs[0]); ok {
			f.Addr = v
		}
	}
	return f
}

// parseCode parses a Code: line: x86 bytes with <xx> or (xxxx) marking the trap, or
// arm64 32-bit words with (xxxxxxxx) marking it.
func parseCode(s string) *Code {
	c := &Code{Raw: s, Trap: -1}
	if strings.HasPrefix(s, "Unable to access") || strings.HasPrefix(s, "Bad RIP") {
		c.Unreadable = true
		return c
	}
	for _, tok := range strings.Fields(s) {
		marked := false
		if len(tok) > 2 && (tok[0] == '<' && tok[len(tok)-1] == '>' || tok[0] == '(' && tok[len(tok)-1] == ')') {
			tok, marked = tok[1:len(tok)-1], true
		}
		if strings.Trim(tok, "?") == "" {
			c.Unreadable = true
			continue
		}
		if len(tok)%2 != 0 || len(tok) > 8 {
			return c
		}
		v, err := strconv.ParseUint(tok, 16, 64)
		if err != nil {
			return c
		}
		n := len(tok) / 2
		if marked {
			c.Trap, c.TrapLen = len(c.Bytes), n
		}
		if n == 4 { // arm64 words are printed as numbers: store them little-endian
			c.Bytes = append(c.Bytes, byte(v), byte(v>>8), byte(v>>16), byte(v>>24))
		} else { // x86 bytes, or a (xxxx) pair, in printed order

			for i := n - 1; i >= 0; i-- {
				c.Bytes = append(c.Bytes, byte(v>>(8*uint(i))))
			}
		}
	}
	return c
}

func isStackStartString(t string) bool {
	for i, lit := range stackStartLiterals {
		if strings.Contains(t, string(lit)) && stackStarts[i].MatchString(t) {
			return true
		}
	}
	return false
}

func isIPLine(t string) bool {
	return (strings.HasPrefix(t, "RIP:") || strings.HasPrefix(t, "EIP:") || strings.HasPrefix(t, "NIP:") || strings.HasPrefix(t, "IP: ") ||
		strings.HasPrefix(t, "pc : ") || strings.HasPrefix(t, "pc:")) && (ripLine.MatchString(t) || strings.HasPrefix(t, "pc : "))
}

func isRegisterLine(s string) bool {
	i := strings.IndexAny(s, ": ")
	if i <= 0 {
		return false
	}
	name := s[:i]
	if x86Regs[name] {
		return true
	}
	if strings.HasPrefix(s, "pstate: ") || strings.HasPrefix(s, "sp : ") || strings.HasPrefix(s, "lr : ") {
		return true
	}
	if len(name) >= 2 && name[0] == 'x' {
		if _, err := strconv.Atoi(name[1:]); err == nil {
			return true
		}
	}
	return false
}

// addRegisters parses every "NAME: value" pair of a register-dump line into regs.
func addRegisters(regs map[string]uint64, s string) {
	if rest, ok := strings.CutPrefix(s, "RSP: "); ok && len(rest) > 5 && rest[4] == ':' {
		if v, ok := parseHex(rest[:4]); ok {
			regs["SS"] = v
		}
		s = "RSP: " + rest[5:]
	}
	// "NAME: value" pairs, where NAME is a register name and value 4 to 16 hex digits
	// (FS/GS print "value(selector)").
	for i := 0; i < len(s); {
		c := strings.IndexByte(s[i:], ':')
		if c < 0 {
			return
		}
		c += i
		ns := c
		for ns > i && s[ns-1] == ' ' { // "x9 : …", "sp : …"
			ns--
		}
		for ns > i && s[ns-1] != ' ' {
			ns--
		}
		name := strings.TrimSpace(s[ns:c])
		v := c + 1
		for v < len(s) && s[v] == ' ' {
			v++
		}
		e := v
		for e < len(s) && (s[e] >= '0' && s[e] <= '9' || s[e] >= 'a' && s[e] <= 'f') {
			e++
		}
		if name != "" && e-v >= 4 && e-v <= 16 && (e == len(s) || s[e] == ' ' || s[e] == '(') {
			if val, ok := parseHex(s[v:e]); ok {
				regs[name] = val
			}
		}
		i = max(e, c+1)
	}
}

// fill parses the structured fields of r from its lines (console prefixes removed).
func fill(r *Report, lines []string) {
	if len(lines) == 0 {
		return
	}
	first := lines[0]
	for _, rx := range faultAddrRes {
		if m := rx.FindStringSubmatch(first); m != nil {
			if v, ok := parseHex(m[1]); ok {
				r.FaultAddress = &v
			}
			break
		}
	}
	inTrace, ended := false, false
	var sec *Section
	secName := ""
	var regs map[string]uint64 // registers being filled: the report's, or a section's
	userIP := false            // the last RIP line was a user-mode one (its Code is not the oops's)
	ipFromHeader := false      // r.IP came from an "IP:" header line, before the register dump
	var lineBuf [2]Frame       // the frames of one trace line (stays on the stack)
	var cpuM []string          // cpuLine's submatches, found once in the case that tests it
	arm32 := false             // a line only 32-bit ARM prints
	for i, s := range lines {
		t := strings.TrimSpace(s)
		if !arm32 && t != "" && (t[0] == 'F' || t[0] == 'I') &&
			(strings.HasPrefix(t, "Flags: ") && strings.Contains(t, " Mode ") ||
				strings.HasPrefix(t, "Internal error: ") && (strings.HasSuffix(t, " ARM") || strings.HasSuffix(t, " THUMB2"))) {
			// 32-bit ARM: __show_regs's "Flags: nzCv  IRQs on  FIQs on  Mode SVC_32  ISA ARM",
			// or die()'s "Internal error: Oops: 5 [#1] PREEMPT SMP ARM" (arm64 names no ISA).
			arm32 = true
		}
		switch {
		case strings.HasPrefix(t, "---[ end trace"):
			ended, inTrace, regs = true, false, nil
		case r.CPU == nil && strings.HasPrefix(t, "CPU: ") && submatchInto(cpuLine, t, &cpuM):
			m := cpuM
			cpu, _ := strconv.Atoi(m[1])
			pid, _ := strconv.Atoi(m[2])
			r.CPU, r.PID, r.Comm = &cpu, &pid, m[3]
			if strings.HasPrefix(m[4], "Tainted: ") {
				r.Taint = strings.Join(strings.Fields(strings.TrimPrefix(m[4], "Tainted: ")), "")
			}
			r.Release, r.Build = m[5], strings.TrimSpace(m[6])
		case strings.HasPrefix(t, "Hardware name: ") && r.Hardware == "":
			r.Hardware = strings.TrimPrefix(t, "Hardware name: ")
		case strings.HasPrefix(t, "Modules linked in:") && r.Modules == nil:
			if inTrace {
				inTrace, ended = false, true
			}
			for _, mod := range strings.Fields(strings.TrimPrefix(t, "Modules linked in:")) {
				if strings.HasPrefix(mod, "[") {
					break
				}
				if j := strings.IndexByte(mod, '('); j > 0 {
					mod = mod[:j]
				}
				r.Modules = append(r.Modules, mod)
			}
		case r.ErrorCode == nil && (strings.HasPrefix(t, "Oops: ") || strings.Contains(t, " [#") || strings.HasPrefix(t, "#PF: error_code")):
			for _, rx := range errorCodeRes {
				if m := rx.FindStringSubmatch(t); m != nil {
					if v, ok := parseHex(m[1]); ok {
						r.ErrorCode = &v
					}
					break
				}
			}
		case r.AddressHint == "" && strings.Contains(t, "KASAN: ") && kasanHint.MatchString(t):
			r.AddressHint = kasanHint.FindString(t)
		case t == "Call Trace:" || t == "Call trace:" || t == "Backtrace:" || isKFENCEAccess(t) ||
			len(r.Frames) == 0 && !inTrace && strings.HasSuffix(t, "Trace:") && len(t) < 40:
			// (A console overwrite may leave only the tail of the header: "ffff8Trace:".)
			if !inTrace && len(r.Frames) == 0 && !ended {
				inTrace = true
				regs = nil
			} else if inTrace {
				inTrace = false
				ended = true
			}
		case inTrace && len(t) > 2 && t[0] == '<' && t[len(t)-1] == '>':
			name := strings.Trim(t, "<>/")
			if strings.HasPrefix(t, "</") || name == "EOI" || name == "EOE" {
				if name == "EOI" {
					name = "IRQ"
				}
				if secName == name {
					secName = ""
				}
				sec = nil
			} else {
				secName = name
				r.Sections = append(r.Sections, Section{Name: name, FirstFrame: len(r.Frames), EndFrame: len(r.Frames)})
				sec = &r.Sections[len(r.Sections)-1]
			}
		case r.IP == nil && !inTrace && strings.HasPrefix(t, "PC is at "):
			// Older arm/arm64: "PC is at func+0x../0x..", "LR is at …".
			r.IP = parseIP(strings.TrimPrefix(t, "PC is at "))
			r.Arch = "arm64"
			if r.Registers == nil {
				r.Registers = map[string]uint64{}
			}
			regs = r.Registers
		case (r.IP == nil || r.IP.Func == "") && !inTrace && (strings.HasPrefix(t, "EIP is at ") || strings.HasPrefix(t, "IAOQ[0]: ")):
			// Old i386 ("EIP is at func+0x…") and parisc ("IAOQ[0]: func+0x…").
			if t[0] == 'I' {
				r.IP = parseIP(strings.TrimPrefix(t, "IAOQ[0]: "))
				r.Arch = "parisc"
			} else {
				r.IP = parseIP(strings.TrimPrefix(t, "EIP is at "))
				r.Arch = "i386"
			}
		case strings.HasPrefix(t, "pc : [<"):
			// Older arm64 register line: "pc : [<addr>] lr : [<addr>] pstate: 200001c5".
			if r.Registers == nil {
				r.Registers = map[string]uint64{}
			}
			regs = r.Registers
			for _, m := range armPCLine.FindAllStringSubmatch(t, -1) {
				if v, ok := parseHex(m[2]); ok {
					regs[m[1]] = v
				}
			}
			if r.IP == nil {
				r.IP = &Frame{Raw: t, Addr: regs["pc"], Reliable: true}
			}
			r.Arch = armPCArch(t)
		case isIPLine(t):
			m := ripLine.FindStringSubmatch(t)
			var rest, seg string
			if m != nil {
				seg, rest = m[2], m[3]
			} else {
				rest = strings.TrimPrefix(t, "pc : ")
			}
			ip := parseIP(rest)
			userIP = seg == "0033" || seg == "0023"
			if r.IP != nil && r.IP.Func == "" && ip.Func != "" && (ip.Addr == 0 || ip.Addr == r.IP.Addr) {
				// The EIP/RIP trailer after an old i386 trace names the function the
				// "EIP: 0060:[<…>]" line did not.
				r.IP.Func, r.IP.Offset, r.IP.Size, r.IP.Module = ip.Func, ip.Offset, ip.Size, ip.Module
			}
			headerIP := m != nil && m[1] == "IP"
			if !inTrace && !ended && ipFromHeader && !headerIP {
				// The register dump's RIP/EIP line after an "IP: [<…>] func" header line.
				if ip.Func == "" {
					ip = r.IP
				}
				r.IP, ipFromHeader = nil, false
			}
			if !inTrace && r.IP == nil && !ended {
				r.IP = ip
				ipFromHeader = headerIP
				if r.Registers == nil {
					r.Registers = make(map[string]uint64, 40) // a register dump follows: no rehashing as it fills
				}
				regs = r.Registers
				if strings.HasPrefix(t, "pc") {
					r.Arch = "arm64"
					if ip.Addr != 0 {
						regs["pc"] = ip.Addr
					}
				} else {
					r.Arch = "x86_64"
					if t[0] == 'E' {
						r.Arch = "i386"
					}
				}
			} else if inTrace {
				r.Sections = append(r.Sections, Section{Name: "EXC", FirstFrame: len(r.Frames), EndFrame: len(r.Frames),
					IP: ip, Registers: map[string]uint64{}, User: seg == "0033" || seg == "0023"})
				sec = &r.Sections[len(r.Sections)-1]
				regs = sec.Registers
			} else {
				regs = nil
			}
		case strings.HasPrefix(t, "Code: "):
			// x86 prints Code: before the trace (a user-mode one may follow inside it);
			// arm64 and x86 before 4.x print it after the trace.
			// A user-mode context's Code (RIP: 0033 inside the trace) is not the oops's.
			if r.Code == nil && !userIP {
				r.Code = parseCode(strings.TrimPrefix(t, "Code: "))
			}
		case regs != nil && isRegisterLine(t):
			addRegisters(regs, t)
		case inTrace || len(r.Frames) == 0 && !ended && strings.HasPrefix(t, "[<") && armFromLine.MatchString(t) ||
			len(r.Frames) == 0 && !ended && headerlessTrace(lines, i, r.IP != nil):
			// 32-bit arm prints its "from" frames without a header after the stack dump;
			// a trimmed paste may drop the "Call Trace:" line above the frames.
			inTrace = true
			fs, ok := appendTraceLineFrames(lineBuf[:0], t)
			if !ok && i > 0 && isStackStartString(t) {
				inTrace, ended = false, true
				break
			}
			if !ok {
				if t != "" && !strings.HasPrefix(t, "?") && !traceNoise(t) {
					inTrace, ended = false, true
				}
				break
			}
			for _, f := range fs {
				f.Section = secName
				r.Frames = append(r.Frames, f)
				if sec != nil {
					sec.EndFrame = len(r.Frames)
				}
				for j := range r.Sections {
					if r.Sections[j].Name == secName && r.Sections[j].EndFrame == len(r.Frames)-1 && &r.Sections[j] != sec {
						r.Sections[j].EndFrame = len(r.Frames)
					}
				}
			}
		}
		if r.Source == "" && i < 3 {
			for _, rx := range sourceRes {
				if m := rx.FindStringSubmatch(t); m != nil {
					r.Source = m[1]
					break
				}
			}
		}
	}
	if c := r.Code; c != nil && r.Arch == "x86_64" && c.Trap < 0 && !c.Unreadable && len(c.Bytes) == 20 &&
		!strings.Contains(strings.TrimSpace(c.Raw), "  ") {
		// x86-64 before 2.6.24 printed 20 Code bytes starting AT the RIP, unmarked.
		c.Trap, c.TrapLen = 0, 1
	}
	if r.IP == nil && (r.Kind == KindRCUStall || r.Kind == KindSoftLockup || r.Kind == KindHardLockup) {
		// A stall's NMI backtrace prints the stuck CPU's registers after its interrupt
		// frames: that interrupted kernel IP is where the CPU was stuck.
		for _, s := range r.Sections {
			if s.Name == "EXC" && s.IP != nil && !s.User && s.IP.Func != "" {
				ip := *s.IP
				r.IP = &ip
				break
			}
		}
	}
	if r.IP == nil && (r.Kind == KindKASAN || r.Kind == KindKFENCE || r.Kind == KindKMSAN) {
		// No registers: the header names the function that made the bad access.
		if m := sanitizerFunc.FindStringSubmatch(first); m != nil {
			if f, ok := parseFrame(m[1]); ok {
				r.IP = &f
			}
		}
	}
	if r.IP == nil && r.Kind == KindWarning {
		// Kernels before 4.x (and arches without a trap) print no RIP for a WARN: the
		// function is the one in the WARNING line.
		if m := warnFunc.FindStringSubmatch(first); m != nil {
			if f, ok := parseFrame(m[1]); ok {
				r.IP = &f
			}
		}
	}
	if r.CPU == nil {
		if m := lockupTask.FindStringSubmatch(first); m != nil {
			cpu, _ := strconv.Atoi(m[1])
			pid, _ := strconv.Atoi(m[3])
			r.CPU, r.Comm, r.PID = &cpu, m[2], &pid
		} else if m := hungTaskRe.FindStringSubmatch(first); m != nil {
			pid, _ := strconv.Atoi(m[2])
			r.Comm, r.PID = m[1], &pid
		}
	}
	if arm32 && r.Arch == "arm64" {
		r.Arch = "arm"
	}
	if r.Registers != nil {
		if v, ok := r.Registers["CR2"]; ok && r.FaultAddress == nil && (r.Kind == KindPageFault || r.Kind == KindNullDeref) {
			r.FaultAddress = &v
		}
		if r.IP != nil && r.IP.Addr != 0 && !strings.HasPrefix(r.Arch, "arm") {
			r.Registers["RIP"] = r.IP.Addr
		}
	}
}

// headerlessTrace reports whether lines[i] starts a call trace without a header (cut
// from a paste, or never printed, as by dump_stack() on old i386): it and the line after
// it are frames with their "+0x…/0x…" offsets, after the faulting IP or, anywhere, with
// their "[<address>]" too.
func headerlessTrace(lines []string, i int, afterIP bool) bool {
	if i+1 >= len(lines) {
		return false
	}
	for _, l := range lines[i : i+2] {
		t := strings.TrimSpace(l)
		addr := strings.HasPrefix(t, "[<")
		if addr {
			if j := strings.Index(t, ">] "); j > 0 {
				t = t[j+3:]
			}
		}
		if !afterIP && !addr || !symStart.MatchString(strings.TrimPrefix(t, "? ")) {
			return false
		}
	}
	return true
}

// isKFENCEAccess is kfenceAccess.MatchString(t), with a literal precheck first: every
// match ends in ':' and holds "at 0x" (the regexp would otherwise run on every line).
func isKFENCEAccess(t string) bool {
	return len(t) > 0 && t[len(t)-1] == ':' && strings.Contains(t, "at 0x") && kfenceAccess.MatchString(t)
}

// submatchInto stores rx's submatches of s in *m and reports whether rx matched, so a
// switch case can test a regexp and keep its submatches with one search.
func submatchInto(rx *regexp.Regexp, s string, m *[]string) bool {
	*m = rx.FindStringSubmatch(s)
	return *m != nil
}

// armPCArch tells 32-bit ARM's register line ("pc : [<c0a2d832>]    lr : [<…>]    psr:
// 600000d3") from old arm64's ("pc : [<ffffffc000085f48>] lr : [<…>] pstate: 600001c5"):
// by the psr/pstate name, else by the width of the pc.
func armPCArch(t string) string {
	switch {
	case strings.Contains(t, "pstate"):
		return "arm64"
	case strings.Contains(t, "psr:"):
		return "arm"
	}
	if m := armPCLine.FindStringSubmatch(t); m != nil && m[1] == "pc" && len(m[2]) <= 8 {
		return "arm"
	}
	return "arm64"
}
