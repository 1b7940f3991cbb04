package e2e

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kcrash/kcrash/internal/lab"
)

// TestVmcoreStrippedVmlinux checks that a vmlinux without DWARF (objcopy
// --strip-debug: .symtab, ORC and .BTF remain) gives the same ps, bt, files
// and task answers as the -dbg vmlinux, types coming from BTF, on every
// panicking trigger's elf-paging dump of every matrix kernel. What needs
// DWARF: dis -l and explain's source lines, and inline frames.
func TestVmcoreStrippedVmlinux(t *testing.T) {
	if _, err := exec.LookPath("objcopy"); err != nil {
		needLab(t, "objcopy is not installed (apt-get install binutils)")
	}
	for _, m := range manifests(t) {
		t.Run(m.Kernel.Release, func(t *testing.T) {
			vmlinux := m.Path(m.Kernel.Vmlinux)
			stripped := filepath.Join(t.TempDir(), "vmlinux")
			if out, err := exec.Command("objcopy", "--strip-debug", vmlinux, stripped).CombinedOutput(); err != nil {
				t.Fatalf("objcopy: %v\n%s", err, out)
			}
			if out, err := exec.Command("readelf", "-S", stripped).Output(); err != nil || strings.Contains(string(out), ".debug_info") || !strings.Contains(string(out), ".BTF") {
				t.Fatalf("stripped vmlinux: want .BTF and no .debug_info (%v)", err)
			}
			n := 0
			for _, e := range m.Entries {
				if e.Outcome != lab.OutcomePanic {
					continue
				}
				a := e.Artifact(lab.ArtVmcore, "elf-paging")
				if a == nil || a.Path == "" || a.Error != "" {
					continue
				}
				path := m.Path(a.Path)
				const cmds = "ps; bt; files; task -R pid,comm,__state,flags"
				want := kcrashVmcore(t, vmlinux, path, cmds)
				got := kcrashVmcore(t, stripped, path, cmds)
				if got != want {
					t.Errorf("%s: %s differs with the stripped vmlinux:\n--- BTF\n%s\n--- DWARF\n%s", e.Name, cmds, got, want)
				}
				n++
			}
			if n == 0 {
				needLab(t, "no elf-paging dumps")
			}
			t.Logf("%s: ps, bt, files, task equal with BTF and DWARF on %d dumps", m.Kernel.Release, n)
		})
	}
}
