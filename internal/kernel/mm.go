package kernel

import (
	"errors"
	"fmt"
	"strings"
)

// VMA is one struct vm_area_struct.
type VMA struct {
	Addr       uint64 `json:"addr"`
	Start, End uint64
	Flags      uint64
	File       uint64 // struct file *, 0 for anonymous memory
	Path       string `json:",omitempty"`
}

// maxVMAs bounds a maple tree walk.
const maxVMAs = 1 << 20

// maple tree encoding (include/linux/maple_tree.h, lib/maple_tree.c).
const (
	mapleNodeMask   = 0xff
	mapleTypeShift  = 3
	mapleDense      = 0
	mapleLeaf64     = 1
	mapleRange64    = 2
	mapleArange64   = 3
	mapleNodeSize   = 256
	mapleRangeSlots = 16 // maple_range_64: 15 pivots, 16 slots, metadata in the last slot
	mapleArSlots    = 10 // maple_arange_64: 9 pivots, 10 slots, 10 gaps, metadata
)

// VMAs lists a mm_struct's memory areas in address order: the maple tree
// mm_mt (6.1+) walked depth-first, or the mmap linked list of older kernels.
func (k *Kernel) VMAs(mm uint64) ([]VMA, error) {
	v := k.Vmlinux
	o, err := v.Offsets("vm_area_struct", "vm_start", "vm_end", "vm_flags", "vm_file")
	if err != nil {
		return nil, err
	}
	var addrs []uint64
	if mt, _, err := v.MemberOffset("mm_struct", "mm_mt"); err == nil {
		root, err := k.U64(mm + uint64(mt) + 8) // struct maple_tree: spinlock ma_lock, unsigned int ma_flags, void *ma_root
		if err != nil {
			return nil, err
		}
		if addrs, err = k.mapleEntries(root); err != nil && len(addrs) == 0 {
			return nil, err
		}
	} else {
		mmap, _, err1 := v.MemberOffset("mm_struct", "mmap")
		next, _, err2 := v.MemberOffset("vm_area_struct", "vm_next")
		if err1 != nil || err2 != nil {
			return nil, fmt.Errorf("mm_struct has neither mm_mt nor mmap: %w", err1)
		}
		first, err := k.U64(mm + uint64(mmap))
		if err != nil {
			return nil, err
		}
		if first != 0 {
			addrs, err = k.ListWalk(first, next, maxVMAs)
			if err != nil {
				return nil, err
			}
		}
	}
	out := make([]VMA, 0, len(addrs))
	for _, a := range addrs {
		m := VMA{Addr: a}
		var err error
		if m.Start, err = k.U64(a + uint64(o[0])); err != nil {
			continue
		}
		m.End, _ = k.U64(a + uint64(o[1]))
		m.Flags, _ = k.U64(a + uint64(o[2]))
		m.File, _ = k.U64(a + uint64(o[3]))
		if m.File != 0 {
			m.Path, _ = k.FilePath(m.File)
		}
		out = append(out, m)
	}
	return out, nil
}

// mapleEntries returns the non-NULL leaf entries of a maple tree in index
// order. Nodes are 256 bytes: parent, then pivots and slots by type; the end
// of a node's data is ma_data_end's: the metadata's end byte, or the last
// pivot when it is set.
func (k *Kernel) mapleEntries(root uint64) ([]uint64, error) {
	var out []uint64
	if root == 0 {
		return nil, nil
	}
	if root&3 != 2 || root < 4096 {
		return []uint64{root}, nil // a single entry at the root
	}
	var errs []error
	nodes := 0
	var walk func(enode, max uint64, depth int)
	walk = func(enode, max uint64, depth int) {
		nodes++
		if depth > 32 || nodes > maxVMAs || len(out) > maxVMAs {
			errs = append(errs, errors.New("maple tree too deep or too large"))
			return
		}
		typ := (enode >> mapleTypeShift) & 0xf
		node := enode &^ mapleNodeMask
		var b [mapleNodeSize]byte
		if _, err := k.ReadAt(b[:], node); err != nil {
			errs = append(errs, err)
			return
		}
		u64 := func(off int) uint64 {
			var v uint64
			for i := 7; i >= 0; i-- {
				v = v<<8 | uint64(b[off+i])
			}
			return v
		}
		var npiv, slotOff, end int
		switch typ {
		case mapleLeaf64, mapleRange64:
			npiv, slotOff = mapleRangeSlots-1, 8+8*(mapleRangeSlots-1)
			end = int(b[slotOff+8*(mapleRangeSlots-1)]) // metadata end, in the last slot
			if p := u64(8 + 8*(npiv-1)); p != 0 {
				end = npiv
				if p == max {
					end = npiv - 1
				}
			}
		case mapleArange64:
			npiv, slotOff = mapleArSlots-1, 8+8*(mapleArSlots-1)
			end = int(b[slotOff+16*mapleArSlots]) // after slots and gaps
		default:
			errs = append(errs, fmt.Errorf("maple node %#x: unsupported type %d", node, typ))
			return
		}
		if end > npiv {
			end = npiv
		}
		for i := 0; i <= end; i++ {
			slot := u64(slotOff + 8*i)
			cmax := max
			if i < npiv {
				if p := u64(8 + 8*i); p != 0 {
					cmax = p
				}
			}
			if slot == 0 {
				continue
			}
			if typ == mapleLeaf64 {
				out = append(out, slot)
			} else {
				walk(slot, cmax, depth+1)
			}
		}
	}
	walk(root, ^uint64(0), 0)
	return out, errors.Join(errs...)
}

// pathLayout holds the offsets d_path needs.
type pathLayout struct {
	dParent, dName, mntRoot, mountMnt, mntParent, mntMountpoint, fPath int64
}

func (k *Kernel) pathLayout() (*pathLayout, error) {
	k.cacheMu.Lock()
	l := k.pathL
	k.cacheMu.Unlock()
	if l != nil {
		return l, nil
	}
	v := k.Vmlinux
	l = &pathLayout{}
	var err error
	set := func(p *int64, typ, m string) {
		if err == nil {
			*p, _, err = v.MemberOffset(typ, m)
		}
	}
	set(&l.dParent, "dentry", "d_parent")
	set(&l.dName, "dentry", "d_name")
	set(&l.mntRoot, "vfsmount", "mnt_root")
	set(&l.mountMnt, "mount", "mnt")
	set(&l.mntParent, "mount", "mnt_parent")
	set(&l.mntMountpoint, "mount", "mnt_mountpoint")
	set(&l.fPath, "file", "f_path")
	if err != nil {
		return nil, err
	}
	k.cacheMu.Lock()
	k.pathL = l
	k.cacheMu.Unlock()
	return l, nil
}

// Path renders a struct path {vfsmount *mnt; dentry *dentry} as d_path does:
// dentry names up to the mount's root, then across mount points (struct
// mount: mnt_parent, mnt_mountpoint) to the namespace's root. At most 64
// components per mount and 64 mounts.
func (k *Kernel) Path(mnt, dentry uint64) (string, error) {
	l, err := k.pathLayout()
	if err != nil {
		return "", err
	}
	var parts []string
	for hops := 0; hops < 64; hops++ {
		root, err := k.U64(mnt + uint64(l.mntRoot))
		if err != nil {
			return "", err
		}
		for i := 0; dentry != root && i < 64; i++ {
			name, err := k.dentryName(l, dentry)
			if err != nil {
				return "", err
			}
			parent, err := k.U64(dentry + uint64(l.dParent))
			if err != nil {
				return "", err
			}
			if parent == dentry {
				// A pseudo filesystem's dentry (pipe, socket, anon inode): its own name.
				if len(parts) == 0 {
					return name, nil
				}
				break
			}
			parts = append(parts, name)
			dentry = parent
		}
		m := mnt - uint64(l.mountMnt)
		parent, err := k.U64(m + uint64(l.mntParent))
		if err != nil || parent == m || parent == 0 {
			break
		}
		if dentry, err = k.U64(m + uint64(l.mntMountpoint)); err != nil {
			return "", err
		}
		mnt = parent + uint64(l.mountMnt)
	}
	for i, j := 0, len(parts)-1; i < j; i, j = i+1, j-1 {
		parts[i], parts[j] = parts[j], parts[i]
	}
	return "/" + strings.Join(parts, "/"), nil
}

func (k *Kernel) dentryName(l *pathLayout, dentry uint64) (string, error) {
	p, err := k.U64(dentry + uint64(l.dName) + 8) // struct qstr: hash_len, then name
	if err != nil {
		return "", err
	}
	return k.CString(p, 256)
}

// FilePath is the path of a struct file (f_path).
func (k *Kernel) FilePath(file uint64) (string, error) {
	l, err := k.pathLayout()
	if err != nil {
		return "", err
	}
	mnt, err1 := k.U64(file + uint64(l.fPath))
	dentry, err2 := k.U64(file + uint64(l.fPath) + 8)
	if err := errors.Join(err1, err2); err != nil {
		return "", err
	}
	return k.Path(mnt, dentry)
}
