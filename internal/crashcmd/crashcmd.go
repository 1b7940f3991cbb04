// Package crashcmd answers crash's everyday commands (sys, log, ps, bt, dis,
// rd, struct, sym, mod) on a kernel found in a dump, in crash's own layout, plus
// explain: the panic report from the dump's log, decoded.
//
// Commands are a table; Run parses one command line and writes its output.
package crashcmd

import (
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/kcrash/kcrash/internal/kernel"
	"github.com/kcrash/kcrash/internal/symbolize"
)

// Session is an open vmlinux and dump with the paths crash prints.
type Session struct {
	K           *kernel.Kernel
	VmlinuxPath string
	DumpPath    string
	// ModulesDir is searched for module debug files by explain's decoder.
	ModulesDir string
	// ModFiles maps module names to debug files given with `mod -s`.
	ModFiles map[string]string
	// JSON selects machine output for the commands that support it.
	JSON bool

	// Line tables for dis -l, opened on first use.
	vmlinuxLines *symbolize.Binary
	linesErr     error
	compDir      string
	modLines     map[string]*symbolize.Binary
	modCompDir   map[string]string
}

// Command is one row of the command table.
type Command struct {
	Name     string
	Synopsis string
	Run      func(s *Session, w io.Writer, args []string) error
}

// ErrUnknownCommand is returned for names not in the table.
var ErrUnknownCommand = errors.New("unknown command")

var table = map[string]*Command{}

func register(c *Command) { table[c.Name] = c }

// Commands lists the table sorted by name.
func Commands() []*Command {
	out := make([]*Command, 0, len(table))
	for _, c := range table {
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func init() {
	register(&Command{Name: "help", Synopsis: "list the commands", Run: func(s *Session, w io.Writer, _ []string) error {
		for _, c := range Commands() {
			fmt.Fprintf(w, "%-8s %s\n", c.Name, c.Synopsis)
		}
		return nil
	}})
}

// Run executes one command line ("bt -a", "struct task_struct.comm ffff…").
func (s *Session) Run(w io.Writer, line string) error {
	f := strings.Fields(line)
	if len(f) == 0 {
		return nil
	}
	c, ok := table[f[0]]
	if !ok {
		return fmt.Errorf("%s: %w (try help)", f[0], ErrUnknownCommand)
	}
	return c.Run(s, w, f[1:])
}

// parseNum reads a hex address (with or without 0x) or, with dec, a decimal number.
func parseHex(s string) (uint64, error) {
	s = strings.TrimPrefix(strings.ToLower(s), "0x")
	var v uint64
	if s == "" {
		return 0, fmt.Errorf("empty address")
	}
	for _, c := range s {
		var d uint64
		switch {
		case c >= '0' && c <= '9':
			d = uint64(c - '0')
		case c >= 'a' && c <= 'f':
			d = uint64(c-'a') + 10
		default:
			return 0, fmt.Errorf("%q is not a hex address", s)
		}
		if v>>60 != 0 {
			return 0, fmt.Errorf("%q overflows 64 bits", s)
		}
		v = v<<4 | d
	}
	return v, nil
}

// addrOrSymbol resolves a symbol name (vmlinux or module) or a hex address,
// with an optional +offset.
func (s *Session) addrOrSymbol(arg string) (uint64, error) {
	base, off, hasOff := strings.Cut(arg, "+")
	var o uint64
	if hasOff {
		var err error
		if strings.HasPrefix(off, "0x") {
			o, err = parseHex(off)
		} else {
			_, err = fmt.Sscanf(off, "%d", &o)
		}
		if err != nil {
			return 0, fmt.Errorf("offset %q: %v", off, err)
		}
	}
	if a, err := s.K.LookupName(base); err == nil {
		return a + o, nil
	}
	a, err := parseHex(base)
	if err != nil {
		return 0, fmt.Errorf("%s: neither a symbol nor an address", base)
	}
	return a + o, nil
}

// symName renders addr as crash does in bt: "name" and " [module]".
func (s *Session) symName(addr uint64) (name string, off uint64, mod string) {
	sym, off, mod, ok := s.K.Lookup(addr)
	if !ok {
		return "", 0, mod
	}
	return sym.Name, off, mod
}
