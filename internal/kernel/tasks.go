package kernel

import (
	"fmt"
	"sort"
	"strings"
)

// Task is one task_struct (include/linux/sched.h).
type Task struct {
	Addr     uint64
	PID      int32
	TGID     int32
	PPID     int32
	Comm     string
	State    string // crash's two-letter state: RU IN UN ST TR ZO DE ID PA WA NE
	CPU      int
	Kthread  bool
	Active   bool   // current on its CPU at the time of the dump
	Stack    uint64 // task->stack, the base of its kernel stack
	SP       uint64 // task->thread.sp, the saved stack pointer when switched out
	Mm       uint64
	VSZ, RSS uint64 // KiB
	// rssDelta is the task's unsynced SPLIT_RSS_COUNTING counters
	// (task_struct.rss_stat, before 6.2), in pages; Tasks adds every
	// thread's to its mm's RSS as crash does.
	rssDelta int64
}

// pfKthread is PF_KTHREAD (include/linux/sched.h).
const pfKthread = 0x00200000

// maxTasks bounds list walks on corrupt lists.
const maxTasks = 1 << 20

// taskLayout holds the task_struct member offsets used here.
type taskLayout struct {
	tasks, pid, tgid, comm, state, parent, stack, sp, cpu, flags, mm, exit, threads int64
	threadHead                                                                      int64 // signal_struct.thread_head when threads use thread_node
	signal                                                                          int64
	totalVM, rss                                                                    int64
	// 6.2+: rss_stat is struct percpu_counter[NR_MM_COUNTERS]; pcpuSize is its
	// size, pcpuCount and pcpuCounters the offsets of count and counters.
	pcpuSize, pcpuCount, pcpuCounters int64
	taskRSS                           int64 // task_struct.rss_stat (struct task_rss_stat: int events; int count[]), 0 when absent
}

func (k *Kernel) taskLayout() (*taskLayout, error) {
	v := k.Vmlinux
	sp := "thread.sp"
	if _, _, err := v.MemberOffset("task_struct", sp); err != nil {
		sp = "thread.cpu_context.sp" // arm64
	}
	o, err := v.Offsets("task_struct", "tasks", "pid", "tgid", "comm", "real_parent", "stack", sp, "flags", "flags", "mm", "exit_state")
	if err != nil {
		return nil, err
	}
	l := &taskLayout{tasks: o[0], pid: o[1], tgid: o[2], comm: o[3], parent: o[4], stack: o[5], sp: o[6], cpu: o[7], flags: o[8], mm: o[9], exit: o[10]}
	// The CPU is thread_info.cpu with THREAD_INFO_IN_TASK (5.16+), else task_struct.cpu.
	if l.cpu, _, err = v.MemberOffset("task_struct", "thread_info.cpu"); err != nil {
		if l.cpu, _, err = v.MemberOffset("task_struct", "cpu"); err != nil {
			return nil, err
		}
	}
	if l.state, _, err = v.MemberOffset("task_struct", "__state"); err != nil {
		if l.state, _, err = v.MemberOffset("task_struct", "state"); err != nil {
			return nil, err
		}
	}
	if l.threads, _, err = v.MemberOffset("task_struct", "thread_group"); err != nil {
		// 6.7+: threads hang off signal->thread_head through thread_node.
		if l.threads, _, err = v.MemberOffset("task_struct", "thread_node"); err != nil {
			return nil, err
		}
		if l.signal, _, err = v.MemberOffset("task_struct", "signal"); err != nil {
			return nil, err
		}
		if l.threadHead, _, err = v.MemberOffset("signal_struct", "thread_head"); err != nil {
			return nil, err
		}
	}
	if l.totalVM, _, err = v.MemberOffset("mm_struct", "total_vm"); err != nil {
		return nil, err
	}
	l.rss, _, _ = v.MemberOffset("mm_struct", "rss_stat")
	if o, _, err := v.MemberOffset("task_struct", "rss_stat"); err == nil {
		if c, _, err := v.MemberOffset("task_rss_stat", "count"); err == nil {
			l.taskRSS = o + c
		}
	}
	if sz, err := v.Sizeof("percpu_counter"); err == nil {
		if _, rt, err := v.Member("mm_struct", "rss_stat"); err == nil && strings.Contains(rt.String(), "percpu_counter") {
			c1, _, err1 := v.MemberOffset("percpu_counter", "count")
			c2, _, err2 := v.MemberOffset("percpu_counter", "counters")
			if err1 == nil && err2 == nil {
				l.pcpuSize, l.pcpuCount, l.pcpuCounters = sz, c1, c2
			}
		}
	}
	return l, nil
}

// listEach walks a struct list_head starting at head, calling f with each
// node address (not the head's), up to maxTasks nodes, stopping at a cycle
// (ListWalk). The nodes before a broken link are still visited.
func (k *Kernel) listEach(head uint64, f func(node uint64) error) error {
	nodes, werr := k.ListWalk(head, 0, maxTasks+1)
	for _, n := range nodes[1:] {
		if err := f(n); err != nil {
			return err
		}
	}
	if werr != nil {
		return fmt.Errorf("list at %#x: %w", head, werr)
	}
	return nil
}

// Tasks returns every task: init_task's list of thread-group leaders, each
// leader's threads, and each CPU's idle task, sorted by PID then address.
// Cost: DWARF lookups on the first call, then a few reads per task.
func (k *Kernel) Tasks() ([]*Task, error) {
	l, err := k.taskLayout()
	if err != nil {
		return nil, err
	}
	init, err := k.Addr("init_task")
	if err != nil {
		return nil, err
	}
	seen := map[uint64]bool{}
	var addrs []uint64
	add := func(t uint64) {
		if t != 0 && !seen[t] {
			seen[t] = true
			addrs = append(addrs, t)
		}
	}
	add(init)
	err = k.listEach(init+uint64(l.tasks), func(n uint64) error {
		leader := n - uint64(l.tasks)
		add(leader)
		head := leader + uint64(l.threads)
		if l.threadHead != 0 {
			sig, err := k.U64(leader + uint64(l.signal))
			if err != nil {
				return nil
			}
			head = sig + uint64(l.threadHead)
		}
		return k.listEach(head, func(t uint64) error {
			add(t - uint64(l.threads))
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("task list: %w", err)
	}
	// Idle tasks of every present CPU: panic() takes the others offline.
	cpus, err := k.PresentCPUs()
	if err != nil || len(cpus) == 0 {
		cpus = k.cpus()
	}
	active := map[uint64]bool{}
	for _, c := range cpus {
		if rq, err := k.PerCPU("runqueues", c); err == nil {
			if off, _, err := k.Vmlinux.MemberOffset("rq", "idle"); err == nil {
				if idle, err := k.U64(rq + uint64(off)); err == nil {
					add(idle)
				}
			}
		}
		if cur, err := k.CurrentTask(c); err == nil {
			active[cur] = true
		}
	}
	var out []*Task
	delta := map[uint64]int64{}
	for _, a := range addrs {
		t, err := k.readTask(l, a)
		if err != nil {
			continue
		}
		t.Active = active[a]
		out = append(out, t)
		if t.Mm != 0 {
			delta[t.Mm] += t.rssDelta
		}
	}
	for _, t := range out {
		if d := delta[t.Mm]; t.Mm != 0 && d != 0 {
			t.RSS = uint64(max(int64(t.RSS)+d*4, 0))
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].PID != out[j].PID {
			return out[i].PID < out[j].PID
		}
		return out[i].CPU < out[j].CPU
	})
	return out, nil
}

// TotalRAMKB returns _totalram_pages in KiB.
func (k *Kernel) TotalRAMKB() uint64 {
	if a, err := k.Addr("_totalram_pages"); err == nil {
		if n, err := k.U64(a); err == nil {
			return n * 4
		}
	}
	return 0
}

// Task reads one task_struct.
func (k *Kernel) Task(addr uint64) (*Task, error) {
	l, err := k.taskLayout()
	if err != nil {
		return nil, err
	}
	t, err := k.readTask(l, addr)
	if err != nil {
		return nil, err
	}
	for _, c := range k.cpus() {
		if cur, err := k.CurrentTask(c); err == nil && cur == addr {
			t.Active = true
		}
	}
	return t, nil
}

func (k *Kernel) cpus() []int {
	c, err := k.OnlineCPUs()
	if err != nil || len(c) == 0 {
		return []int{0}
	}
	return c
}

func (k *Kernel) readTask(l *taskLayout, a uint64) (*Task, error) {
	t := &Task{Addr: a}
	pid, err := k.U32(a + uint64(l.pid))
	if err != nil {
		return nil, err
	}
	t.PID = int32(pid)
	tgid, _ := k.U32(a + uint64(l.tgid))
	t.TGID = int32(tgid)
	t.Comm, _ = k.CString(a+uint64(l.comm), 16)
	if p, err := k.U64(a + uint64(l.parent)); err == nil && p != 0 {
		pp, _ := k.U32(p + uint64(l.pid))
		t.PPID = int32(pp)
	}
	cpu, _ := k.U32(a + uint64(l.cpu))
	t.CPU = int(cpu)
	flags, _ := k.U32(a + uint64(l.flags))
	t.Kthread = flags&pfKthread != 0
	t.Stack, _ = k.U64(a + uint64(l.stack))
	t.SP, _ = k.U64(a + uint64(l.sp))
	st, _ := k.U32(a + uint64(l.state))
	ex, _ := k.U32(a + uint64(l.exit))
	t.State = stateName(st | ex)
	t.Mm, _ = k.U64(a + uint64(l.mm))
	if t.Mm != 0 {
		if vm, err := k.U64(t.Mm + uint64(l.totalVM)); err == nil {
			t.VSZ = vm * 4
		}
		if l.rss != 0 {
			// crash counts MM_FILEPAGES and MM_ANONPAGES (not MM_SHMEMPAGES, which /proc adds). 6.1 struct mm_rss_stat {atomic_long_t count[NR_MM_COUNTERS]}:
			// MM_FILEPAGES, MM_ANONPAGES, MM_SWAPENTS, MM_SHMEMPAGES.
			var rss int64
			for _, i := range []uint64{0, 1} {
				if l.pcpuSize != 0 {
					rss += k.percpuCounter(l, t.Mm+uint64(l.rss)+uint64(l.pcpuSize)*i)
				} else if n, err := k.U64(t.Mm + uint64(l.rss) + 8*i); err == nil {
					rss += int64(n)
				}
			}
			if l.taskRSS != 0 {
				for _, i := range []uint64{0, 1} {
					if n, err := k.U32(a + uint64(l.taskRSS) + 4*i); err == nil {
						t.rssDelta += int64(int32(n))
					}
				}
			}
			if rss > 0 {
				t.RSS = uint64(rss) * 4
			}
		}
	}
	return t, nil
}

// percpuCounter sums a struct percpu_counter as percpu_counter_sum does:
// count plus every possible CPU's s32 in counters.
func (k *Kernel) percpuCounter(l *taskLayout, pc uint64) int64 {
	n, err := k.U64(pc + uint64(l.pcpuCount))
	if err != nil {
		return 0
	}
	sum := int64(n)
	ctr, err := k.U64(pc + uint64(l.pcpuCounters))
	if err != nil || ctr == 0 {
		return sum
	}
	cpus, err := k.PresentCPUs()
	if err != nil || len(cpus) == 0 {
		cpus = k.cpus()
	}
	for _, c := range cpus {
		off, err := k.PerCPUOffset(c)
		if err != nil {
			continue
		}
		if v, err := k.U32(ctr + off); err == nil {
			sum += int64(int32(v))
		}
	}
	return sum
}

// stateName maps __state | exit_state to crash's letters
// (include/linux/sched.h: TASK_* and EXIT_* bits).
func stateName(s uint32) string {
	switch {
	case s == 0:
		return "RU"
	case s&0x20 != 0:
		return "ZO"
	case s&0x10 != 0:
		return "DE"
	case s&0x402 == 0x402:
		return "ID"
	case s&0x1 != 0:
		return "IN"
	case s&0x2 != 0:
		return "UN"
	case s&0x4 != 0:
		return "ST"
	case s&0x8 != 0:
		return "TR"
	case s&0x40 != 0:
		return "PA"
	case s&0x80 != 0:
		return "DE"
	case s&0x200 != 0:
		return "WA"
	case s&0x800 != 0:
		return "NE"
	}
	return "??"
}

// CurrentTask returns the task running on cpu (Arch.CurrentTask).
func (k *Kernel) CurrentTask(cpu int) (uint64, error) { return k.Arch.CurrentTask(k, cpu) }

// PanicCPU returns the CPU that called panic() (kernel/panic.c: panic_cpu),
// or -1 when no CPU did.
func (k *Kernel) PanicCPU() int {
	a, err := k.Addr("panic_cpu")
	if err != nil {
		return -1
	}
	v, err := k.U32(a)
	if err != nil || int32(v) < 0 {
		return -1
	}
	return int(v)
}

// PanicTask returns the task that panicked: the current task on panic_cpu,
// else on the CPU of the first NT_PRSTATUS note.
func (k *Kernel) PanicTask() (*Task, int, error) {
	cpu := k.PanicCPU()
	if cpu < 0 {
		cpu = 0
	}
	cur, err := k.CurrentTask(cpu)
	if err != nil {
		return nil, cpu, err
	}
	t, err := k.Task(cur)
	return t, cpu, err
}
