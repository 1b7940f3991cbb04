package oops

import "testing"

// TestKinds: report kinds beyond syzkaller's table, and lines that must stay negatives
// (user-space faults the kernel merely logs).
func TestKinds(t *testing.T) {
	for _, tc := range []struct {
		name, log string
		kind      Kind // "" = no report
		title     string
	}{
		{name: "slub-double-free", kind: KindSlabCorruption, title: "BUG: Object already free",
			log: "[ 1.0] =============================================================================\n" +
				"[ 1.0] BUG kmalloc-64 (Tainted: G           O     ): Object already free\n" +
				"[ 1.0] -----------------------------------------------------------------------------\n" +
				"[ 1.0] INFO: Allocated in my_init+0x1c/0x60 [slub_test] age=1 cpu=0 pid=1\n"},
		{name: "slub-bulk-free", kind: KindSlabCorruption,
			log: "[ 2.0] BUG kmalloc-128 (Not tainted): Slab has 0 allocated objects but 1 are to be freed\n"},
		{name: "pagealloc", kind: KindPageCorruption, title: "pagealloc: memory corruption in corrupted",
			log: "[ 3.0] pagealloc: memory corruption\n[ 3.0] f5d3e000: 00 00 00 00 6b 6b 6b 6b  ....kkkk\n"},
		{name: "bad-page-state", kind: KindPageCorruption,
			log: "[ 4.0] BUG: Bad page state in process swapper/0  pfn:1fd03\n[ 4.0] page:ffffea00007f40c0 count:0 mapcount:-1\n"},
		{name: "stack-protector", kind: KindStackProtector, title: "kernel panic: stack is corrupted in foo_ioctl",
			log: "[ 5.0] Kernel panic - not syncing: stack-protector: Kernel stack is corrupted in: foo_ioctl+0x1a0/0x1b0 [foo]\n"},
		{name: "zfs-verify", kind: KindOther, title: "PANIC at dmu.c in dmu_buf_hold_array_by_dnode",
			log: "[ 6.0] VERIFY3(0 == dmu_buf_hold_array(dn, off, len, 0, tag, &n, &dbp, DMU_READ_PREFETCH)) failed (0 == 5)\n" +
				"[ 6.0] PANIC at dmu.c:1123:dmu_buf_hold_array_by_dnode()\n[ 6.0] Showing stack for process 42\n"},
		{name: "apei", kind: KindMCE, title: "MCE: Hardware error from APEI",
			log: "<0>{1}[Hardware Error]: Hardware error from APEI Generic Hardware Error Source: 1\n<0>{1}[Hardware Error]: event severity: fatal\n"},
		{name: "user-invalid-opcode",
			log: "[ 7.0] traps: a.out[1234] trap invalid opcode ip:401136 sp:7ffd1c0 error:0 in a.out[401000+1000]\n"},
		{name: "user-segfault",
			log: "[ 8.0] a.out[1235]: segfault at 0 ip 0000000000401136 sp 00007ffd1c0 error 4 in a.out[401000+1000]\n"},
		{name: "user-gpf",
			log: "[ 9.0] traps: a.out[1236] general protection fault ip:401136 sp:7ffd1c0 error:0 in a.out[401000+1000]\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reps := Parse([]byte(tc.log))
			if tc.kind == "" {
				if len(reps) != 0 {
					t.Fatalf("false positive %q", reps[0].Title)
				}
				return
			}
			if len(reps) != 1 {
				t.Fatalf("%d reports, want 1", len(reps))
			}
			if reps[0].Kind != tc.kind || tc.title != "" && reps[0].Title != tc.title {
				t.Errorf("kind %s title %q, want %s %q", reps[0].Kind, reps[0].Title, tc.kind, tc.title)
			}
		})
	}
}
