package e2e

import (
	"bytes"
	"debug/elf"
	"io"
	"os"
	"strings"
	"testing"

	"github.com/kcrash/kcrash/internal/lab"
)

// magic is how each vmcore format starts (FORMATS.md): ELF, makedumpfile's
// flattened format, and kdump-compressed's disk_dump_header signature.
var magic = map[string]string{
	"elf":             "\x7fELF",
	"elf-paging":      "\x7fELF",
	"kdump-zlib-flat": "makedumpfile",
	"kdump-lzo":       "KDUMP   ",
	"kdump-snappy":    "KDUMP   ",
	"kdump-zstd":      "KDUMP   ",
	"kdump-zlib-d31":  "KDUMP   ",
}

// TestMatrixArtifacts checks the lab's own output: every trigger ran, every
// capture and dump the manifest promises exists with its size, dumps start with
// their format's magic, the ELF dumps carry VMCOREINFO naming the kernel, and the
// facts agree with the trigger table.
func TestMatrixArtifacts(t *testing.T) {
	for _, m := range manifests(t) {
		t.Run(m.Kernel.Release, func(t *testing.T) { matrixArtifacts(t, m) })
	}
}

func matrixArtifacts(t *testing.T, m *lab.Manifest) {
	if len(m.Entries) != len(lab.Matrix) {
		t.Errorf("manifest has %d entries, the trigger table %d", len(m.Entries), len(lab.Matrix))
	}
	if m.Kernel.BuildID == "" || m.Kernel.Release == "" {
		t.Errorf("kernel release %q build ID %q", m.Kernel.Release, m.Kernel.BuildID)
	}
	if id, err := lab.BuildID(m.Path(m.Kernel.Vmlinux)); err != nil || id != m.Kernel.BuildID {
		t.Errorf("vmlinux build ID %s (%v), manifest says %s", id, err, m.Kernel.BuildID)
	}
	for _, tr := range lab.Triggers() {
		tr = tr.ForKernel(m.Kernel.Release)
		e := m.Entry(tr.Name)
		if e == nil {
			t.Errorf("no entry for trigger %s", tr.Name)
			continue
		}
		if e.Error != "" {
			t.Errorf("%s: %s", e.Name, e.Error)
		}
		if e.Facts.Kind != tr.Kind {
			t.Errorf("%s: fact kind %q, table %q", e.Name, e.Facts.Kind, tr.Kind)
		}
		// A guest that hangs mid-report may never print its "CPU: … Comm:" line.
		if e.Facts.Release != m.Kernel.Release && !(tr.Hangs && e.Facts.Release == "") {
			t.Errorf("%s: console names kernel %q, manifest %q", e.Name, e.Facts.Release, m.Kernel.Release)
		}
		if !strings.Contains(e.Cmdline, "lab_trigger="+tr.LKDTM) {
			t.Errorf("%s: command line %q lacks the trigger", e.Name, e.Cmdline)
		}
		for _, a := range e.Artifacts {
			if a.Path == "" {
				continue
			}
			st, err := os.Stat(m.Path(a.Path))
			if err != nil {
				t.Errorf("%s: %v", e.Name, err)
				continue
			}
			if st.Size() != a.Size {
				t.Errorf("%s: %s is %d bytes, manifest says %d", e.Name, a.Path, st.Size(), a.Size)
			}
		}
		if a := e.Artifact(lab.ArtSerial, ""); a == nil || a.Size == 0 {
			t.Errorf("%s: no serial log", e.Name)
		}
		if !tr.Panics && !tr.Hangs {
			if e.Artifact(lab.ArtVmcore, "") != nil {
				t.Errorf("%s: a vmcore from a guest that did not panic", e.Name)
			}
			continue
		}
		if tr.Panics && (e.Facts.PanicMessage == "" || !e.Facts.PanicTrailer || !strings.HasPrefix(e.Facts.KASLROffset, "0x")) {
			t.Errorf("%s: panic facts missing: %+v", e.Name, e.Facts)
		}
		for format, want := range magic {
			a := e.Artifact(lab.ArtVmcore, format)
			if a == nil {
				t.Errorf("%s: no %s vmcore entry", e.Name, format)
				continue
			}
			comp := strings.TrimPrefix(format, "kdump-")
			if a.Unsupported != "" {
				if m.Host.Compressions[comp] == "enabled" {
					t.Errorf("%s: %s marked unsupported (%s) though makedumpfile has it", e.Name, format, a.Unsupported)
				}
				continue
			}
			if a.Path == "" || a.Size == 0 {
				t.Errorf("%s: %s vmcore missing: %+v", e.Name, format, a)
				continue
			}
			head := make([]byte, len(want))
			f, err := os.Open(m.Path(a.Path))
			if err == nil {
				_, err = io.ReadFull(f, head)
				f.Close()
			}
			if err != nil || string(head) != want {
				t.Errorf("%s: %s starts %q (%v), want %q", e.Name, a.Path, head, err, want)
			}
		}
		checkVMCOREINFO(t, m.Path(e.Artifact(lab.ArtVmcore, "elf").Path), m.Kernel.Release, m.Kernel.BuildID)
	}
}

// checkVMCOREINFO finds the VMCOREINFO note of an ELF dump (QEMU writes it when the
// guest's qemu_fw_cfg handed it over) and checks OSRELEASE and BUILD-ID.
func checkVMCOREINFO(t *testing.T, path, release, buildID string) {
	t.Helper()
	f, err := elf.Open(path)
	if err != nil {
		t.Errorf("%s: %v", path, err)
		return
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type != elf.PT_NOTE {
			continue
		}
		data, err := io.ReadAll(p.Open())
		if err != nil {
			t.Errorf("%s: notes: %v", path, err)
			return
		}
		i := bytes.Index(data, []byte("VMCOREINFO\x00"))
		if i < 0 {
			continue
		}
		info := string(data[i:])
		if !strings.Contains(info, "OSRELEASE="+release+"\n") || !strings.Contains(info, "BUILD-ID="+buildID+"\n") {
			t.Errorf("%s: VMCOREINFO lacks OSRELEASE=%s or BUILD-ID=%s", path, release, buildID)
		}
		return
	}
	t.Errorf("%s: no VMCOREINFO note", path)
}
