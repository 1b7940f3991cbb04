// Package decode symbolizes, disassembles and explains an oops report: each frame to
// file:line with its inline chain (vmlinux and module debug info), the Code: bytes to
// instructions with the trapping one marked, and the fault explained.
package decode

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"
	"sync"

	"github.com/kcrash/kcrash/internal/disasm"
	"github.com/kcrash/kcrash/internal/explain"
	"github.com/kcrash/kcrash/internal/oops"
	"github.com/kcrash/kcrash/internal/symbolize"
)

// Options says where debug info is.
type Options struct {
	Vmlinux    string // vmlinux with DWARF; "" to decode from the report alone
	ModulesDir string // directory searched (recursively) for <module>.ko files
	// FindModule, when set, is asked for a module's debug file that ModulesDir does
	// not have, by name and by the build ID the trace printed ("" when none): a
	// symbol source (internal/symbols) that may download it.
	FindModule func(name, buildID string) (string, error)
}

// Decoder holds opened debug info; it is safe for concurrent use and meant to be kept
// (a long-running process decodes many reports with warm indexes).
type Decoder struct {
	opts    Options
	vmlinux *symbolize.Binary

	modOnce  sync.Once
	modPaths map[string]string // module name (with _ for -) → path
	idOnce   sync.Once
	modByID  map[string]string // build ID → path, read on first lookup by build ID
	mu       sync.Mutex
	modules  map[string]*symbolize.Binary
	modErrs  map[string]error
}

// New opens the vmlinux (when given). Modules are opened on first use.
func New(opts Options) (*Decoder, error) {
	d := &Decoder{opts: opts, modules: map[string]*symbolize.Binary{}, modErrs: map[string]error{}}
	if opts.Vmlinux != "" {
		b, err := symbolize.Open(opts.Vmlinux)
		if err != nil {
			return nil, err
		}
		d.vmlinux = b
	}
	return d, nil
}

// Close releases the opened files.
func (d *Decoder) Close() error {
	if d.vmlinux != nil {
		d.vmlinux.Close()
	}
	for _, m := range d.modules {
		m.Close()
	}
	return nil
}

// Vmlinux returns the opened vmlinux, or nil.
func (d *Decoder) Vmlinux() *symbolize.Binary { return d.vmlinux }

func modKey(name string) string { return strings.ReplaceAll(name, "-", "_") }

// Module returns the debug info of a loaded module, searched by name under ModulesDir.
func (d *Decoder) Module(name string) (*symbolize.Binary, error) {
	if d.opts.ModulesDir == "" {
		return nil, fmt.Errorf("module %s: no --modules directory given", name)
	}
	d.modOnce.Do(func() {
		d.modPaths = map[string]string{}
		filepath.WalkDir(d.opts.ModulesDir, func(p string, e fs.DirEntry, err error) error {
			if err != nil {
				return nil
			}
			n := e.Name()
			for _, ext := range []string{".ko", ".ko.debug", ".ko.dbg"} {
				if strings.HasSuffix(n, ext) && !e.IsDir() {
					k := modKey(strings.TrimSuffix(n, ext))
					if _, dup := d.modPaths[k]; !dup {
						d.modPaths[k] = p
					}
				}
			}
			return nil
		})
	})
	if name == "" {
		return nil, errors.New("no module name")
	}
	k := modKey(name)
	d.mu.Lock()
	defer d.mu.Unlock()
	if b, ok := d.modules[k]; ok {
		return b, nil
	}
	if err, ok := d.modErrs[k]; ok {
		return nil, err
	}
	p, ok := d.modPaths[k]
	if !ok {
		err := fmt.Errorf("module %s: no %s.ko under %s", name, name, d.opts.ModulesDir)
		d.modErrs[k] = err
		return nil, err
	}
	b, err := symbolize.Open(p)
	if err != nil {
		d.modErrs[k] = err
		return nil, err
	}
	d.modules[k] = b
	return b, nil
}

// Frame is a report frame with its source locations.
type Frame struct {
	oops.Frame
	// Addr is the address looked up: for return addresses (call-trace frames) one byte
	// before the return address, so the line is the call's, not the next statement's.
	LookupAddr uint64               `json:"lookup_addr,omitempty"`
	Binary     string               `json:"binary,omitempty"`
	Locations  []symbolize.Location `json:"locations,omitempty"` // innermost first
	Err        string               `json:"error,omitempty"`
}

// Result is a decoded report.
type Result struct {
	Report      *oops.Report         `json:"report"`
	IP          *Frame               `json:"ip,omitempty"`
	Frames      []Frame              `json:"frames"`
	Code        []disasm.Inst        `json:"code,omitempty"`
	CodeErr     string               `json:"code_error,omitempty"`
	Explanation *explain.Explanation `json:"explanation,omitempty"`
	// SymbolsErr says why no vmlinux was found for the report's release (set by the
	// caller that looked for it), listing the sources tried.
	SymbolsErr string `json:"symbols_error,omitempty"`
}

// ModuleByBuildID returns the module file under ModulesDir with the given build ID.
// The first call reads the build ID note of every .ko there.
func (d *Decoder) ModuleByBuildID(id string) (*symbolize.Binary, error) {
	if d.opts.ModulesDir == "" {
		return nil, fmt.Errorf("build ID %s: no --modules directory given", id)
	}
	d.Module("") // fills modPaths
	d.idOnce.Do(func() {
		d.modByID = map[string]string{}
		for _, p := range d.modPaths {
			if b, err := symbolize.Open(p); err == nil {
				if b.BuildID != "" {
					d.modByID[b.BuildID] = p
				}
				b.Close()
			}
		}
	})
	p, ok := d.modByID[id]
	if !ok {
		return nil, fmt.Errorf("no module with build ID %s under %s", id, d.opts.ModulesDir)
	}
	return d.Module(strings.TrimSuffix(filepath.Base(p), ".ko"))
}

// binaryFor returns the debug info for a frame's module ("" = vmlinux): by build ID
// when the trace printed one and a file has it, else by name; then from FindModule.
func (d *Decoder) binaryFor(module string, buildID ...string) (*symbolize.Binary, error) {
	id := ""
	if len(buildID) > 0 {
		id = buildID[0]
	}
	if id != "" && d.opts.ModulesDir != "" {
		if b, err := d.ModuleByBuildID(id); err == nil {
			return b, nil
		}
	}
	if module != "" || id != "" {
		var err error
		if module != "" && d.opts.ModulesDir != "" {
			var b *symbolize.Binary
			if b, err = d.Module(module); err == nil || d.opts.FindModule == nil {
				return b, err
			}
		}
		if d.opts.FindModule != nil {
			return d.found(module, id)
		}
		if err == nil {
			err = fmt.Errorf("no debug file for module %q: no --modules directory given", module)
		}
		return nil, err
	}
	if d.vmlinux == nil {
		return nil, errors.New("no vmlinux given")
	}
	return d.vmlinux, nil
}

// found opens the file FindModule returns for a module, once per name and build ID.
func (d *Decoder) found(module, id string) (*symbolize.Binary, error) {
	k := "found:" + modKey(module) + "/" + id
	d.mu.Lock()
	defer d.mu.Unlock()
	if b, ok := d.modules[k]; ok {
		return b, nil
	}
	if err, ok := d.modErrs[k]; ok {
		return nil, err
	}
	p, err := d.opts.FindModule(module, id)
	var b *symbolize.Binary
	if err == nil {
		b, err = symbolize.Open(p)
	}
	if err != nil {
		d.modErrs[k] = err
		return nil, err
	}
	d.modules[k] = b
	return b, nil
}

// hasModules says module frames can be looked up at all.
func (d *Decoder) hasModules() bool { return d.opts.ModulesDir != "" || d.opts.FindModule != nil }

// Symbolize looks one frame up; ret says the frame's address is a return address.
func (d *Decoder) Symbolize(f oops.Frame, ret bool) Frame {
	out := Frame{Frame: f}
	if f.Func == "" {
		out.Err = "no symbol in frame"
		return out
	}
	b, err := d.binaryFor(f.Module, f.BuildID)
	if err != nil {
		out.Err = err.Error()
		return out
	}
	out.Binary = b.Path
	addr, _, err := b.Resolve(f.Func, f.Offset, f.Size)
	if err != nil {
		out.Err = err.Error()
		return out
	}
	if ret && f.Offset > 0 {
		addr--
	}
	out.LookupAddr = addr
	locs, err := b.Locate(addr)
	if err != nil {
		out.Err = err.Error()
		return out
	}
	out.Locations = locs
	return out
}

// Decode symbolizes every frame, disassembles the Code bytes and explains the fault.
// Missing debug info is not an error: the result says what could not be looked up.
func (d *Decoder) Decode(r *oops.Report) *Result {
	res := &Result{Report: r}
	if r.IP != nil && r.IP.Func != "" && (d.vmlinux != nil || r.IP.Module != "" && d.hasModules()) {
		f := d.Symbolize(*r.IP, false)
		res.IP = &f
	}
	for _, f := range r.Frames {
		if d.vmlinux == nil && (f.Module == "" || !d.hasModules()) {
			res.Frames = append(res.Frames, Frame{Frame: f})
			continue
		}
		res.Frames = append(res.Frames, d.Symbolize(f, true))
	}
	if r.Code != nil && r.Code.Trap >= 0 && len(r.Code.Bytes) > 0 {
		var err error
		trapAddr := uint64(0)
		if r.IP != nil {
			trapAddr = r.IP.Addr
			if r.Registers != nil && r.Registers["RIP"] != 0 {
				trapAddr = r.Registers["RIP"]
			}
		}
		if trapAddr == 0 && r.Registers != nil && strings.HasPrefix(r.Arch, "arm") {
			trapAddr = r.Registers["pc"] // "PC is at func+off" names no address; the register line does
		}
		switch {
		case r.Arch == "arm" && r.Code.TrapLen == 4:
			res.Code, err = disasm.ARM(r.Code.Bytes, r.Code.Trap, trapAddr)
		case r.Arch == "arm":
			err = disasm.ErrThumb
		case r.Arch == "arm64" || r.Code.TrapLen == 4:
			res.Code, err = disasm.ARM64(r.Code.Bytes, r.Code.Trap, trapAddr)
		default:
			res.Code, err = disasm.X86(r.Code.Bytes, r.Code.Trap, trapAddr, nil)
		}
		if err != nil {
			res.CodeErr = err.Error()
		}
	}
	var dbg *explain.Debug
	if res.IP != nil && res.IP.LookupAddr != 0 {
		if b, err := d.binaryFor(r.IP.Module, r.IP.BuildID); err == nil {
			dbg = &explain.Debug{Binary: b, PC: res.IP.LookupAddr}
		}
	}
	res.Explanation = explain.Explain(r, res.Code, dbg)
	return res
}
