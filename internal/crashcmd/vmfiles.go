package crashcmd

import (
	"encoding/json"
	"fmt"
	"io"

	"github.com/kcrash/kcrash/internal/kernel"
)

func init() {
	register(&Command{Name: "vm", Synopsis: "a task's memory areas (maple tree on 6.1+): vm [PID|TASK]", Run: runVm})
	register(&Command{Name: "files", Synopsis: "a task's open files: files [PID|TASK]", Run: runFiles})
}

// VmOut is vm's answer for one task.
type VmOut struct {
	Task    *kernel.Task `json:"task"`
	MM      uint64       `json:"mm"`
	PGD     uint64       `json:"pgd"`
	RSS     uint64       `json:"rss_kb"`
	TotalVM uint64       `json:"total_vm_kb"`
	VMAs    []kernel.VMA `json:"vmas"`
}

func runVm(s *Session, w io.Writer, args []string) error {
	ts, err := s.taskArgs(args)
	if err != nil {
		return err
	}
	var outs []*VmOut
	for _, t := range ts {
		o := &VmOut{Task: t, MM: t.Mm, RSS: t.RSS, TotalVM: t.VSZ}
		if t.Mm != 0 {
			if off, _, err := s.K.Vmlinux.MemberOffset("mm_struct", "pgd"); err == nil {
				o.PGD, _ = s.K.U64(t.Mm + uint64(off))
			}
			if o.VMAs, err = s.K.VMAs(t.Mm); err != nil {
				return err
			}
		}
		outs = append(outs, o)
	}
	if s.JSON {
		return json.NewEncoder(w).Encode(outs)
	}
	for i, o := range outs {
		if i > 0 {
			fmt.Fprintln(w)
		}
		fmt.Fprintln(w, taskHeader(o.Task))
		if o.MM == 0 {
			fmt.Fprintln(w, "       MM               PGD          RSS    TOTAL_VM")
			fmt.Fprintln(w, "       0                 0            0k      0k   ")
			continue
		}
		fmt.Fprintln(w, "       MM               PGD          RSS    TOTAL_VM")
		fmt.Fprintf(w, "%x  %x  %-6s  %-7s\n", o.MM, o.PGD, fmt.Sprintf("%dk", o.RSS), fmt.Sprintf("%dk", o.TotalVM))
		fmt.Fprintln(w, "      VMA           START       END     FLAGS FILE")
		for _, v := range o.VMAs {
			fmt.Fprintf(w, "%x %10x %10x %7x %s\n", v.Addr, v.Start, v.End, v.Flags, v.Path)
		}
	}
	return nil
}

// OpenFile is one open file descriptor.
type OpenFile struct {
	FD     int    `json:"fd"`
	File   uint64 `json:"file"`
	Dentry uint64 `json:"dentry"`
	Inode  uint64 `json:"inode"`
	Type   string `json:"type"`
	Path   string `json:"path"`
}

// FilesOut is files' answer for one task.
type FilesOut struct {
	Task  *kernel.Task `json:"task"`
	Root  string       `json:"root"`
	Cwd   string       `json:"cwd"`
	Files []OpenFile   `json:"files"`
}

// maxFDs bounds a file table walk.
const maxFDs = 1 << 20

// Files reads task->fs (root, pwd) and task->files->fdt (max_fds, fd[]).
func (s *Session) Files(t *kernel.Task) (*FilesOut, error) {
	k, v := s.K, s.K.Vmlinux
	out := &FilesOut{Task: t}
	o, err := v.Offsets("task_struct", "fs", "files")
	if err != nil {
		return nil, err
	}
	if fs, err := k.U64(t.Addr + uint64(o[0])); err == nil && fs != 0 {
		if fo, err := v.Offsets("fs_struct", "root", "pwd"); err == nil {
			for i, dst := range []*string{&out.Root, &out.Cwd} {
				mnt, _ := k.U64(fs + uint64(fo[i]))
				d, _ := k.U64(fs + uint64(fo[i]) + 8)
				*dst, _ = k.Path(mnt, d)
			}
		}
	}
	files, err := k.U64(t.Addr + uint64(o[1]))
	if err != nil || files == 0 {
		return out, err
	}
	fdtOff, _, err := v.MemberOffset("files_struct", "fdt")
	if err != nil {
		return nil, err
	}
	fo, err := v.Offsets("fdtable", "max_fds", "fd")
	if err != nil {
		return nil, err
	}
	ffo, err := v.Offsets("file", "f_path", "f_inode")
	if err != nil {
		return nil, err
	}
	modeOff, _, err := v.MemberOffset("inode", "i_mode")
	if err != nil {
		return nil, err
	}
	fdt, err := k.U64(files + uint64(fdtOff))
	if err != nil {
		return nil, err
	}
	max, err := k.U32(fdt + uint64(fo[0]))
	if err != nil {
		return nil, err
	}
	arr, err := k.U64(fdt + uint64(fo[1]))
	if err != nil {
		return nil, err
	}
	for fd := 0; fd < int(min(max, maxFDs)); fd++ {
		f, err := k.U64(arr + uint64(fd)*8)
		if err != nil {
			return out, err
		}
		if f == 0 {
			continue
		}
		of := OpenFile{FD: fd, File: f}
		of.Dentry, _ = k.U64(f + uint64(ffo[0]) + 8)
		of.Inode, _ = k.U64(f + uint64(ffo[1]))
		if of.Inode != 0 {
			var b [2]byte
			if _, err := k.ReadAt(b[:], of.Inode+uint64(modeOff)); err == nil {
				of.Type = inodeType(uint16(b[0]) | uint16(b[1])<<8)
			}
		}
		of.Path, _ = k.FilePath(f)
		out.Files = append(out.Files, of)
	}
	return out, nil
}

// inodeType names an i_mode's file type as crash does.
func inodeType(mode uint16) string {
	switch mode & 0xf000 {
	case 0x8000:
		return "REG"
	case 0x4000:
		return "DIR"
	case 0x2000:
		return "CHR"
	case 0x6000:
		return "BLK"
	case 0x1000:
		return "FIFO"
	case 0xc000:
		return "SOCK"
	case 0xa000:
		return "LNK"
	}
	return "UNKN"
}

func runFiles(s *Session, w io.Writer, args []string) error {
	ts, err := s.taskArgs(args)
	if err != nil {
		return err
	}
	var outs []*FilesOut
	for _, t := range ts {
		o, err := s.Files(t)
		if err != nil {
			return err
		}
		outs = append(outs, o)
	}
	if s.JSON {
		return json.NewEncoder(w).Encode(outs)
	}
	for i, o := range outs {
		if i > 0 {
			fmt.Fprintln(w)
		}
		fmt.Fprintln(w, taskHeader(o.Task))
		fmt.Fprintf(w, "ROOT: %s    CWD: %s\n", o.Root, o.Cwd)
		if len(o.Files) == 0 {
			fmt.Fprintln(w, "No open files")
			continue
		}
		fmt.Fprintln(w, " FD       FILE            DENTRY           INODE       TYPE PATH")
		for _, f := range o.Files {
			fmt.Fprintf(w, "%3d %x %x %x %-4s %s\n", f.FD, f.File, f.Dentry, f.Inode, f.Type, f.Path)
		}
	}
	return nil
}
