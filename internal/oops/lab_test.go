package oops

import (
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite golden files")

// labExpect is what a reader of each lab log sees by eye: the kind of report and the
// function in the kernel RIP line ("" when the report has none).
var labExpect = map[string]struct {
	kind Kind
	ip   string
}{
	"ACCESS_NULL":                 {KindNullDeref, "lkdtm_ACCESS_NULL"},
	"ACCESS_NULL_nopanic":         {KindNullDeref, "lkdtm_ACCESS_NULL"},
	"ACCESS_USERSPACE":            {KindPageFault, "lkdtm_ACCESS_USERSPACE.cold"},
	"BUG":                         {KindBUG, "lkdtm_BUG"},
	"CORRUPT_LIST_ADD":            {KindListCorruption, "__list_add_valid.cold"},
	"CORRUPT_STACK":               {KindStackProtector, ""},
	"EXCEPTION":                   {KindNullDeref, "lkdtm_EXCEPTION"},
	"EXEC_DATA":                   {KindPageFault, "data_area"},
	"EXHAUST_STACK":               {KindStackOverflow, "recursive_loop"},
	"HARDLOCKUP_smp2":             {KindRCUStall, "lkdtm_HARDLOCKUP"},
	"HUNG_TASK":                   {KindHungTask, ""},
	"PANIC":                       {KindPanic, ""},
	"REFCOUNT_INC_OVERFLOW":       {KindRefcount, "refcount_warn_saturate"},
	"SLAB_FREE_DOUBLE":            {KindBUG, "kmem_cache_free"},
	"SOFTLOCKUP":                  {KindSoftLockup, "lkdtm_SOFTLOCKUP"},
	"USERCOPY_SLAB_SIZE_TO":       {KindBUG, "usercopy_abort"},
	"WARNING":                     {KindWarning, "lkdtm_WARNING"},
	"WARNING_panic":               {KindWarning, "lkdtm_WARNING"},
	"WRITE_AFTER_FREE_ncdeadlock": {KindSlabCorruption, ""},
	"WRITE_AFTER_FREE_nonc":       {KindSlabCorruption, ""},
	"sysrq-c":                     {KindPanic, ""},
}

// golden is the part of a report pinned by testdata/lab/golden/*.json.
type golden struct {
	Title     string   `json:"title"`
	AltTitles []string `json:"alt_titles"`
	Type      string   `json:"type"`
	Kind      Kind     `json:"kind"`
	Corrupted bool     `json:"corrupted"`
	Signature string   `json:"signature"`
	Message   string   `json:"message"`
	IP        string   `json:"ip"`
	Frames    []string `json:"frames"`
	Sections  []string `json:"sections"`
	Registers int      `json:"registers"`
	Code      string   `json:"code"`
	CPU       *int     `json:"cpu"`
	PID       *int     `json:"pid"`
	Comm      string   `json:"comm"`
	Taint     string   `json:"taint"`
	Release   string   `json:"release"`
	Modules   int      `json:"modules"`
	Panicked  bool     `json:"panicked"`
	PanicMsg  string   `json:"panic_message"`
}

func toGolden(r *Report) golden {
	g := golden{Title: r.Title, AltTitles: r.AltTitles, Type: r.Type, Kind: r.Kind, Corrupted: r.Corrupted,
		Signature: r.Signature, Message: r.Message, Registers: len(r.Registers), CPU: r.CPU, PID: r.PID,
		Comm: r.Comm, Taint: r.Taint, Release: r.Release, Modules: len(r.Modules), Panicked: r.Panicked, PanicMsg: r.PanicMsg}
	if r.IP != nil {
		g.IP = r.IP.Raw
	}
	if r.Code != nil {
		g.Code = r.Code.Raw
	}
	for _, f := range r.Frames {
		g.Frames = append(g.Frames, f.Raw+" {"+f.Section+"}")
	}
	for _, s := range r.Sections {
		g.Sections = append(g.Sections, s.Name)
	}
	return g
}

// TestLabSamples parses real crashes of Debian's 6.1 kernel captured three ways (serial
// console, plain netconsole, extended netconsole): each capture must give one report of
// the expected kind and RIP function, all captures of a crash the same report, and the
// report must equal its golden file.
func TestLabSamples(t *testing.T) {
	serials, _ := filepath.Glob("testdata/lab/*.serial")
	if len(serials) == 0 {
		t.Fatal("no lab samples in testdata/lab")
	}
	for _, serial := range serials {
		name := strings.TrimSuffix(filepath.Base(serial), ".serial")
		t.Run(name, func(t *testing.T) {
			want, ok := labExpect[name]
			if !ok {
				t.Fatalf("no expectation for %s", name)
			}
			var first *golden
			for _, ext := range []string{".serial", ".netconsole", ".netconsole-ext"} {
				data, err := os.ReadFile(strings.TrimSuffix(serial, ".serial") + ext)
				if os.IsNotExist(err) {
					continue
				}
				if err != nil {
					t.Fatal(err)
				}
				reps := Parse(data)
				if len(reps) != 1 {
					for _, r := range reps {
						t.Logf("report %q at %d", r.Title, r.Start)
					}
					t.Fatalf("%s: %d reports, want 1", ext, len(reps))
				}
				r := reps[0]
				if r.Kind != want.kind {
					t.Errorf("%s: kind %s, want %s", ext, r.Kind, want.kind)
				}
				ip := ""
				if r.IP != nil {
					ip = r.IP.Func
				}
				if ip != want.ip {
					t.Errorf("%s: ip %q, want %q", ext, ip, want.ip)
				}
				if r.Start < 0 || r.End > len(data) || r.Start >= r.End {
					t.Errorf("%s: bad span %d-%d", ext, r.Start, r.End)
				} else if !strings.Contains(string(data[r.Start:r.End]), strings.SplitN(r.Message, " ", 2)[0]) {
					t.Errorf("%s: span %d-%d does not hold the message %q", ext, r.Start, r.End, r.Message)
				}
				g := toGolden(r)
				if first == nil {
					first = &g
					checkGolden(t, name, g)
					continue
				}
				// The ncdeadlock run lost its tail on netconsole: only the headline facts agree.
				if name == "WRITE_AFTER_FREE_ncdeadlock" {
					if g.Title != first.Title || g.Signature != first.Signature {
						t.Errorf("%s: %q %s differs from serial %q %s", ext, g.Title, g.Signature, first.Title, first.Signature)
					}
					continue
				}
				a, _ := json.MarshalIndent(g, "", " ")
				b, _ := json.MarshalIndent(first, "", " ")
				if string(a) != string(b) {
					t.Errorf("%s report differs from the serial one:\n%s\nserial:\n%s", ext, a, b)
				}
			}
		})
	}
}

func checkGolden(t *testing.T, name string, g golden) {
	t.Helper()
	path := filepath.Join("testdata/lab/golden", name+".json")
	got, _ := json.MarshalIndent(g, "", "  ")
	got = append(got, '\n')
	if *update {
		os.MkdirAll(filepath.Dir(path), 0o755)
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update)", err)
	}
	if string(want) != string(got) {
		t.Errorf("report differs from %s (go test -update rewrites it):\ngot:\n%s\nwant:\n%s", path, got, want)
	}
}
