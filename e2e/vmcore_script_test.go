package e2e

import (
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/kcrash/kcrash/internal/lab"
)

// TestVmcoreScripts runs the example Starlark scripts of scripts/ on every
// matrix kernel's HUNG_TASK dump and checks their answers against kcrash's
// commands: d_state.star must list exactly ps's UN tasks with bt's frames,
// top_slabs.star's first cache must be kmem -s's largest, and sockets.star
// must count the SOCK descriptors files reports over every user task.
func TestVmcoreScripts(t *testing.T) {
	for _, m := range manifests(t) {
		t.Run(m.Kernel.Release, func(t *testing.T) {
			e := m.Entry("HUNG_TASK")
			if e == nil {
				needLab(t, "no HUNG_TASK entry")
			}
			a := e.Artifact(lab.ArtVmcore, "elf")
			if a == nil || a.Path == "" || a.Error != "" {
				needLab(t, "no HUNG_TASK elf dump")
			}
			vmlinux, path := m.Path(m.Kernel.Vmlinux), m.Path(a.Path)
			run := func(name string) string {
				out, err := exec.Command(kcrashBin, "vmcore", "--script", filepath.Join("..", "scripts", name), vmlinux, path).CombinedOutput()
				if err != nil {
					t.Fatalf("%s: %v\n%s", name, err, out)
				}
				return string(out)
			}
			var ps []struct {
				PID     int    `json:"PID"`
				Addr    uint64 `json:"Addr"`
				State   string `json:"State"`
				Kthread bool   `json:"Kthread"`
			}
			out, err := exec.Command(kcrashBin, "vmcore", "--json", vmlinux, path, "ps").Output()
			if err != nil || json.Unmarshal(out, &ps) != nil {
				t.Fatalf("ps --json: %v", err)
			}
			// d_state.star: the UN tasks, each with bt's frames.
			ds := run("d_state.star")
			un := 0
			for _, p := range ps {
				if p.State != "UN" {
					continue
				}
				un++
				if !strings.Contains(ds, fmt.Sprintf("PID %d ", p.PID)) {
					t.Errorf("d_state.star misses UN task %d:\n%s", p.PID, ds)
				}
				for _, l := range strings.Split(kcrashVmcore(t, vmlinux, path, fmt.Sprintf("bt %d", p.PID)), "\n") {
					if g := btFrame.FindStringSubmatch(l); g != nil && !strings.Contains(ds, " "+g[3]+"+") {
						t.Errorf("d_state.star misses frame %s of task %d", g[3], p.PID)
					}
				}
			}
			if un == 0 || !strings.Contains(ds, fmt.Sprintf("%d task(s) in D state", un)) {
				t.Errorf("d_state.star: want %d tasks in D state:\n%s", un, ds)
			}
			// top_slabs.star: the largest cache of kmem -s first.
			type cache struct {
				name string
				mem  int
			}
			var caches []cache
			for _, l := range strings.Split(kcrashVmcore(t, vmlinux, path, "kmem -s"), "\n")[1:] {
				f := strings.Fields(l)
				if len(f) < 7 {
					continue
				}
				var slabs, ssize int
				fmt.Sscan(f[4], &slabs)
				fmt.Sscan(strings.TrimSuffix(f[5], "k"), &ssize)
				caches = append(caches, cache{f[6], slabs * ssize})
			}
			sort.SliceStable(caches, func(i, j int) bool { return caches[i].mem > caches[j].mem })
			ts := strings.Split(run("top_slabs.star"), "\n")
			if len(caches) == 0 || len(ts) < 2 || strings.Fields(ts[1])[0] != caches[0].name {
				t.Errorf("top_slabs.star: first cache %q, kmem -s's largest %+v", ts[1], caches[0])
			}
			// sockets.star: as many sockets as files shows SOCK descriptors.
			socks := 0
			for _, p := range ps {
				if p.Kthread {
					continue
				}
				socks += strings.Count(kcrashVmcore(t, vmlinux, path, fmt.Sprintf("files %x", p.Addr)), " SOCK ")
			}
			if so := run("sockets.star"); !strings.Contains(so, fmt.Sprintf("%d socket(s)", socks)) {
				t.Errorf("sockets.star: want %d sockets:\n%s", socks, so)
			}
			t.Logf("%s: d_state %d UN tasks, top_slabs first %s, sockets %d", m.Kernel.Release, un, caches[0].name, socks)
		})
	}
}
