package crashcmd

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strings"

	"github.com/kcrash/kcrash/internal/kernel"
)

func init() {
	register(&Command{Name: "net", Synopsis: "network devices of init_net and their IPv4 addresses", Run: runNet})
	register(&Command{Name: "runq", Synopsis: "each CPU's run queue: current task, RT and CFS queued tasks", Run: runRunq})
}

// NetDev is one network device of net's answer.
type NetDev struct {
	Addr  uint64   `json:"addr"`
	Name  string   `json:"name"`
	Addrs []string `json:"ipv4"`
}

// NetDevices walks init_net.dev_base_head (struct net_device.dev_list) and
// each device's in_device ifa_list chain (struct in_ifaddr: ifa_next,
// ifa_local).
func (s *Session) NetDevices() ([]NetDev, error) {
	k, v := s.K, s.K.Vmlinux
	init, err := k.Addr("init_net")
	if err != nil {
		return nil, err
	}
	head, _, err := v.MemberOffset("net", "dev_base_head")
	if err != nil {
		return nil, err
	}
	o, err := v.Offsets("net_device", "dev_list", "name", "ip_ptr")
	if err != nil {
		return nil, err
	}
	io, err := v.Offsets("in_device", "ifa_list")
	if err != nil {
		return nil, err
	}
	fo, err := v.Offsets("in_ifaddr", "ifa_next", "ifa_local")
	if err != nil {
		return nil, err
	}
	nodes, werr := k.ListWalk(init+uint64(head), 0, 1<<16)
	var out []NetDev
	for _, n := range nodes[1:] {
		d := NetDev{Addr: n - uint64(o[0])}
		d.Name, _ = k.CString(d.Addr+uint64(o[1]), 16)
		if ind, err := k.U64(d.Addr + uint64(o[2])); err == nil && ind != 0 {
			ifa, _ := k.U64(ind + uint64(io[0]))
			for i := 0; ifa != 0 && i < 256; i++ {
				var b [4]byte
				if _, err := k.ReadAt(b[:], ifa+uint64(fo[1])); err != nil {
					break
				}
				d.Addrs = append(d.Addrs, netip.AddrFrom4(b).String())
				if ifa, err = k.U64(ifa + uint64(fo[0])); err != nil {
					break
				}
			}
		}
		out = append(out, d)
	}
	return out, werr
}

func runNet(s *Session, w io.Writer, args []string) error {
	if len(args) != 0 {
		return errors.New("net: usage: net")
	}
	devs, err := s.NetDevices()
	if err != nil && devs == nil {
		return err
	}
	if s.JSON {
		return json.NewEncoder(w).Encode(devs)
	}
	fmt.Fprintln(w, "   NET_DEVICE     NAME   IP ADDRESS(ES)")
	for _, d := range devs {
		fmt.Fprintf(w, "%16x  %-6s %s\n", d.Addr, d.Name, strings.Join(d.Addrs, ", "))
	}
	return err
}

// RunqTask is a queued task of runq's answer.
type RunqTask struct {
	Prio int          `json:"prio"`
	Task *kernel.Task `json:"task"`
}

// CFSQueue is a CFS run queue (a cfs_rq's tasks_timeline) and its entities:
// tasks and, with group scheduling, the queues of task groups.
type CFSQueue struct {
	CfsRq  uint64      `json:"cfs_rq"`
	Root   uint64      `json:"rb_root"`
	Tasks  []RunqTask  `json:"tasks"`
	Groups []*CFSQueue `json:"groups,omitempty"`
}

// Runq is one CPU's run queue.
type Runq struct {
	CPU     int          `json:"cpu"`
	Addr    uint64       `json:"rq"`
	Current *kernel.Task `json:"current"`
	RTArray uint64       `json:"rt_prio_array"`
	RT      []RunqTask   `json:"rt"`
	CFS     *CFSQueue    `json:"cfs"`
}

type runqLayout struct {
	curr, rt, rtActive, cfs, timeline, queue, runList, taskRT, taskSE, runNode, myQ, prio, queueSize int64
	nQueue                                                                                           int64
}

func (s *Session) runqLayout() (*runqLayout, error) {
	v := s.K.Vmlinux
	l := &runqLayout{}
	var err error
	set := func(p *int64, typ, member string) {
		if err == nil {
			*p, _, err = v.MemberOffset(typ, member)
		}
	}
	set(&l.curr, "rq", "curr")
	set(&l.rt, "rq", "rt")
	set(&l.rtActive, "rt_rq", "active")
	set(&l.cfs, "rq", "cfs")
	set(&l.timeline, "cfs_rq", "tasks_timeline")
	set(&l.queue, "rt_prio_array", "queue")
	set(&l.runList, "sched_rt_entity", "run_list")
	set(&l.taskRT, "task_struct", "rt")
	set(&l.taskSE, "task_struct", "se")
	set(&l.runNode, "sched_entity", "run_node")
	set(&l.myQ, "sched_entity", "my_q")
	set(&l.prio, "task_struct", "prio")
	if err != nil {
		return nil, err
	}
	// queue is struct list_head queue[MAX_RT_PRIO]: its count from its size.
	_, qt, err := v.Member("rt_prio_array", "queue")
	if err != nil {
		return nil, err
	}
	l.nQueue = min(qt.Size()/16, 1024)
	return l, nil
}

// Runqueues reads every present CPU's struct rq (per-CPU runqueues).
func (s *Session) Runqueues() ([]*Runq, error) {
	k := s.K
	l, err := s.runqLayout()
	if err != nil {
		return nil, err
	}
	// Every present CPU, as crash: panic takes the others offline.
	cpus, err := k.PresentCPUs()
	if err != nil || len(cpus) == 0 {
		cpus = []int{0}
	}
	var out []*Runq
	for _, c := range cpus {
		rq, err := k.PerCPU("runqueues", c)
		if err != nil {
			return nil, err
		}
		r := &Runq{CPU: c, Addr: rq, RTArray: rq + uint64(l.rt+l.rtActive)}
		if cur, err := k.U64(rq + uint64(l.curr)); err == nil {
			if t, err := k.Task(cur); err == nil {
				r.Current = t
			}
		}
		for p := int64(0); p < l.nQueue; p++ {
			head := r.RTArray + uint64(l.queue+16*p)
			nodes, _ := k.ListWalk(head, 0, 1<<16)
			for _, n := range nodes[1:] {
				t, err := k.Task(n - uint64(l.runList) - uint64(l.taskRT))
				if err == nil {
					r.RT = append(r.RT, RunqTask{Prio: s.taskPrio(l, t), Task: t})
				}
			}
		}
		r.CFS = s.cfsQueue(l, rq+uint64(l.cfs), 0)
		out = append(out, r)
	}
	return out, nil
}

func (s *Session) taskPrio(l *runqLayout, t *kernel.Task) int {
	p, _ := s.K.U32(t.Addr + uint64(l.prio))
	return int(int32(p))
}

// cfsQueue walks a cfs_rq's red-black tree in order (struct rb_node:
// __rb_parent_color, rb_right, rb_left), at most 1<<16 nodes, descending
// into group entities (sched_entity.my_q) up to 8 levels.
func (s *Session) cfsQueue(l *runqLayout, cfsRq uint64, depth int) *CFSQueue {
	k := s.K
	q := &CFSQueue{CfsRq: cfsRq, Root: cfsRq + uint64(l.timeline)}
	root, err := k.U64(q.Root)
	if err != nil {
		return q
	}
	var nodes []uint64
	var walk func(n uint64, d int)
	walk = func(n uint64, d int) {
		if n == 0 || d > 64 || len(nodes) >= 1<<16 {
			return
		}
		left, err1 := k.U64(n + 16)
		right, err2 := k.U64(n + 8)
		if err1 != nil || err2 != nil {
			return
		}
		walk(left, d+1)
		nodes = append(nodes, n)
		walk(right, d+1)
	}
	walk(root, 0)
	for _, n := range nodes {
		se := n - uint64(l.runNode)
		if my, err := k.U64(se + uint64(l.myQ)); err == nil && my != 0 {
			if depth < 8 {
				q.Groups = append(q.Groups, s.cfsQueue(l, my, depth+1))
			}
			continue
		}
		t, err := k.Task(se - uint64(l.taskSE))
		if err == nil {
			q.Tasks = append(q.Tasks, RunqTask{Prio: s.taskPrio(l, t), Task: t})
		}
	}
	return q
}

func runRunq(s *Session, w io.Writer, args []string) error {
	if len(args) != 0 {
		return errors.New("runq: usage: runq")
	}
	rqs, err := s.Runqueues()
	if err != nil {
		return err
	}
	if s.JSON {
		return json.NewEncoder(w).Encode(rqs)
	}
	for i, r := range rqs {
		if i > 0 {
			fmt.Fprintln(w)
		}
		fmt.Fprintf(w, "CPU %d RUNQUEUE: %x\n", r.CPU, r.Addr)
		if t := r.Current; t != nil {
			fmt.Fprintf(w, "  CURRENT: PID: %-6d TASK: %x  COMMAND: %q\n", t.PID, t.Addr, t.Comm)
		}
		fmt.Fprintf(w, "  RT PRIO_ARRAY: %x\n", r.RTArray)
		printRunqTasks(w, r.RT, "     ")
		printCFS(w, r.CFS, "  ", "CFS RB_ROOT")
	}
	return nil
}

func printCFS(w io.Writer, q *CFSQueue, indent, title string) {
	fmt.Fprintf(w, "%s%s: %x\n", indent, title, q.Root)
	for _, g := range q.Groups {
		printCFS(w, g, indent+"   ", "GROUP CFS RB_ROOT")
	}
	if len(q.Groups) == 0 || len(q.Tasks) > 0 {
		printRunqTasks(w, q.Tasks, indent+"   ")
	}
}

func printRunqTasks(w io.Writer, ts []RunqTask, indent string) {
	if len(ts) == 0 {
		fmt.Fprintf(w, "%s[no tasks queued]\n", indent)
		return
	}
	for _, t := range ts {
		fmt.Fprintf(w, "%s[%3d] PID: %-6d TASK: %x  COMMAND: %q\n", indent, t.Prio, t.Task.PID, t.Task.Addr, t.Task.Comm)
	}
}
