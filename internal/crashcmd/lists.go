package crashcmd

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/kcrash/kcrash/internal/kernel"
)

func init() {
	register(&Command{Name: "list", Synopsis: "walk a list_head or hlist chain: list [STRUCT.MEMBER|-o OFF] [-s STRUCT[.m,…]] [-h|-H] ADDR|SYMBOL", Run: runList})
	register(&Command{Name: "task", Synopsis: "a task's task_struct: task [-R member[,member…]] [PID|TASK]…", Run: runTask})
	register(&Command{Name: "foreach", Synopsis: "run bt for every task: foreach [PID|COMM|RU|IN|UN|…|kernel|user|active]… bt", Run: runForeach})
}

// ListOut is list's answer: the entries (structure addresses) and why the walk stopped early.
type ListOut struct {
	Entries []uint64 `json:"entries"`
	Stopped string   `json:"stopped,omitempty"`
}

// runList walks a list as crash's list command does. The START is a
// structure whose next pointer sits at the member's offset (walked until
// NULL or back to START); with -h it is a structure with an embedded
// list_head at the offset, and with -H a bare list_head (struct list_head
// or hlist_head), which is not printed. Walks stop at a repeated node or at
// kernel.DefaultListCap nodes (-c N sets the cap), and say so.
func runList(s *Session, w io.Writer, args []string) error {
	var off int64
	var structName, members string
	mode := ""
	maxN := 0
	var start string
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "-h" || a == "-H":
			mode = a
		case (a == "-o" || a == "-s" || a == "-c") && i+1 < len(args):
			i++
			switch a {
			case "-o":
				o, err := s.offsetArg(args[i])
				if err != nil {
					return err
				}
				off = o
			case "-s":
				structName, members, _ = strings.Cut(args[i], ".")
			case "-c":
				n, err := strconv.Atoi(args[i])
				if err != nil || n <= 0 {
					return fmt.Errorf("list: -c %q: not a positive count", args[i])
				}
				maxN = n
			}
		case strings.Contains(a, ".") && !isHexWord(a) && start == "" && i+1 < len(args):
			o, err := s.offsetArg(a)
			if err != nil {
				return err
			}
			off = o
		case start == "":
			start = a
		default:
			return fmt.Errorf("list: unexpected %q", a)
		}
	}
	if start == "" {
		return errors.New("list: usage: list [STRUCT.MEMBER|-o OFFSET] [-s STRUCT[.member,…]] [-h|-H] [-c MAX] ADDR|SYMBOL")
	}
	addr, err := s.addrOrSymbol(start)
	if err != nil {
		return err
	}
	var nodes []uint64
	var werr error
	switch mode {
	case "-H":
		// A bare head: list_head.next, or hlist_head.first, both at offset 0.
		nodes, werr = s.K.ListWalk(addr, 0, maxN+1)
		nodes = nodes[1:]
	case "-h":
		nodes, werr = s.K.ListWalk(addr+uint64(off), 0, maxN)
	default:
		var raw []uint64
		raw, werr = s.K.ListWalk(addr, off, maxN)
		for _, n := range raw {
			nodes = append(nodes, n+uint64(off))
		}
	}
	out := &ListOut{}
	for _, n := range nodes {
		out.Entries = append(out.Entries, n-uint64(off))
	}
	if werr != nil {
		out.Stopped = werr.Error()
	}
	if s.JSON {
		return json.NewEncoder(w).Encode(out)
	}
	for _, e := range out.Entries {
		fmt.Fprintf(w, "%x\n", e)
		if structName != "" {
			if err := s.printStruct(w, structName, members, e); err != nil {
				return err
			}
		}
	}
	if werr != nil {
		fmt.Fprintf(w, "list: walk stopped: %v\n", werr)
		if errors.Is(werr, kernel.ErrListCycle) {
			return werr
		}
	}
	return nil
}

// offsetArg reads an offset: a number (decimal, or hex with 0x) or STRUCT.MEMBER.
func (s *Session) offsetArg(a string) (int64, error) {
	if typ, member, ok := strings.Cut(a, "."); ok && !strings.HasPrefix(a, "0x") {
		off, _, err := s.K.Vmlinux.MemberOffset(typ, member)
		return off, err
	}
	if strings.HasPrefix(a, "0x") {
		v, err := parseHex(a)
		return int64(v), err
	}
	return strconv.ParseInt(a, 10, 64)
}

// printStruct prints a struct at addr as `struct` does: the whole struct, or
// the members given ("m1,m2").
func (s *Session) printStruct(w io.Writer, typ, members string, addr uint64) error {
	t, err := s.K.Vmlinux.Type(typ)
	if err != nil {
		return err
	}
	if members == "" {
		fmt.Fprintf(w, "%s %s\n", t.String(), s.value(t, addr, "", 0))
		return nil
	}
	for _, member := range strings.Split(members, ",") {
		off, mt, err := s.K.Vmlinux.Member(typ, member)
		if err != nil {
			return err
		}
		fmt.Fprintf(w, "  %s = %s,\n", member, s.value(mt, addr+uint64(off), "  ", 0))
	}
	return nil
}

// taskArgs resolves PIDs and task addresses; none means the panic task.
func (s *Session) taskArgs(args []string) ([]*kernel.Task, error) {
	if len(args) == 0 {
		t, _, err := s.K.PanicTask()
		if err != nil {
			return nil, err
		}
		return []*kernel.Task{t}, nil
	}
	var out []*kernel.Task
	for _, a := range args {
		t, err := s.findTask(a)
		if err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, nil
}

func taskHeader(t *kernel.Task) string {
	return fmt.Sprintf("PID: %-8d TASK: %x  CPU: %-4d COMMAND: %q", t.PID, t.Addr, t.CPU, t.Comm)
}

// runTask prints task_struct of each task as crash's task does: its header
// line, then the struct (or the -R members).
func runTask(s *Session, w io.Writer, args []string) error {
	members := ""
	var rest []string
	for i := 0; i < len(args); i++ {
		if args[i] == "-R" && i+1 < len(args) {
			members = args[i+1]
			i++
			continue
		}
		rest = append(rest, args[i])
	}
	ts, err := s.taskArgs(rest)
	if err != nil {
		return err
	}
	if s.JSON {
		type taskOut struct {
			Task    *kernel.Task      `json:"task"`
			Members map[string]string `json:"members,omitempty"`
		}
		var out []taskOut
		for _, t := range ts {
			o := taskOut{Task: t}
			if members != "" {
				o.Members = map[string]string{}
				for _, m := range strings.Split(members, ",") {
					off, mt, err := s.K.Vmlinux.Member("task_struct", m)
					if err != nil {
						return err
					}
					o.Members[m] = s.value(mt, t.Addr+uint64(off), "  ", 0)
				}
			}
			out = append(out, o)
		}
		return json.NewEncoder(w).Encode(out)
	}
	for i, t := range ts {
		if i > 0 {
			fmt.Fprintln(w)
		}
		fmt.Fprintln(w, taskHeader(t))
		if err := s.printStruct(w, "task_struct", members, t.Addr); err != nil {
			return err
		}
	}
	return nil
}

// runForeach runs bt for the tasks the filters select (all without filters):
// PIDs, command names, crash's state letters (RU, IN, UN, …), kernel (kernel
// threads), user (the others) or active (running on a CPU).
func runForeach(s *Session, w io.Writer, args []string) error {
	if len(args) == 0 || args[len(args)-1] != "bt" {
		return errors.New("foreach: usage: foreach [PID|COMM|STATE|kernel|user|active]… bt")
	}
	filters := args[:len(args)-1]
	ts, err := s.K.Tasks()
	if err != nil {
		return err
	}
	pt, _, _ := s.K.PanicTask()
	var bts []*Backtrace
	for _, t := range ts {
		if !foreachMatch(t, filters) {
			continue
		}
		bts = append(bts, s.Backtrace(t, pt != nil && pt.Addr == t.Addr))
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

func foreachMatch(t *kernel.Task, filters []string) bool {
	if len(filters) == 0 {
		return true
	}
	for _, f := range filters {
		switch {
		case f == "kernel" && t.Kthread, f == "user" && !t.Kthread, f == "active" && t.Active:
			return true
		case len(f) == 2 && strings.ToUpper(f) == f && t.State == f:
			return true
		case f == strconv.Itoa(int(t.PID)), f == t.Comm:
			return true
		}
	}
	return false
}
