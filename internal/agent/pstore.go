// Package agent picks up the crash logs a host kept across its reboot (pstore
// records, kdump's saved dmesg) and delivers them to a kcrash collector: each
// crash is one Dump with a key derived from its own bytes, sent until the collector
// acknowledges it with stored report IDs, and only then removed (pstore) or marked
// done (kdump), in a journal that survives the agent being killed at any point.
package agent

import (
	"bytes"
	"compress/flate"
	"compress/zlib"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// Dump is one crash log to deliver.
type Dump struct {
	Key    string   // idempotency key: a hash of the host and the log's bytes
	Source string   // "pstore" or "kdump"
	Files  []string // the files it was read from (pstore: removed once acknowledged)
	Text   []byte
}

// MaxRecord bounds one pstore record or saved dmesg read (and decompressed).
const MaxRecord = 16 << 20

// pstoreName is a pstore file of a kernel log dump: dmesg-BACKEND-ID, with .enc.z
// when the kernel could not decompress a compressed record.
var pstoreName = regexp.MustCompile(`^dmesg-([a-z0-9_]+)-(\d+)(\.enc\.z)?$`)

// partHeader is the first line pstore writes in each part: "Oops#1 Part1"
// (fs/pstore/platform.c: pstore_dump, "%s#%d Part%u\n").
var partHeader = regexp.MustCompile(`^([A-Za-z]+)#(\d+) Part(\d+)\r?\n`)

type part struct {
	path   string
	reason string
	count  int
	n      int
	id     uint64
	body   []byte
}

// ReadPstore reads the kernel log dumps under dir (/sys/fs/pstore) and joins the
// parts of each dump in order: a backend that splits a long log (efi, erst) writes
// Part1 as its newest chunk, so the text is PartN … Part1. Records of different
// dumps (Oops#1, Panic#2) stay separate. A record that cannot be read or
// decompressed is returned in bad with why, and left alone.
func ReadPstore(dir, host string) (dumps []Dump, bad []error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, []error{err}
	}
	groups := map[string][]part{}
	var order []string
	for _, e := range ents {
		m := pstoreName.FindStringSubmatch(e.Name())
		if m == nil || !e.Type().IsRegular() {
			continue
		}
		p := filepath.Join(dir, e.Name())
		data, err := readRecord(p, m[3] != "")
		if err != nil {
			bad = append(bad, fmt.Errorf("%s: %w", p, err))
			continue
		}
		id, _ := strconv.ParseUint(m[2], 10, 64)
		pt := part{path: p, id: id, body: data, n: 1}
		if h := partHeader.FindSubmatch(data); h != nil {
			pt.reason = string(h[1])
			pt.count, _ = strconv.Atoi(string(h[2]))
			pt.n, _ = strconv.Atoi(string(h[3]))
			pt.body = data[len(h[0]):]
		}
		// ramoops keeps one dump per record; efi and erst split one dump over
		// several records that share the reason and count.
		g := m[1] + "/" + e.Name()
		if m[1] != "ramoops" && pt.reason != "" {
			g = fmt.Sprintf("%s/%s#%d", m[1], pt.reason, pt.count)
		}
		if _, ok := groups[g]; !ok {
			order = append(order, g)
		}
		groups[g] = append(groups[g], pt)
	}
	for _, g := range order {
		ps := groups[g]
		sort.Slice(ps, func(i, j int) bool {
			if ps[i].n != ps[j].n {
				return ps[i].n > ps[j].n
			}
			return ps[i].id < ps[j].id
		})
		var text bytes.Buffer
		d := Dump{Source: "pstore"}
		for _, p := range ps {
			text.Write(p.body)
			if n := text.Len(); n > 0 && text.Bytes()[n-1] != '\n' {
				text.WriteByte('\n')
			}
			d.Files = append(d.Files, p.path)
		}
		d.Text = text.Bytes()
		d.Key = key(host, "pstore", d.Text)
		dumps = append(dumps, d)
	}
	return dumps, bad
}

// readRecord reads a record, bounded, inflating a compressed one (pstore compresses
// with deflate, raw in the kernel's zlib use; zlib-wrapped is accepted too).
func readRecord(path string, compressed bool) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxRecord+1))
	if err != nil {
		return nil, err
	}
	if len(data) > MaxRecord {
		return nil, fmt.Errorf("larger than %d bytes", MaxRecord)
	}
	if !compressed {
		return data, nil
	}
	return inflate(data)
}

// inflate decompresses raw deflate or zlib data, at most MaxRecord bytes.
func inflate(data []byte) ([]byte, error) {
	try := func(r io.ReadCloser) ([]byte, error) {
		defer r.Close()
		out, err := io.ReadAll(io.LimitReader(r, MaxRecord+1))
		if err != nil {
			return nil, err
		}
		if len(out) > MaxRecord {
			return nil, fmt.Errorf("inflates to more than %d bytes", MaxRecord)
		}
		return out, nil
	}
	out, err := try(flate.NewReader(bytes.NewReader(data)))
	if err == nil {
		return out, nil
	}
	if zr, zerr := zlib.NewReader(bytes.NewReader(data)); zerr == nil {
		if out, zerr := try(zr); zerr == nil {
			return out, nil
		}
	}
	return nil, fmt.Errorf("compressed record: %w", err)
}

// key is a dump's idempotency key: the same bytes from the same host always give
// the same key, whatever the file is called this boot.
func key(host, source string, text []byte) string {
	h := sha256.New()
	for _, s := range []string{host, source} {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	h.Write(text)
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// ReadCrashDir finds kdump's saved kernel logs under dir (/var/crash): in each
// directory, vmcore-dmesg.txt (kexec-tools, makedumpfile --dump-dmesg) or dmesg.*
// (Debian's kdump-tools). The dump file next to it, when there is one, is in
// Files after the log (vmcore, dump.*).
func ReadCrashDir(dir, host string) (dumps []Dump, bad []error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, []error{err}
	}
	for _, e := range ents {
		if !e.IsDir() {
			continue
		}
		sub := filepath.Join(dir, e.Name())
		files, _ := os.ReadDir(sub)
		var log, core string
		for _, f := range files {
			n := f.Name()
			switch {
			case !f.Type().IsRegular():
			case n == "vmcore-dmesg.txt" || strings.HasPrefix(n, "dmesg.") && log == "":
				log = filepath.Join(sub, n)
			case n == "vmcore" || strings.HasPrefix(n, "dump."):
				core = filepath.Join(sub, n)
			}
		}
		if log == "" {
			continue
		}
		data, err := readRecord(log, false)
		if err != nil {
			bad = append(bad, fmt.Errorf("%s: %w", log, err))
			continue
		}
		d := Dump{Source: "kdump", Files: []string{log}, Text: data}
		if core != "" {
			d.Files = append(d.Files, core)
		}
		// The directory's name is part of the identity: two crashes printing the
		// same log (a fresh boot each) are two crashes.
		d.Key = key(host, "kdump/"+e.Name(), data)
		dumps = append(dumps, d)
	}
	return dumps, bad
}
