package crashcmd

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/kcrash/kcrash/internal/kernel"
)

func init() {
	register(&Command{Name: "ps", Synopsis: "every task: PID, PPID, CPU, task address, state, memory, command", Run: runPs})
	register(&Command{Name: "bt", Synopsis: "kernel stack of the panic task; -a every CPU's active task; PID or task address", Run: runBt})
}

func runPs(s *Session, w io.Writer, args []string) error {
	ts, err := s.K.Tasks()
	if err != nil {
		return err
	}
	if s.JSON {
		return json.NewEncoder(w).Encode(ts)
	}
	total := s.K.TotalRAMKB()
	fmt.Fprintln(w, "      PID    PPID  CPU       TASK        ST  %MEM      VSZ      RSS  COMM")
	for _, t := range ts {
		mark := " "
		if t.Active {
			mark = ">"
		}
		pct := 0.0
		if total > 0 {
			pct = float64(t.RSS) * 100 / float64(total)
		}
		comm := t.Comm
		if t.Kthread {
			comm = "[" + comm + "]"
		}
		fmt.Fprintf(w, "%s%8d %7d %3d  %16x  %s %5.1f %8d %8d  %s\n", mark, t.PID, t.PPID, t.CPU, t.Addr, t.State, pct, t.VSZ, t.RSS, comm)
	}
	return nil
}

// BtFrame is one printed frame of bt.
type BtFrame struct {
	Level  int            `json:"level"`
	SP     uint64         `json:"sp"`
	IP     uint64         `json:"ip"`
	Func   string         `json:"func"`
	Offset uint64         `json:"offset"`
	Module string         `json:"module,omitempty"`
	Regs   *kernel.PtRegs `json:"regs,omitempty"`
	// A64 are the registers of an arm64 exception frame taken here.
	A64 *kernel.A64Regs `json:"a64_regs,omitempty"`
}

// Backtrace is bt's answer for one task.
type Backtrace struct {
	Task   *kernel.Task `json:"task"`
	Frames []BtFrame    `json:"frames"`
	Err    string       `json:"error,omitempty"`
}

// Backtrace unwinds a task. For the panic task the frames above panic()
// (its delay loop) are dropped, as crash starts there.
func (s *Session) Backtrace(t *kernel.Task, panicTask bool) *Backtrace {
	bt := &Backtrace{Task: t}
	fr, err := s.K.TaskFrames(t)
	if err != nil {
		bt.Err = err.Error()
	}
	start := 0
	for i, f := range fr {
		if i > 0 && f.Exact && fr[i-1].Regs != nil {
			continue // the interrupted IP is the [exception RIP: …] line, as in crash
		}
		name, off, mod := s.symName(f.IP)
		if !f.Exact && off == 0 {
			// A return address just past a noreturn call names the next symbol:
			// name the caller by the call instruction's last byte instead.
			name, _, mod = s.symName(f.IP - 1)
			_, off, _ = s.symName(f.IP - 1)
			off++
		}
		bt.Frames = append(bt.Frames, BtFrame{Level: i, SP: f.SP, IP: f.IP, Func: name, Offset: off, Module: mod, Regs: f.Regs, A64: f.A64})
		if panicTask && name == "panic" && start == 0 {
			start = len(bt.Frames) - 1
		}
	}
	bt.Frames = bt.Frames[start:]
	for i := range bt.Frames {
		bt.Frames[i].Level = i
	}
	return bt
}

func runBt(s *Session, w io.Writer, args []string) error {
	k := s.K
	var bts []*Backtrace
	switch {
	case len(args) == 1 && args[0] == "-a":
		cpus, err := k.OnlineCPUs()
		if err != nil {
			return err
		}
		pcpu := k.PanicCPU()
		for _, c := range cpus {
			cur, err := k.CurrentTask(c)
			if err != nil {
				return err
			}
			t, err := k.Task(cur)
			if err != nil {
				return err
			}
			t.CPU = c
			bts = append(bts, s.Backtrace(t, c == pcpu))
		}
	case len(args) == 1:
		t, err := s.findTask(args[0])
		if err != nil {
			return err
		}
		pt, _, _ := k.PanicTask()
		bts = append(bts, s.Backtrace(t, pt != nil && pt.Addr == t.Addr))
	case len(args) == 0:
		t, _, err := k.PanicTask()
		if err != nil {
			return fmt.Errorf("bt: no panic task: %w", err)
		}
		bts = append(bts, s.Backtrace(t, true))
	default:
		return fmt.Errorf("bt: usage: bt [-a | PID | TASK]")
	}
	if s.JSON {
		return json.NewEncoder(w).Encode(bts)
	}
	for i, bt := range bts {
		if i > 0 {
			fmt.Fprintln(w)
		}
		s.printBt(w, bt)
	}
	return nil
}

// findTask takes a PID or a task_struct address.
func (s *Session) findTask(arg string) (*kernel.Task, error) {
	ts, err := s.K.Tasks()
	if err != nil {
		return nil, err
	}
	if pid, err := strconv.Atoi(arg); err == nil {
		for _, t := range ts {
			if int(t.PID) == pid {
				return t, nil
			}
		}
		return nil, fmt.Errorf("no task with PID %d", pid)
	}
	a, err := parseHex(arg)
	if err != nil {
		return nil, err
	}
	for _, t := range ts {
		if t.Addr == a {
			return t, nil
		}
	}
	return nil, fmt.Errorf("no task at %#x", a)
}

func (s *Session) printBt(w io.Writer, bt *Backtrace) {
	t := bt.Task
	fmt.Fprintf(w, "PID: %-8d TASK: %x  CPU: %-4d COMMAND: %q\n", t.PID, t.Addr, t.CPU, t.Comm)
	for i, f := range bt.Frames {
		name := f.Func
		if name == "" {
			name = "(unknown)"
		}
		mod := ""
		if f.Module != "" {
			mod = " [" + f.Module + "]"
		}
		fmt.Fprintf(w, "%3s [%x] %s at %x%s\n", "#"+strconv.Itoa(f.Level), f.SP, name, f.IP, mod)
		if f.Regs != nil {
			s.printRegs(w, f.Regs, i+1 < len(bt.Frames))
		}
		if f.A64 != nil {
			s.printA64Regs(w, f.A64)
		}
	}
	if bt.Err != "" {
		fmt.Fprintf(w, "bt: %s\n", bt.Err)
	}
}

// printRegs prints an exception frame in crash's layout; kernel-mode frames
// start with the [exception RIP: …] line.
func (s *Session) printRegs(w io.Writer, r *kernel.PtRegs, kernelMode bool) {
	if !r.UserMode() {
		name, off, _ := s.symName(r.IP)
		switch {
		case name == "":
			name = "unknown or invalid address"
		case off != 0:
			name += "+" + strconv.FormatUint(off, 10)
		}
		fmt.Fprintf(w, "    [exception RIP: %s]\n", name)
	}
	fmt.Fprintf(w, "    RIP: %016x  RSP: %016x  RFLAGS: %08x\n", r.IP, r.SP, r.Flags)
	fmt.Fprintf(w, "    RAX: %016x  RBX: %016x  RCX: %016x\n", r.AX, r.BX, r.CX)
	fmt.Fprintf(w, "    RDX: %016x  RSI: %016x  RDI: %016x\n", r.DX, r.SI, r.DI)
	fmt.Fprintf(w, "    RBP: %016x   R8: %016x   R9: %016x\n", r.BP, r.R8, r.R9)
	fmt.Fprintf(w, "    R10: %016x  R11: %016x  R12: %016x\n", r.R10, r.R11, r.R12)
	fmt.Fprintf(w, "    R13: %016x  R14: %016x  R15: %016x\n", r.R13, r.R14, r.R15)
	fmt.Fprintf(w, "    ORIG_RAX: %016x  CS: %04x  SS: %04x\n", r.OrigAX, r.CS, r.SS)
}

// printA64Regs prints an arm64 exception frame in crash's layout (arm64.c:
// arm64_print_exception_frame): PC, LR, SP and PSTATE, then X29 down to X0.
func (s *Session) printA64Regs(w io.Writer, r *kernel.A64Regs) {
	sym := func(a uint64) string {
		name, off, _ := s.symName(a)
		if name == "" {
			return ""
		}
		return fmt.Sprintf("  [%s+%d]", name, off)
	}
	fmt.Fprintf(w, "     PC: %016x%s\n", r.PC, sym(r.PC))
	fmt.Fprintf(w, "     LR: %016x%s\n", r.X[30], sym(r.X[30]))
	fmt.Fprintf(w, "     SP: %016x  PSTATE: %08x\n", r.SP, r.PState)
	for i := 29; i >= 0; i -= 3 {
		var b strings.Builder
		for j := i; j > i-3 && j >= 0; j-- {
			sep := "  "
			if j == i {
				sep = "    "
			}
			fmt.Fprintf(&b, "%s%3s: %016x", sep, "X"+strconv.Itoa(j), r.X[j])
		}
		fmt.Fprintf(w, "%s\n", b.String())
	}
}
