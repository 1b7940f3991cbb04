// Package lab is kcrash's crash lab: it boots a real Debian kernel under QEMU (TCG),
// crashes it on purpose with LKDTM and keeps what a crash leaves behind: the serial
// console, plain and extended netconsole streams, and vmcores in every format kcrash
// reads, described by a manifest that tests assert against.
//
// The package never logs and never exits; long operations report progress through
// the caller's Progress function and return errors that say what failed and where.
package lab

import (
	"fmt"
	"time"
)

// Trigger is one row of the crash matrix: one boot, one way to crash.
type Trigger struct {
	// Name names the artifacts (NAME.serial, NAME.vmcore.elf, …); unique in the matrix.
	Name string `json:"name"`
	// LKDTM is the crash type written to /sys/kernel/debug/provoke-crash/DIRECT, or
	// "sysrq-c" for echo c > /proc/sysrq-trigger.
	LKDTM string `json:"lkdtm"`
	// Args are extra kernel parameters for this boot.
	Args string `json:"args,omitempty"`
	// VCPUs is the guest's CPU count (1 unless the crash needs a second CPU).
	VCPUs int `json:"vcpus"`
	// Timeout bounds the boot; a guest still running then is dumped as it is.
	Timeout time.Duration `json:"timeout"`
	// Kind is the report kind kcrash parse must find (internal/oops Kind values).
	Kind string `json:"kind"`
	// Panics says whether the guest is expected to panic (and so to be dumped).
	Panics bool `json:"panics"`
	// Netconsole is "both" (plain and extended streams) or "none".
	Netconsole string `json:"netconsole"`
	// Hangs marks a guest expected to hang instead of panicking; it is dumped at Timeout.
	Hangs bool `json:"hangs,omitempty"`
	// PanicsFrom is the kernel series from which a Hangs row panics instead: the
	// kernel bug that made it hang is fixed there (see ForKernel).
	PanicsFrom string `json:"panics_from,omitempty"`
	// Note says why the row exists when that is not obvious.
	Note string `json:"note,omitempty"`
}

// Matrix is the crash matrix: the triggers of the reference run, one boot each.
// Kernel parameters are those of Documentation/admin-guide/kernel-parameters.txt;
// lab_wait is read by the guest's init (lab/init.sh).
var Matrix = []Trigger{
	{Name: "ACCESS_NULL", LKDTM: "ACCESS_NULL", Args: "oops=panic", Kind: "null-ptr-deref", Panics: true},
	{Name: "ACCESS_NULL_nopanic", LKDTM: "ACCESS_NULL", Args: "lab_wait=3", Kind: "null-ptr-deref",
		Note: "the oops kills the writer and the guest powers off"},
	{Name: "EXCEPTION", LKDTM: "EXCEPTION", Args: "oops=panic", Kind: "null-ptr-deref", Panics: true},
	{Name: "BUG", LKDTM: "BUG", Args: "oops=panic", Kind: "bug", Panics: true},
	{Name: "WARNING", LKDTM: "WARNING", Args: "lab_wait=3", Kind: "warning"},
	{Name: "WARNING_panic", LKDTM: "WARNING", Args: "panic_on_warn=1", Kind: "warning", Panics: true},
	{Name: "PANIC", LKDTM: "PANIC", Kind: "panic", Panics: true},
	{Name: "sysrq-c", LKDTM: "sysrq-c", Kind: "panic", Panics: true,
		Note: "since Linux 5.x sysrq_handle_crash calls panic(\"sysrq triggered crash\") instead of writing through NULL"},
	{Name: "SLAB_FREE_DOUBLE", LKDTM: "SLAB_FREE_DOUBLE", Args: "oops=panic", Kind: "bug", Panics: true},
	{Name: "CORRUPT_LIST_ADD", LKDTM: "CORRUPT_LIST_ADD", Args: "oops=panic", Kind: "list-corruption", Panics: true},
	{Name: "CORRUPT_STACK", LKDTM: "CORRUPT_STACK", Kind: "stack-protector", Panics: true},
	{Name: "EXHAUST_STACK", LKDTM: "EXHAUST_STACK", Args: "oops=panic", Kind: "stack-overflow", Panics: true},
	{Name: "EXEC_DATA", LKDTM: "EXEC_DATA", Args: "oops=panic", Kind: "page-fault", Panics: true},
	{Name: "ACCESS_USERSPACE", LKDTM: "ACCESS_USERSPACE", Args: "oops=panic", Kind: "page-fault", Panics: true},
	{Name: "USERCOPY_SLAB_SIZE_TO", LKDTM: "USERCOPY_SLAB_SIZE_TO", Args: "oops=panic", Kind: "bug", Panics: true},
	{Name: "REFCOUNT_INC_OVERFLOW", LKDTM: "REFCOUNT_INC_OVERFLOW", Args: "lab_wait=3", Kind: "refcount"},
	{Name: "SOFTLOCKUP", LKDTM: "SOFTLOCKUP", Args: "softlockup_panic=1 watchdog_thresh=2 lab_wait=60",
		Kind: "soft-lockup", Panics: true},
	{Name: "HUNG_TASK", LKDTM: "HUNG_TASK", Args: "hung_task_panic=1 sysctl.kernel.hung_task_timeout_secs=3 lab_wait=60",
		Kind: "hung-task", Panics: true},
	{Name: "WRITE_AFTER_FREE_nonc", LKDTM: "WRITE_AFTER_FREE", Netconsole: "none",
		Args: "slub_debug=FZP,kmalloc-1k panic_on_taint=0x20 lab_repeat=10 lab_wait=5", Kind: "slab-corruption", Panics: true,
		Note: "slub_debug report, then panic_on_taint (TAINT_BAD_PAGE); no netconsole, see _ncdeadlock"},
	{Name: "WRITE_AFTER_FREE_ncdeadlock", LKDTM: "WRITE_AFTER_FREE",
		Args: "slub_debug=FZP,kmalloc-1k panic_on_taint=0x20 lab_repeat=10 lab_wait=5", Kind: "slab-corruption", Hangs: true,
		Timeout:    25 * time.Second,
		PanicsFrom: "6.12",
		Note:       "6.1: netpoll allocates from the cache whose lock the SLUB report holds: the guest deadlocks mid-report and is dumped at the timeout; 6.12 no longer deadlocks and panics on the taint"},
	{Name: "HARDLOCKUP_smp2", LKDTM: "HARDLOCKUP", VCPUs: 2,
		Args: "sysctl.kernel.panic_on_rcu_stall=1 rcupdate.rcu_cpu_stall_timeout=5 watchdog_thresh=2 lab_wait=90",
		Kind: "rcu-stall", Panics: true, Timeout: 150 * time.Second,
		Note: "TCG has no perf NMI watchdog: the RCU stall detector on a second CPU reports the lockup"},
}

// Defaults applied to a Trigger's zero fields by (Trigger).normalized.
const (
	defaultTimeout = 90 * time.Second
	// BaseArgs are kernel parameters of every matrix boot: freed pages are zeroed so
	// compressed dumps stay small.
	BaseArgs = "init_on_free=1"
)

func (t Trigger) normalized() Trigger {
	if t.VCPUs == 0 {
		t.VCPUs = 1
	}
	if t.Timeout == 0 {
		t.Timeout = defaultTimeout
	}
	if t.Netconsole == "" {
		t.Netconsole = "both"
	}
	return t
}

// ForKernel is the row as expected on a kernel release: a Hangs row with
// PanicsFrom panics on that series and later ones.
func (t Trigger) ForKernel(release string) Trigger {
	if t.PanicsFrom != "" && CompareABIs(Series(release), t.PanicsFrom) >= 0 {
		t.Hangs, t.Panics = false, true
	}
	return t
}

// Triggers returns the matrix rows with defaults filled in.
func Triggers() []Trigger {
	out := make([]Trigger, len(Matrix))
	for i, t := range Matrix {
		out[i] = t.normalized()
	}
	return out
}

// FindTrigger returns the matrix row called name.
func FindTrigger(name string) (Trigger, error) { return findTrigger(Triggers(), name) }

func findTrigger(table []Trigger, name string) (Trigger, error) {
	for _, t := range table {
		if t.Name == name {
			return t, nil
		}
	}
	return Trigger{}, fmt.Errorf("no trigger %q in the crash matrix", name)
}
