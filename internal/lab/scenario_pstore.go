package lab

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Ramoops is where the pstore scenario keeps ramoops: 1 MiB at 80 MiB of the
// 128 MiB guest, reserved with memmap= (so neither the kernel nor KASLR's choice of
// physical address uses it) and below where QEMU loads the initramfs (the top of
// RAM). QEMU's system_reset keeps RAM, so the records survive the warm reset.
const (
	RamoopsAddr = "0x5000000"
	RamoopsSize = "0x100000"
)

// PstoreArgs are the kernel parameters of a guest with ramoops.
func PstoreArgs() string {
	return fmt.Sprintf("memmap=%s$%s lab_ramoops=%s,%s", RamoopsSize, RamoopsAddr, RamoopsAddr, RamoopsSize)
}

// PstoreRecord is one pstore file read back after the reboot (JSON contract).
type PstoreRecord struct {
	Name   string   `json:"name"`
	Bytes  int      `json:"bytes"`
	Titles []string `json:"titles"`
	Path   string   `json:"path"`
}

// PstoreResult is the pstore scenario's result (JSON contract: serial_titles and
// pstore_records).
type PstoreResult struct {
	ABI           string         `json:"abi"`
	Trigger       string         `json:"trigger"`
	SerialTitles  []string       `json:"serial_titles"`
	PstoreRecords []PstoreRecord `json:"pstore_records"`
	// OopsLinesMatched says every text line of the oops the serial console showed is
	// in a pstore record, byte for byte (after the record's "<N>" level prefixes).
	OopsLinesMatched bool     `json:"oops_lines_matched"`
	OopsLines        int      `json:"oops_lines"`
	Missing          []string `json:"missing_lines,omitempty"`
	Serial           string   `json:"serial"`
	SecondsToReboot  float64  `json:"seconds_to_reboot"`
	// CollectorReports are the reports the host's collector holds after kcrash agent,
	// run inside the guest after the warm reset, delivered the records (Agent); the
	// same with the collector down at the agent's first attempt: AgentCollectorDown.
	CollectorReports   []CollectorReport `json:"collector_reports"`
	Agent              *AgentRun         `json:"agent"`
	AgentCollectorDown *AgentRun         `json:"agent_collector_down"`
}

var pstoreRecordRE = regexp.MustCompile(`(?m)^LAB: pstore-record (\S+) (\d+)\r?$`)

// extractPstore finds the records the guest's init printed (base64 between
// "LAB: pstore-record NAME BYTES" and "LAB: pstore-end NAME").
func extractPstore(console []byte) (map[string][]byte, []string, error) {
	recs := map[string][]byte{}
	var order []string
	for _, m := range pstoreRecordRE.FindAllSubmatchIndex(console, -1) {
		name := string(console[m[2]:m[3]])
		size, _ := strconv.Atoi(string(console[m[4]:m[5]]))
		rest := console[m[1]:]
		end := bytes.Index(rest, []byte("LAB: pstore-end "+name))
		if end < 0 {
			return nil, nil, fmt.Errorf("pstore record %s has no end marker", name)
		}
		b64 := strings.Map(func(r rune) rune {
			if r == '\r' || r == '\n' || r == ' ' {
				return -1
			}
			return r
		}, string(rest[:end]))
		data, err := base64.StdEncoding.DecodeString(b64)
		if err != nil {
			return nil, nil, fmt.Errorf("pstore record %s: %w", name, err)
		}
		if len(data) != size {
			return nil, nil, fmt.Errorf("pstore record %s: %d bytes decoded, the guest said %d", name, len(data), size)
		}
		recs[name] = data
		order = append(order, name)
	}
	return recs, order, nil
}

// levelRE is a syslog level prefix as kmsg_dump writes it into pstore records.
var levelRE = regexp.MustCompile(`^<\d+>`)

// oopsLines are the console lines of the first report that carry a timestamp.
func oopsLines(serial []byte) []string {
	var out []string
	in := false
	for _, l := range strings.Split(strings.ReplaceAll(string(serial), "\r", ""), "\n") {
		if !strings.HasPrefix(l, "[") {
			continue
		}
		if strings.Contains(l, "BUG: ") || strings.Contains(l, "Oops:") {
			in = true
		}
		if in {
			out = append(out, l)
			if strings.Contains(l, "---[ end trace") {
				break
			}
		}
	}
	return out
}

// runPstoreScenario crashes a guest with ramoops (LKDTM ACCESS_NULL, oops=panic),
// warm-resets it and reads the records back on the next boot.
func runPstoreScenario(ctx context.Context, cfg *Config, o ScenarioOptions, dir string) (any, error) {
	k, err := kernelFor(ctx, cfg, o.Kernel, false)
	if err != nil {
		return nil, err
	}
	const trigger = "ACCESS_NULL"
	res := &PstoreResult{ABI: k.Release, Trigger: trigger, SerialTitles: []string{}, PstoreRecords: []PstoreRecord{}}
	base := filepath.Join(dir, "pstore")
	res.Serial = base + ".serial"
	cmdline := strings.Join(strings.Fields(fmt.Sprintf("lab_name=pstore lab_trigger=%s lab_nc=none oops=panic %s %s",
		trigger, BaseArgs, PstoreArgs())), " ")
	g, err := StartGuest(ctx, GuestConfig{Kernel: k, Append: cmdline, Serial: res.Serial,
		QMP: base + ".qmp", Log: base + ".qemu.log", WarmReset: true})
	if err != nil {
		return nil, err
	}
	defer g.Quit()
	out, err := g.Wait(ctx, 60*time.Second)
	if err != nil {
		return nil, err
	}
	if out != OutcomePanic {
		return nil, fmt.Errorf("the first boot ended with %s, not a panic (see %s)", out, res.Serial)
	}
	t0 := time.Now()
	if err := g.Reset(ctx); err != nil {
		return nil, err
	}
	// The next boot prints the records and powers off (QEMU exits then).
	if !g.waitSerial(ctx, "LAB: pstore records read back", 60*time.Second) {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
	}
	res.SecondsToReboot = round3(time.Since(t0).Seconds())
	serial, err := os.ReadFile(res.Serial)
	if err != nil {
		return nil, err
	}
	boots := splitBoots(serial)
	if len(boots) < 2 {
		return nil, fmt.Errorf("the console shows %d boots, want 2 (see %s)", len(boots), res.Serial)
	}
	first, second := boots[0], boots[len(boots)-1]
	res.SerialTitles = titles(first)
	recs, order, err := extractPstore(second)
	if err != nil {
		return nil, err
	}
	if len(order) == 0 {
		return nil, fmt.Errorf("the boot after the warm reset found no pstore record (see %s)", res.Serial)
	}
	var all []string
	for _, name := range order {
		data := recs[name]
		path := base + "." + name
		if err := os.WriteFile(path, data, 0o644); err != nil {
			return nil, err
		}
		res.PstoreRecords = append(res.PstoreRecords, PstoreRecord{Name: name, Bytes: len(data), Titles: titles(data), Path: path})
		for _, l := range strings.Split(string(data), "\n") {
			all = append(all, levelRE.ReplaceAllString(l, ""))
		}
	}
	have := map[string]bool{}
	for _, l := range all {
		have[l] = true
	}
	lines := oopsLines(first)
	res.OopsLines = len(lines)
	for _, l := range lines {
		if !have[l] {
			res.Missing = append(res.Missing, l)
		}
	}
	res.OopsLinesMatched = len(lines) > 0 && len(res.Missing) == 0

	// kcrash agent in the guest after the warm reset, delivering to the host.
	kcrash, err := staticKcrash(ctx, dir)
	if err != nil {
		return nil, err
	}
	if res.Agent, err = runAgentPstore(ctx, k, kcrash, dir, "pstore-agent", false); err != nil {
		return nil, err
	}
	res.CollectorReports = res.Agent.Reports
	if res.AgentCollectorDown, err = runAgentPstore(ctx, k, kcrash, dir, "pstore-agent-down", true); err != nil {
		return nil, err
	}
	if kcrash == filepath.Join(dir, "kcrash-static") {
		os.Remove(kcrash)
	}
	return res, nil
}
