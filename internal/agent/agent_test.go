package agent

import (
	"bytes"
	"compress/flate"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// labRecords copies the pstore records the lab's pstore scenario read back after a
// warm reset (ramoops: an Oops and the Panic that followed) into a fresh directory.
func labRecords(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for _, n := range []string{"dmesg-ramoops-0", "dmesg-ramoops-1"} {
		data, err := os.ReadFile(filepath.Join("testdata/pstore", n))
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(dir, n), data, 0o444)
	}
	return dir
}

func TestReadPstoreRamoops(t *testing.T) {
	dumps, bad := ReadPstore(labRecords(t), "h")
	if len(bad) > 0 || len(dumps) != 2 {
		t.Fatalf("%d dumps, bad %v", len(dumps), bad)
	}
	for _, d := range dumps {
		if !bytes.Contains(d.Text, []byte("<1>[    2.844721] BUG: kernel NULL pointer dereference")) || bytes.HasPrefix(d.Text, []byte("Oops#")) || bytes.HasPrefix(d.Text, []byte("Panic#")) {
			t.Errorf("%v: text starts %q", d.Files, d.Text[:40])
		}
	}
	if dumps[0].Key == dumps[1].Key {
		t.Error("two records have one key")
	}
	again, _ := ReadPstore(labRecords(t), "h")
	other, _ := ReadPstore(labRecords(t), "h2")
	if again[0].Key != dumps[0].Key || other[0].Key == dumps[0].Key {
		t.Error("the key is not a function of the host and the bytes")
	}
}

// TestReadPstoreParts splits the lab's record the way efi and erst do (PartN is the
// oldest chunk), one part compressed (.enc.z, raw deflate), shuffles the file IDs,
// and checks the parts are joined back in order.
func TestReadPstoreParts(t *testing.T) {
	rec, err := os.ReadFile("testdata/pstore/dmesg-ramoops-0")
	if err != nil {
		t.Fatal(err)
	}
	body := rec[bytes.IndexByte(rec, '\n')+1:]
	dir := t.TempDir()
	// kmsg_dump_get_buffer fills a part with whole lines.
	cut := func(n int) int { return n + bytes.IndexByte(body[n:], '\n') + 1 }
	a, b := cut(10000), cut(20000)
	chunks := [][]byte{body[:a], body[a:b], body[b:]}
	for i, c := range chunks {
		part := len(chunks) - i // the newest chunk is Part1
		data := append([]byte(fmt.Sprintf("Oops#1 Part%d\n", part)), c...)
		name := fmt.Sprintf("dmesg-efi-%d", 177000+(i*7)%5)
		if part == 2 {
			var z bytes.Buffer
			w, _ := flate.NewWriter(&z, flate.BestCompression)
			w.Write(data)
			w.Close()
			data, name = z.Bytes(), name+".enc.z"
		}
		os.WriteFile(filepath.Join(dir, name), data, 0o444)
	}
	// A second dump in the same backend stays separate; junk is reported, not fatal.
	os.WriteFile(filepath.Join(dir, "dmesg-efi-199"), []byte("Panic#2 Part1\n<0>[ 9.0] Kernel panic - not syncing: x\n"), 0o444)
	os.WriteFile(filepath.Join(dir, "dmesg-efi-200.enc.z"), []byte("not deflate"), 0o444)
	os.WriteFile(filepath.Join(dir, "console-ramoops-0"), []byte("console"), 0o444)
	dumps, bad := ReadPstore(dir, "h")
	if len(bad) != 1 || !strings.Contains(bad[0].Error(), "dmesg-efi-200.enc.z") {
		t.Errorf("bad records: %v", bad)
	}
	if len(dumps) != 2 {
		t.Fatalf("%d dumps", len(dumps))
	}
	var oops *Dump
	for i := range dumps {
		if len(dumps[i].Files) == 3 {
			oops = &dumps[i]
		}
	}
	if oops == nil || !bytes.Equal(oops.Text, body) {
		t.Fatalf("the joined parts differ from the record (%d files)", len(dumps[0].Files))
	}
}

func TestReadCrashDir(t *testing.T) {
	dir := t.TempDir()
	rec, _ := os.ReadFile("testdata/pstore/dmesg-ramoops-0")
	os.MkdirAll(filepath.Join(dir, "202611301012"), 0o755)
	os.WriteFile(filepath.Join(dir, "202611301012", "dmesg.202611301012"), rec, 0o644)
	os.WriteFile(filepath.Join(dir, "202611301012", "dump.202611301012"), []byte("KDUMP   "), 0o644)
	os.MkdirAll(filepath.Join(dir, "127.0.0.1-2026-11-30-10:20:00"), 0o755)
	os.WriteFile(filepath.Join(dir, "127.0.0.1-2026-11-30-10:20:00", "vmcore-dmesg.txt"), rec, 0o644)
	os.MkdirAll(filepath.Join(dir, "empty"), 0o755)
	os.WriteFile(filepath.Join(dir, "kexec_cmd"), []byte("x"), 0o644)
	dumps, bad := ReadCrashDir(dir, "h")
	if len(bad) > 0 || len(dumps) != 2 {
		t.Fatalf("%d dumps, bad %v", len(dumps), bad)
	}
	if dumps[0].Key == dumps[1].Key {
		t.Error("two crash directories with the same log share a key")
	}
	for _, d := range dumps {
		if d.Source != "kdump" {
			t.Errorf("source %q", d.Source)
		}
	}
	if len(dumps[1].Files) != 2 || !strings.HasPrefix(filepath.Base(dumps[1].Files[1]), "dump.") {
		t.Errorf("files %v", dumps[1].Files)
	}
}

func FuzzReadPstore(f *testing.F) {
	rec, _ := os.ReadFile("testdata/pstore/dmesg-ramoops-1")
	f.Add(rec[:2000], false)
	f.Add([]byte("Oops#1 Part2\nabc"), true)
	f.Fuzz(func(t *testing.T, data []byte, compressed bool) {
		dir := t.TempDir()
		name := "dmesg-erst-1"
		if compressed {
			name += ".enc.z"
		}
		os.WriteFile(filepath.Join(dir, name), data, 0o444)
		ReadPstore(dir, "h")
	})
}
