// Package script runs Starlark programs against a kernel dump: the `prog`
// value gives typed objects (struct members, array elements and pointers
// followed as in C, from the vmlinux's type information), symbol lookup,
// list walks and kcrash's own answers (tasks, backtraces, slab caches,
// open files).
//
// Starlark (go.starlark.net) is chosen because it is a small, deterministic,
// sandboxed Python dialect maintained with Bazel: a script can read the dump
// and print, and nothing else (no files, no network, no imports), and its
// interpreter is pure Go, so kcrash stays one static binary.
package script

import (
	"debug/dwarf"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"

	"go.starlark.net/starlark"
	"go.starlark.net/starlarkstruct"
	"go.starlark.net/syntax"

	"github.com/kcrash/kcrash/internal/crashcmd"
	"github.com/kcrash/kcrash/internal/kernel"
	"github.com/kcrash/kcrash/internal/symbolize"
)

// MaxSteps bounds a script's execution (Starlark computation steps).
const MaxSteps = 1 << 30

// maxSteps is MaxSteps, lowered by tests.
var maxSteps uint64 = MaxSteps

// Run executes the Starlark program src (named name in errors) with prog
// bound to the session's dump, printing to w.
func Run(s *crashcmd.Session, name string, src []byte, w io.Writer) error {
	th := &starlark.Thread{Name: name, Print: func(_ *starlark.Thread, msg string) { fmt.Fprintln(w, msg) }}
	th.SetMaxExecutionSteps(maxSteps)
	pre := starlark.StringDict{"prog": &Program{s: s}, "struct": starlark.NewBuiltin("struct", starlarkstruct.Make)}
	_, err := starlark.ExecFileOptions(&syntax.FileOptions{While: true, TopLevelControl: true, GlobalReassign: true, Set: true}, th, name, src, pre)
	var ee *starlark.EvalError
	if errors.As(err, &ee) {
		return errors.New(ee.Backtrace())
	}
	return err
}

// Program is `prog`: the dump as a Starlark value.
type Program struct{ s *crashcmd.Session }

func (p *Program) String() string        { return "<prog " + p.s.DumpPath + ">" }
func (p *Program) Type() string          { return "prog" }
func (p *Program) Freeze()               {}
func (p *Program) Truth() starlark.Bool  { return true }
func (p *Program) Hash() (uint32, error) { return 0, errors.New("prog is not hashable") }

var progMethods = map[string]func(p *Program, args starlark.Tuple, kw []starlark.Tuple) (starlark.Value, error){
	"object":      (*Program).object,
	"symbol":      (*Program).symbol,
	"lookup":      (*Program).lookup,
	"tasks":       (*Program).tasks,
	"bt":          (*Program).bt,
	"slab_caches": (*Program).slabCaches,
	"files":       (*Program).files,
	"list":        (*Program).list,
	"read_u64":    (*Program).readU64,
}

// Attr returns prog's methods.
func (p *Program) Attr(name string) (starlark.Value, error) {
	f, ok := progMethods[name]
	if !ok {
		return nil, nil
	}
	return starlark.NewBuiltin(name, func(_ *starlark.Thread, _ *starlark.Builtin, args starlark.Tuple, kw []starlark.Tuple) (starlark.Value, error) {
		return f(p, args, kw)
	}), nil
}

// AttrNames lists prog's methods.
func (p *Program) AttrNames() []string {
	var n []string
	for k := range progMethods {
		n = append(n, k)
	}
	sort.Strings(n)
	return n
}

// Get is prog["symbol"]: the address of a vmlinux or module symbol.
func (p *Program) Get(k starlark.Value) (starlark.Value, bool, error) {
	name, ok := starlark.AsString(k)
	if !ok {
		return nil, false, fmt.Errorf("prog[%s]: want a symbol name", k)
	}
	a, err := p.s.K.LookupName(name)
	if err != nil {
		return nil, false, err
	}
	return starlark.MakeUint64(a), true, nil
}

func (p *Program) addr(v starlark.Value) (uint64, error) {
	if s, ok := starlark.AsString(v); ok {
		return p.s.K.LookupName(s)
	}
	if o, ok := v.(*Object); ok {
		return o.addr, nil
	}
	var a uint64
	if err := starlark.AsInt(v, &a); err != nil {
		return 0, fmt.Errorf("want an address, a symbol or an object, got %s", v.Type())
	}
	return a, nil
}

// object(ADDR_OR_SYMBOL, TYPE): the object of type TYPE ("struct task_struct") at an address.
func (p *Program) object(args starlark.Tuple, kw []starlark.Tuple) (starlark.Value, error) {
	var where starlark.Value
	var typ string
	if err := starlark.UnpackArgs("object", args, kw, "where", &where, "type", &typ); err != nil {
		return nil, err
	}
	a, err := p.addr(where)
	if err != nil {
		return nil, err
	}
	t, err := p.s.K.Vmlinux.Type(typ)
	if err != nil {
		return nil, err
	}
	return &Object{p: p, t: t, addr: a}, nil
}

func (p *Program) symbol(args starlark.Tuple, kw []starlark.Tuple) (starlark.Value, error) {
	var name string
	if err := starlark.UnpackArgs("symbol", args, kw, "name", &name); err != nil {
		return nil, err
	}
	a, err := p.s.K.LookupName(name)
	if err != nil {
		return nil, err
	}
	return starlark.MakeUint64(a), nil
}

// lookup(ADDR): "name+0xoff [module]" or None.
func (p *Program) lookup(args starlark.Tuple, kw []starlark.Tuple) (starlark.Value, error) {
	var v starlark.Value
	if err := starlark.UnpackArgs("lookup", args, kw, "addr", &v); err != nil {
		return nil, err
	}
	a, err := p.addr(v)
	if err != nil {
		return nil, err
	}
	sym, off, mod, ok := p.s.K.Lookup(a)
	if !ok {
		return starlark.None, nil
	}
	s := fmt.Sprintf("%s+%#x", sym.Name, off)
	if mod != "" {
		s += " [" + mod + "]"
	}
	return starlark.String(s), nil
}

func (p *Program) readU64(args starlark.Tuple, kw []starlark.Tuple) (starlark.Value, error) {
	var v starlark.Value
	if err := starlark.UnpackArgs("read_u64", args, kw, "addr", &v); err != nil {
		return nil, err
	}
	a, err := p.addr(v)
	if err != nil {
		return nil, err
	}
	x, err := p.s.K.U64(a)
	if err != nil {
		return nil, err
	}
	return starlark.MakeUint64(x), nil
}

func (p *Program) taskValue(t *kernel.Task) (starlark.Value, error) {
	tt, err := p.s.K.Vmlinux.Type("task_struct")
	if err != nil {
		return nil, err
	}
	return starlarkstruct.FromStringDict(starlark.String("task"), starlark.StringDict{
		"pid": starlark.MakeInt(int(t.PID)), "ppid": starlark.MakeInt(int(t.PPID)), "comm": starlark.String(t.Comm),
		"state": starlark.String(t.State), "cpu": starlark.MakeInt(t.CPU), "kthread": starlark.Bool(t.Kthread),
		"active": starlark.Bool(t.Active), "rss_kb": starlark.MakeUint64(t.RSS), "vsz_kb": starlark.MakeUint64(t.VSZ),
		"addr": starlark.MakeUint64(t.Addr), "obj": &Object{p: p, t: tt, addr: t.Addr},
	}), nil
}

// tasks(): every task as a struct (pid, ppid, comm, state — crash's letters —, cpu, kthread, active, rss_kb, vsz_kb, addr, obj: the task_struct).
func (p *Program) tasks(args starlark.Tuple, kw []starlark.Tuple) (starlark.Value, error) {
	if err := starlark.UnpackArgs("tasks", args, kw); err != nil {
		return nil, err
	}
	ts, err := p.s.K.Tasks()
	if err != nil {
		return nil, err
	}
	var out []starlark.Value
	for _, t := range ts {
		v, err := p.taskValue(t)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return starlark.NewList(out), nil
}

func (p *Program) taskArg(v starlark.Value) (*kernel.Task, error) {
	var a uint64
	switch x := v.(type) {
	case *starlarkstruct.Struct:
		av, err := x.Attr("addr")
		if err != nil {
			return nil, err
		}
		if err := starlark.AsInt(av, &a); err != nil {
			return nil, err
		}
	default:
		var err error
		if a, err = p.addr(v); err != nil {
			return nil, err
		}
	}
	return p.s.K.Task(a)
}

// bt(TASK): the task's frames as strings "name+0xoff [module]".
func (p *Program) bt(args starlark.Tuple, kw []starlark.Tuple) (starlark.Value, error) {
	var v starlark.Value
	if err := starlark.UnpackArgs("bt", args, kw, "task", &v); err != nil {
		return nil, err
	}
	t, err := p.taskArg(v)
	if err != nil {
		return nil, err
	}
	bt := p.s.Backtrace(t, false)
	var out []starlark.Value
	for _, f := range bt.Frames {
		s := fmt.Sprintf("%s+%#x", f.Func, f.Offset)
		if f.Func == "" {
			s = fmt.Sprintf("%#x", f.IP)
		}
		if f.Module != "" {
			s += " [" + f.Module + "]"
		}
		out = append(out, starlark.String(s))
	}
	return starlark.NewList(out), nil
}

// slab_caches(): kmem -s as structs (name, objsize, allocated, total, slabs, slab_size, addr).
func (p *Program) slabCaches(args starlark.Tuple, kw []starlark.Tuple) (starlark.Value, error) {
	if err := starlark.UnpackArgs("slab_caches", args, kw); err != nil {
		return nil, err
	}
	cs, err := p.s.K.SlabCaches()
	if err != nil && cs == nil {
		return nil, err
	}
	var out []starlark.Value
	for _, c := range cs {
		out = append(out, starlarkstruct.FromStringDict(starlark.String("slab_cache"), starlark.StringDict{
			"name": starlark.String(c.Name), "objsize": starlark.MakeUint64(c.ObjSize), "allocated": starlark.MakeUint64(c.Allocated),
			"total": starlark.MakeUint64(c.Total), "slabs": starlark.MakeUint64(c.Slabs), "slab_size": starlark.MakeUint64(c.SlabSize),
			"addr": starlark.MakeUint64(c.Addr),
		}))
	}
	return starlark.NewList(out), nil
}

// files(TASK): open files as structs (fd, type, path, file: the struct file object).
func (p *Program) files(args starlark.Tuple, kw []starlark.Tuple) (starlark.Value, error) {
	var v starlark.Value
	if err := starlark.UnpackArgs("files", args, kw, "task", &v); err != nil {
		return nil, err
	}
	t, err := p.taskArg(v)
	if err != nil {
		return nil, err
	}
	fo, err := p.s.Files(t)
	if err != nil {
		return nil, err
	}
	ft, err := p.s.K.Vmlinux.Type("file")
	if err != nil {
		return nil, err
	}
	var out []starlark.Value
	for _, f := range fo.Files {
		out = append(out, starlarkstruct.FromStringDict(starlark.String("open_file"), starlark.StringDict{
			"fd": starlark.MakeInt(f.FD), "type": starlark.String(f.Type), "path": starlark.String(f.Path),
			"file": &Object{p: p, t: ft, addr: f.File},
		}))
	}
	return starlark.NewList(out), nil
}

// list(HEAD, TYPE, MEMBER): the objects of TYPE linked through their
// list_head MEMBER on the list headed by HEAD (an address, a symbol or a
// list_head object), as list_for_each_entry; cycles and more than a
// million entries stop the walk with an error.
func (p *Program) list(args starlark.Tuple, kw []starlark.Tuple) (starlark.Value, error) {
	var head starlark.Value
	var typ, member string
	if err := starlark.UnpackArgs("list", args, kw, "head", &head, "type", &typ, "member", &member); err != nil {
		return nil, err
	}
	h, err := p.addr(head)
	if err != nil {
		return nil, err
	}
	off, _, err := p.s.K.Vmlinux.MemberOffset(typ, member)
	if err != nil {
		return nil, err
	}
	t, err := p.s.K.Vmlinux.Type(typ)
	if err != nil {
		return nil, err
	}
	nodes, err := p.s.K.ListWalk(h, 0, 0)
	if err != nil {
		return nil, err
	}
	var out []starlark.Value
	for _, n := range nodes[1:] {
		out = append(out, &Object{p: p, t: t, addr: n - uint64(off)})
	}
	return starlark.NewList(out), nil
}

// Object is a typed object in the dump: a value of a C type at an address.
// Member access (obj.comm), indexing (obj[3]) and pointers (followed by
// member access and indexing) read the dump; members of integer, enum,
// bool and char-array types come back as Starlark ints, bools and strings.
type Object struct {
	p    *Program
	t    dwarf.Type
	addr uint64
}

// String prints a pointer as (TYPE)VALUE and other objects as drgn does,
// *(TYPE *)ADDRESS.
func (o *Object) String() string {
	if _, ok := symbolize.Strip(o.t).(*dwarf.PtrType); ok {
		v, err := o.p.s.K.U64(o.addr)
		if err != nil {
			return fmt.Sprintf("(%s)<unreadable at %#x>", o.t, o.addr)
		}
		return fmt.Sprintf("(%s)%#x", o.t, v)
	}
	return fmt.Sprintf("*(%s *)%#x", o.t, o.addr)
}
func (o *Object) Type() string { return "object" }
func (o *Object) Freeze()      {}

// Truth is false for a NULL pointer.
func (o *Object) Truth() starlark.Bool {
	if _, ok := symbolize.Strip(o.t).(*dwarf.PtrType); ok {
		v, err := o.p.s.K.U64(o.addr)
		return err == nil && v != 0
	}
	return true
}
func (o *Object) Hash() (uint32, error) { return uint32(o.addr) ^ uint32(o.addr>>32), nil }

// deref follows pointers (and typedefs) to the object pointed at.
func (o *Object) deref() (*Object, error) {
	t := symbolize.Strip(o.t)
	addr := o.addr
	for i := 0; i < 4; i++ {
		pt, ok := t.(*dwarf.PtrType)
		if !ok {
			return &Object{p: o.p, t: t, addr: addr}, nil
		}
		v, err := o.p.s.K.U64(addr)
		if err != nil {
			return nil, err
		}
		if v == 0 {
			return nil, fmt.Errorf("NULL pointer %s at %#x", o.t, addr)
		}
		addr, t = v, symbolize.Strip(pt.Type)
	}
	return &Object{p: o.p, t: t, addr: addr}, nil
}

// Attr is member access, plus address_ (the object's address), type_ (its
// type's name) and value_ (a pointer's value or an integer's).
func (o *Object) Attr(name string) (starlark.Value, error) {
	switch name {
	case "address_":
		return starlark.MakeUint64(o.addr), nil
	case "type_":
		return starlark.String(o.t.String()), nil
	case "value_":
		return o.scalar()
	}
	d, err := o.deref()
	if err != nil {
		return nil, err
	}
	st, ok := d.t.(*dwarf.StructType)
	if !ok {
		return nil, fmt.Errorf("%s has no members", d.t)
	}
	off, mt, ok := findMember(st, name)
	if !ok {
		return nil, nil
	}
	return (&Object{p: o.p, t: mt, addr: d.addr + uint64(off)}).convert()
}

func findMember(st *dwarf.StructType, name string) (int64, dwarf.Type, bool) {
	for _, f := range st.Field {
		if f.Name == name {
			return f.ByteOffset, f.Type, true
		}
	}
	for _, f := range st.Field {
		if f.Name == "" {
			if in, ok := symbolize.Strip(f.Type).(*dwarf.StructType); ok {
				if o, t, ok := findMember(in, name); ok {
					return f.ByteOffset + o, t, true
				}
			}
		}
	}
	return 0, nil, false
}

// AttrNames lists the members.
func (o *Object) AttrNames() []string {
	names := []string{"address_", "type_", "value_"}
	if d, err := o.deref(); err == nil {
		if st, ok := d.t.(*dwarf.StructType); ok {
			for _, f := range st.Field {
				if f.Name != "" {
					names = append(names, f.Name)
				}
			}
		}
	}
	return names
}

// convert turns scalars and strings into Starlark values; others stay objects.
func (o *Object) convert() (starlark.Value, error) {
	switch t := symbolize.Strip(o.t).(type) {
	case *dwarf.ArrayType:
		if et := symbolize.Strip(t.Type); et.Size() == 1 {
			switch et.(type) {
			case *dwarf.CharType, *dwarf.UcharType:
				n := min(max(t.Size(), 0), 4096)
				b := make([]byte, n)
				if _, err := o.p.s.K.ReadAt(b, o.addr); err != nil {
					return nil, err
				}
				if i := strings.IndexByte(string(b), 0); i >= 0 {
					b = b[:i]
				}
				return starlark.String(b), nil
			}
		}
		return o, nil
	case *dwarf.IntType, *dwarf.UintType, *dwarf.EnumType, *dwarf.BoolType, *dwarf.CharType, *dwarf.UcharType:
		return o.scalar()
	}
	return o, nil
}

// scalar reads an integer, enum, bool or pointer value.
func (o *Object) scalar() (starlark.Value, error) {
	t := symbolize.Strip(o.t)
	n := t.Size()
	if _, ok := t.(*dwarf.PtrType); ok {
		n = 8
	}
	if n <= 0 || n > 8 {
		return nil, fmt.Errorf("%s is not a scalar", o.t)
	}
	b := make([]byte, 8)
	if _, err := o.p.s.K.ReadAt(b[:n], o.addr); err != nil {
		return nil, err
	}
	var u uint64
	for i := n - 1; i >= 0; i-- {
		u = u<<8 | uint64(b[i])
	}
	switch t.(type) {
	case *dwarf.BoolType:
		return starlark.Bool(u != 0), nil
	case *dwarf.IntType, *dwarf.EnumType, *dwarf.CharType:
		sh := uint(64 - 8*n)
		return starlark.MakeInt64(int64(u<<sh) >> sh), nil
	}
	return starlark.MakeUint64(u), nil
}

// Get is obj[i] for arrays and pointers.
func (o *Object) Get(k starlark.Value) (starlark.Value, bool, error) {
	var i int
	if err := starlark.AsInt(k, &i); err != nil {
		return nil, false, fmt.Errorf("%s[%s]: want an integer index", o.t, k)
	}
	v, err := o.index(i)
	return v, err == nil, err
}

func (o *Object) index(i int) (starlark.Value, error) {
	switch t := symbolize.Strip(o.t).(type) {
	case *dwarf.ArrayType:
		if t.Count >= 0 && int64(i) >= t.Count {
			return nil, fmt.Errorf("index %d out of range [0, %d)", i, t.Count)
		}
		return (&Object{p: o.p, t: t.Type, addr: o.addr + uint64(i)*uint64(t.Type.Size())}).convert()
	case *dwarf.PtrType:
		v, err := o.p.s.K.U64(o.addr)
		if err != nil {
			return nil, err
		}
		return (&Object{p: o.p, t: t.Type, addr: v + uint64(i)*uint64(max(t.Type.Size(), 1))}).convert()
	}
	return nil, fmt.Errorf("%s is not an array or pointer", o.t)
}

var (
	_ starlark.HasAttrs = (*Object)(nil)
	_ starlark.Mapping  = (*Object)(nil)
	_ starlark.HasAttrs = (*Program)(nil)
	_ starlark.Mapping  = (*Program)(nil)
)
