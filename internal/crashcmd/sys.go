package crashcmd

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

func init() {
	register(&Command{Name: "sys", Synopsis: "system data: kernel, dump, CPUs, date, uptime, load, tasks, utsname, memory, panic", Run: runSys})
	register(&Command{Name: "log", Synopsis: "the kernel log; -T wall-clock times", Run: runLog})
}

// SysInfo is what `sys` prints, field by field.
type SysInfo struct {
	Kernel, Dumpfile                    string
	CPUs                                int
	Offline                             int
	Date                                string
	Uptime                              string
	LoadAverage                         string
	Tasks                               int
	Nodename, Release, Version, Machine string
	Memory                              string
	Panic                               string
}

// Sys gathers the sys header.
func (s *Session) Sys() (*SysInfo, error) {
	k := s.K
	si := &SysInfo{Kernel: s.VmlinuxPath, Dumpfile: s.DumpPath}
	if a, err := k.Addr("tainted_mask"); err == nil {
		if v, err := k.U64(a); err == nil && v != 0 {
			si.Kernel += "  [TAINTED]"
		}
	}
	if d := k.Dump.Kdump; d != nil && d.DumpLevel > 0 {
		si.Dumpfile += "  [PARTIAL DUMP]"
	}
	cpus, err := k.OnlineCPUs()
	if err != nil {
		return nil, err
	}
	si.CPUs = len(cpus)
	if present, err := k.PresentCPUs(); err == nil && len(present) > len(cpus) {
		// After panic() stops the other CPUs they leave the online mask; crash
		// counts the present ones and says how many are offline.
		si.CPUs = len(present)
		si.Offline = len(present) - len(cpus)
	}
	xtime, mono := s.clock()
	if xtime != 0 {
		si.Date = time.Unix(xtime, 0).UTC().Format("Mon Jan _2 15:04:05 MST 2006")
	}
	if j, ok := s.jiffiesUptime(); ok {
		mono = j
	}
	si.Uptime = uptime(mono)
	si.LoadAverage = s.loadAverage()
	if ts, err := k.Tasks(); err == nil {
		si.Tasks = len(ts)
	}
	uts := s.utsname()
	si.Nodename, si.Release, si.Version = uts[1], uts[2], uts[3]
	si.Machine = uts[4]
	if a, err := k.Addr("cpu_khz"); err == nil {
		if v, err := k.U32(a); err == nil {
			si.Machine += fmt.Sprintf("  (%d Mhz)", v/1000)
		}
	}
	si.Memory = s.memory()
	si.Panic = s.panicMessage()
	return si, nil
}

// clock returns the wall-clock seconds at the dump (VMCOREINFO CRASHTIME,
// else tk_core.timekeeper.xtime_sec) and the monotonic seconds since boot
// (xtime_sec + wall_to_monotonic.tv_sec; kernel/time/timekeeping.c).
func (s *Session) clock() (wall, mono int64) {
	k := s.K
	// kernel/time/timekeeping.c: static struct { seqcount_raw_spinlock_t seq;
	// struct timekeeper timekeeper; } tk_core: the timekeeper follows the
	// 4-byte sequence at its 8-byte alignment.
	tk, err := k.Addr("tk_core")
	if err != nil {
		return 0, 0
	}
	tk += 8
	off, _, err1 := k.Vmlinux.MemberOffset("timekeeper", "xtime_sec")
	w2m, _, err2 := k.Vmlinux.MemberOffset("timekeeper", "wall_to_monotonic.tv_sec")
	if err1 != nil || err2 != nil {
		return 0, 0
	}
	x, _ := k.U64(tk + uint64(off))
	m, _ := k.U64(tk + uint64(w2m))
	wall, mono = int64(x), int64(x)+int64(m)
	if c, ok := k.Info["CRASHTIME"]; ok {
		if v, err := strconv.ParseInt(c, 10, 64); err == nil {
			wall = v
		}
	}
	return wall, mono
}

// jiffiesUptime is the uptime as crash computes it: jiffies_64 less
// INITIAL_JIFFIES ((u32)-300*HZ; include/linux/jiffies.h), over HZ, where HZ is
// recovered from tick_nsec = (NSEC_PER_SEC + HZ/2) / HZ (kernel/time/ntp.c).
func (s *Session) jiffiesUptime() (int64, bool) {
	k := s.K
	j, err := k.SymU64("jiffies_64")
	if err != nil {
		return 0, false
	}
	a, err := k.Addr("tick_nsec")
	if err != nil {
		return 0, false
	}
	tn, err := k.U64(a)
	if err != nil || tn == 0 {
		return 0, false
	}
	hz := (1_000_000_000 + tn/2) / tn
	if hz == 0 || hz > 10000 {
		return 0, false
	}
	initial := uint64(uint32(-300 * int64(hz)))
	return int64((j - initial) / hz), true
}

func uptime(sec int64) string {
	if sec < 0 {
		sec = 0
	}
	d, h, m, s := sec/86400, sec/3600%24, sec/60%60, sec%60
	if d > 0 {
		return fmt.Sprintf("%d days, %02d:%02d:%02d", d, h, m, s)
	}
	return fmt.Sprintf("%02d:%02d:%02d", h, m, s)
}

// loadAverage reads avenrun[3] (fixed point, FSHIFT 11; include/linux/sched/loadavg.h)
// and rounds as the kernel's /proc/loadavg does.
func (s *Session) loadAverage() string {
	a, err := s.K.Addr("avenrun")
	if err != nil {
		return ""
	}
	var parts []string
	for i := uint64(0); i < 3; i++ {
		v, err := s.K.U64(a + 8*i)
		if err != nil {
			return ""
		}
		v += 2048 / 200
		parts = append(parts, fmt.Sprintf("%d.%02d", v>>11, (v&2047)*100>>11))
	}
	return strings.Join(parts, ", ")
}

// utsname reads init_uts_ns.name (struct new_utsname: six 65-byte strings).
func (s *Session) utsname() [6]string {
	var out [6]string
	k := s.K
	a, err := k.Addr("init_uts_ns")
	if err != nil {
		return out
	}
	off, _, err := k.Vmlinux.MemberOffset("uts_namespace", "name")
	if err != nil {
		return out
	}
	for i := range out {
		out[i], _ = k.CString(a+uint64(off)+uint64(65*i), 65)
	}
	return out
}

// memory sums the nodes' present pages (include/linux/mmzone.h: struct
// pglist_data.node_present_pages, through node_data[]).
func (s *Session) memory() string {
	k := s.K
	off, _, err := k.Vmlinux.MemberOffset("pglist_data", "node_present_pages")
	if err != nil {
		return ""
	}
	nd, err := k.Addr("node_data")
	if err != nil {
		return ""
	}
	var pages uint64
	for i := uint64(0); i < 1024; i++ {
		p, err := k.U64(nd + 8*i)
		if err != nil || p == 0 {
			break
		}
		n, err := k.U64(p + uint64(off))
		if err != nil {
			break
		}
		pages += n
	}
	return sizeString(pages * 4096)
}

func sizeString(b uint64) string {
	f := func(v float64, unit string) string {
		s := strconv.FormatFloat(v, 'f', 1, 64)
		return strings.TrimSuffix(s, ".0") + " " + unit
	}
	switch {
	case b >= 1<<30:
		return f(float64(b)/(1<<30), "GB")
	case b >= 1<<20:
		return f(float64(b)/(1<<20), "MB")
	}
	return f(float64(b)/(1<<10), "KB")
}

// panicMessage follows crash's choice: an oops line ("Oops: …", "general
// protection fault…", "kernel BUG at …", "BUG: unable to handle…"), else the
// "Kernel panic - not syncing: …" line; "Oops:" lines get crash's "(check log
// for details)".
func (s *Session) panicMessage() string {
	recs, err := s.K.Log()
	if err != nil {
		return ""
	}
	for _, p := range []string{"Oops: ", "kernel BUG at", "general protection fault", "BUG: unable to handle"} {
		for _, r := range recs {
			t := string(r.Text)
			if strings.HasPrefix(t, p) {
				line, _, _ := strings.Cut(t, "\n")
				if p == "Oops: " {
					return strconv.Quote(line) + " (check log for details)"
				}
				return strconv.Quote(line)
			}
		}
	}
	for i := len(recs) - 1; i >= 0; i-- {
		t := recs[i].Text
		if bytes.HasPrefix(t, []byte("Kernel panic - not syncing")) {
			line, _, _ := bytes.Cut(t, []byte("\n"))
			return strconv.Quote(strings.TrimRight(string(line), " \n"))
		}
	}
	return ""
}

func runSys(s *Session, w io.Writer, args []string) error {
	si, err := s.Sys()
	if err != nil {
		return err
	}
	if s.JSON {
		return json.NewEncoder(w).Encode(si)
	}
	row := func(k, v string) { fmt.Fprintf(w, "%12s: %s\n", k, v) }
	row("KERNEL", si.Kernel)
	row("DUMPFILE", si.Dumpfile)
	cpus := strconv.Itoa(si.CPUs)
	if si.Offline > 0 {
		cpus += fmt.Sprintf(" [OFFLINE: %d]", si.Offline)
	}
	row("CPUS", cpus)
	row("DATE", si.Date)
	row("UPTIME", si.Uptime)
	row("LOAD AVERAGE", si.LoadAverage)
	row("TASKS", strconv.Itoa(si.Tasks))
	row("NODENAME", si.Nodename)
	row("RELEASE", si.Release)
	row("VERSION", si.Version)
	row("MACHINE", si.Machine)
	row("MEMORY", si.Memory)
	row("PANIC", si.Panic)
	return nil
}

func runLog(s *Session, w io.Writer, args []string) error {
	wall := false
	for _, a := range args {
		switch a {
		case "-T":
			wall = true
		default:
			return fmt.Errorf("log: unknown option %s (supported: -T)", a)
		}
	}
	recs, err := s.K.Log()
	if err != nil {
		return err
	}
	if s.JSON {
		type rec struct {
			Seq    uint64 `json:"seq"`
			TsNsec uint64 `json:"ts_nsec"`
			Level  uint8  `json:"level"`
			Text   string `json:"text"`
		}
		out := make([]rec, len(recs))
		for i, r := range recs {
			out[i] = rec{r.Seq, r.TsNsec, r.Level, string(r.Text)}
		}
		return json.NewEncoder(w).Encode(out)
	}
	var boot int64
	if wall {
		x, mono := s.clock()
		boot = x - mono
	}
	var b bytes.Buffer
	for _, r := range recs {
		b.Reset()
		if wall {
			t := time.Unix(boot, int64(r.TsNsec)).UTC()
			fmt.Fprintf(&b, "[%s] ", t.Format("Mon Jan _2 15:04:05 MST 2006"))
		} else {
			fmt.Fprintf(&b, "[%5d.%06d] ", r.TsNsec/1e9, r.TsNsec%1e9/1000)
		}
		indent := b.Len()
		writeIndented(&b, r.Text, indent)
		b.WriteByte('\n')
		if _, err := w.Write(b.Bytes()); err != nil {
			return err
		}
	}
	return nil
}

// writeIndented writes text, continuing each embedded line under the prefix.
func writeIndented(b *bytes.Buffer, text []byte, indent int) {
	for {
		line, rest, more := bytes.Cut(text, []byte("\n"))
		b.Write(line)
		if !more {
			return
		}
		b.WriteByte('\n')
		b.WriteString(strings.Repeat(" ", indent))
		text = rest
	}
}
