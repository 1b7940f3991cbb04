package lab

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// ManifestName is the manifest's file name in a matrix directory.
const ManifestName = "manifest.json"

// Manifest describes a crash matrix run: the kernel, the host tools, and every
// artifact of every trigger. Paths are relative to the manifest's directory; use
// (*Manifest).Path to resolve them.
type Manifest struct {
	LabVersion string `json:"lab_version"`
	// RecipeHash covers the lab version, the guest init, the trigger table, the QEMU
	// and kernel arguments and the dump formats: a manifest with another hash is stale.
	RecipeHash string    `json:"recipe_hash"`
	Complete   bool      `json:"complete"` // every trigger of the table ran as expected
	Created    time.Time `json:"created"`
	Kernel     struct {
		Release   string `json:"release"`
		Version   string `json:"version"`
		BuildID   string `json:"build_id"`
		Vmlinux   string `json:"vmlinux"`
		Vmlinuz   string `json:"vmlinuz"`
		LKDTM     string `json:"lkdtm"`
		DebugDir  string `json:"debug_dir"`
		Initramfs string `json:"initramfs"`
	} `json:"kernel"`
	Host struct {
		QEMU         string `json:"qemu"`
		Makedumpfile string `json:"makedumpfile"`
		// Compressions maps lzo, snappy and zstd to "enabled" or why not.
		Compressions map[string]string `json:"compressions"`
	} `json:"host"`
	MatrixSeconds float64  `json:"matrix_seconds"`
	Entries       []*Entry `json:"entries"`

	dir string
}

// Entry is one boot of the matrix.
type Entry struct {
	Name    string  `json:"name"`
	Trigger Trigger `json:"trigger"`
	Cmdline string  `json:"cmdline"` // the guest's whole kernel command line
	VCPUs   int     `json:"vcpus"`
	Memory  string  `json:"memory"`
	// Outcome is how the boot ended (panic, shutdown, timeout); SecondsToOutcome
	// counts from QEMU's start.
	Outcome          Outcome    `json:"outcome"`
	SecondsToOutcome float64    `json:"seconds_to_outcome"`
	Seconds          float64    `json:"seconds"` // the whole entry, dumps included
	Events           []string   `json:"events"`  // QMP events with their times, "4.30 GUEST_PANICKED"
	Facts            Facts      `json:"facts"`
	Artifacts        []Artifact `json:"artifacts"`
	// Error says what went wrong (an unexpected outcome, a failed dump); empty when fine.
	Error string `json:"error,omitempty"`
	// Attempts is 2 when the first boot failed (FirstError says how) and was rerun.
	Attempts   int    `json:"attempts,omitempty"`
	FirstError string `json:"first_error,omitempty"`
}

// Artifact kinds.
const (
	ArtSerial        = "serial"               // the console (ttyS0)
	ArtNetconsole    = "netconsole"           // plain netconsole stream, payloads concatenated
	ArtNetconsoleExt = "netconsole-ext"       // extended netconsole, one datagram (record) per line
	ArtPlainJSONL    = "netconsole-jsonl"     // plain datagrams with receive times
	ArtExtJSONL      = "netconsole-ext-jsonl" // extended datagrams with receive times
	ArtVmcore        = "vmcore"
	ArtQEMULog       = "qemu-log"
	// ArtVmcoreDmesg is the log makedumpfile --dump-dmesg reads from the kdump-lzo
	// dump: what kdump-tools saves as vmcore-dmesg.txt.
	ArtVmcoreDmesg = "vmcore-dmesg"
)

// Captures are the artifact kinds that hold console text.
var Captures = []string{ArtSerial, ArtNetconsole, ArtNetconsoleExt}

// Artifact is one file of an entry.
type Artifact struct {
	Kind string `json:"kind"`
	// Format is the vmcore format: elf, elf-paging, kdump-zlib-flat (QEMU's
	// kdump-zlib, makedumpfile's flattened format), kdump-lzo, kdump-snappy,
	// kdump-zstd, kdump-zlib-d31 (page-filtered with -d 31).
	Format  string  `json:"format,omitempty"`
	Path    string  `json:"path,omitempty"`
	Size    int64   `json:"size"`
	MadeBy  string  `json:"made_by,omitempty"` // the QMP command or makedumpfile command line
	Seconds float64 `json:"seconds,omitempty"`
	// Unsupported says why the artifact could not be made on this host (it has no
	// Path then); Error says why making it failed.
	Unsupported string `json:"unsupported,omitempty"`
	Error       string `json:"error,omitempty"`
}

// LoadManifest reads a manifest file.
func LoadManifest(path string) (*Manifest, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	m, err := ParseManifest(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	m.dir = filepath.Dir(path)
	return m, nil
}

// ParseManifest decodes a manifest; relative paths then resolve against the
// current directory until the caller uses LoadManifest.
func ParseManifest(data []byte) (*Manifest, error) {
	var m Manifest
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, err
	}
	if m.RecipeHash == "" || m.Kernel.Release == "" {
		return nil, errors.New("not a lab manifest (no recipe_hash or kernel release)")
	}
	seen := map[string]bool{}
	for i, e := range m.Entries {
		if e == nil || e.Name == "" {
			return nil, fmt.Errorf("entry %d has no name", i)
		}
		if seen[e.Name] {
			return nil, fmt.Errorf("entry %q twice", e.Name)
		}
		seen[e.Name] = true
	}
	return &m, nil
}

// Save writes the manifest as dir/manifest.json, atomically.
func (m *Manifest) Save(dir string) error {
	m.dir = dir
	data, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(filepath.Join(dir, ManifestName), append(data, '\n'))
}

// Dir is the directory the manifest's relative paths are relative to.
func (m *Manifest) Dir() string { return m.dir }

// Path resolves a path of the manifest.
func (m *Manifest) Path(p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(m.dir, p)
}

// Entry returns the entry called name, or nil.
func (m *Manifest) Entry(name string) *Entry {
	for _, e := range m.Entries {
		if e.Name == name {
			return e
		}
	}
	return nil
}

// Artifact returns the entry's first artifact of kind (and format, when not
// empty), or nil.
func (e *Entry) Artifact(kind, format string) *Artifact {
	for i := range e.Artifacts {
		a := &e.Artifacts[i]
		if a.Kind == kind && (format == "" || a.Format == format) {
			return a
		}
	}
	return nil
}

// FindManifest returns the manifest of the current matrix in the cache dir
// (dir/current/matrix/manifest.json, current naming the last ABI run), or the file
// named by $KCRASH_LAB_MANIFEST when set.
func FindManifest(dir string) (string, error) {
	if p := os.Getenv("KCRASH_LAB_MANIFEST"); p != "" {
		return p, nil
	}
	p := filepath.Join(dir, "current", "matrix", ManifestName)
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("no lab manifest: %w (build it with: go run ./cmd/kcrash lab run)", err)
	}
	return p, nil
}

func rel(base, p string) string {
	if r, err := filepath.Rel(base, p); err == nil {
		return r
	}
	return p
}
