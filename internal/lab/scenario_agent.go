package lab

import (
	"bytes"
	"compress/gzip"
	"context"
	"debug/elf"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/kcrash/kcrash/internal/collector"
	"github.com/kcrash/kcrash/internal/store"
	"github.com/kcrash/kcrash/internal/store/sqlite"
	"github.com/kcrash/kcrash/internal/web"
	labfiles "github.com/kcrash/kcrash/lab"
)

// CollectorReport is a report the host's collector holds at the end of a pstore
// scenario run with the agent (JSON contract: collector_reports).
type CollectorReport struct {
	ID     int64  `json:"id"`
	Title  string `json:"title"`
	Source string `json:"source"`
}

// AgentRun is one delivery by kcrash agent inside the guest after the warm reset.
type AgentRun struct {
	// CollectorDown says the collector was not listening when the agent first tried
	// (it was started once the guest's console showed the failed attempt).
	CollectorDown bool              `json:"collector_down"`
	Reports       []CollectorReport `json:"collector_reports"`
	// RecordsLeft are the pstore records still there after the agent finished (it
	// removes each once the collector acknowledged it).
	RecordsLeft []string `json:"records_left"`
	AgentExit   string   `json:"agent_exit"`
	// SecondsToDelivery is from the warm reset to the agent's exit.
	SecondsToDelivery float64 `json:"seconds_to_delivery"`
	Serial            string  `json:"serial"`
}

const agentToken = "lab-agent-token"

// agentInit is the guest's init with the agent run after the pstore records are
// read back (before the power-off), when lab_agent=URL is given.
func agentInit() ([]byte, error) {
	const mark = `	say "pstore records read back; powering off"`
	if !bytes.Contains(labfiles.GuestInit, []byte(mark)) {
		return nil, errors.New("lab/init.sh has no pstore power-off line to run the agent before")
	}
	hook := `	AGENT=$(param lab_agent "")
	if [ -n "$AGENT" ]; then
		say "agent start"
		/bin/kcrash agent --server "$AGENT" --token "$(param lab_agent_token "")" --host "$NAME" \
			--pstore /sys/fs/pstore --crash-dir "" --state /tmp/kcrash-agent.json --retry-max 1s 2>&1
		say "agent exit $?"
		for f in /sys/fs/pstore/*; do [ -e "$f" ] && echo "LAB: pstore-left $(basename "$f")"; done
	fi
`
	return bytes.Replace(labfiles.GuestInit, []byte(mark), []byte(hook+mark), 1), nil
}

// staticKcrash returns a kcrash binary that runs in the guest (no dynamic loader
// there): this executable when it is static, else one built with CGO_ENABLED=0 from
// the source tree the lab is run in.
func staticKcrash(ctx context.Context, dir string) (string, error) {
	if exe, err := os.Executable(); err == nil {
		if f, err := elf.Open(exe); err == nil {
			static := true
			for _, p := range f.Progs {
				if p.Type == elf.PT_INTERP {
					static = false
				}
			}
			f.Close()
			if static {
				return exe, nil
			}
		}
	}
	root, err := moduleRoot()
	if err != nil {
		return "", fmt.Errorf("the guest needs a static kcrash: this one is dynamically linked and %w", err)
	}
	out := filepath.Join(dir, "kcrash-static")
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags=-s -w", "-o", out, "./cmd/kcrash")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("CGO_ENABLED=0 go build ./cmd/kcrash: %v: %s", err, b)
	}
	return out, nil
}

// moduleRoot finds the kcrash source tree from the working directory up.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if b, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil && bytes.Contains(b, []byte("module github.com/kcrash/kcrash\n")) {
			return dir, nil
		}
		up := filepath.Dir(dir)
		if up == dir {
			return "", errors.New("the working directory is not in the kcrash source tree (run the lab from the repository)")
		}
		dir = up
	}
}

// agentInitramfs is the kernel's initramfs with a second cpio archive appended
// holding /bin/kcrash and the init that runs it (the kernel unpacks concatenated
// archives in order, a later file replacing an earlier one).
func agentInitramfs(k *Kernel, kcrash, out string) error {
	base, err := os.ReadFile(k.Initramfs)
	if err != nil {
		return err
	}
	bin, err := os.ReadFile(kcrash)
	if err != nil {
		return err
	}
	init, err := agentInit()
	if err != nil {
		return err
	}
	var extra bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&extra, gzip.BestSpeed)
	c := &cpioWriter{w: zw}
	c.entry("bin/kcrash", 0o100755, bin, 0, 0)
	c.entry("init", 0o100755, init, 0, 0)
	c.entry("TRAILER!!!", 0, nil, 0, 0)
	if c.err != nil {
		return c.err
	}
	if err := zw.Close(); err != nil {
		return err
	}
	// cpio archives are padded to 512 bytes between one another.
	for len(base)%512 != 0 {
		base = append(base, 0)
	}
	return writeFileAtomic(out, append(base, extra.Bytes()...))
}

// hostCollector is a kcrash collector (SQLite, the web API with the agent endpoint)
// on the host's loopback, which the guest reaches at 10.0.2.2 through QEMU's user
// network.
type hostCollector struct {
	st  store.Store
	col *collector.Collector
	srv *http.Server
}

func startCollector(ctx context.Context, db string, ln net.Listener) (*hostCollector, error) {
	st, err := sqlite.Open(ctx, db)
	if err != nil {
		return nil, err
	}
	col := collector.New(collector.Options{Store: st})
	h := &hostCollector{st: st, col: col}
	h.srv = &http.Server{Handler: web.New(web.Options{Store: st, Pipeline: col, Token: agentToken}), ReadHeaderTimeout: 10 * time.Second}
	go h.srv.Serve(ln)
	return h, nil
}

func (h *hostCollector) close() {
	h.srv.Close()
	h.st.Close()
}

func (h *hostCollector) reports(ctx context.Context) ([]CollectorReport, error) {
	reps, err := h.st.Reports(ctx, store.ReportQuery{})
	if err != nil {
		return nil, err
	}
	out := []CollectorReport{}
	for _, r := range reps {
		full, err := h.st.Report(ctx, r.ID)
		if err != nil {
			return nil, err
		}
		src := full.Sources
		if src == "" {
			src = "live"
		}
		out = append(out, CollectorReport{ID: r.ID, Title: r.Title, Source: src})
	}
	return out, nil
}

// runAgentPstore crashes a ramoops guest, warm-resets it, and lets kcrash agent in
// the guest deliver the records to a collector on the host; with down, the collector
// starts only after the agent's first attempt failed.
func runAgentPstore(ctx context.Context, k *Kernel, kcrash, dir, name string, down bool) (*AgentRun, error) {
	base := filepath.Join(dir, name)
	run := &AgentRun{CollectorDown: down, Serial: base + ".serial", Reports: []CollectorReport{}, RecordsLeft: []string{}}
	kk := *k
	kk.Initramfs = base + ".initramfs.cpio.gz"
	if err := agentInitramfs(k, kcrash, kk.Initramfs); err != nil {
		return nil, err
	}
	defer os.Remove(kk.Initramfs)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	port := ln.Addr().(*net.TCPAddr).Port
	if down {
		ln.Close() // nothing listens until the agent has failed once
	}
	var col *hostCollector
	if !down {
		if col, err = startCollector(ctx, base+".db", ln); err != nil {
			ln.Close()
			return nil, err
		}
		defer col.close()
	}
	cmdline := strings.Join(strings.Fields(fmt.Sprintf("lab_name=%s lab_trigger=ACCESS_NULL lab_nc=none oops=panic %s %s lab_agent=http://10.0.2.2:%d lab_agent_token=%s",
		name, BaseArgs, PstoreArgs(), port, agentToken)), " ")
	g, err := StartGuest(ctx, GuestConfig{Kernel: &kk, Append: cmdline, Serial: run.Serial,
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
		return nil, fmt.Errorf("%s: the first boot ended with %s, not a panic (see %s)", name, out, run.Serial)
	}
	t0 := time.Now()
	if err := g.Reset(ctx); err != nil {
		return nil, err
	}
	if down {
		if !g.waitSerial(ctx, "retrying in", 60*time.Second) {
			return nil, fmt.Errorf("%s: the agent's first attempt did not fail visibly (see %s)", name, run.Serial)
		}
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			return nil, err
		}
		if col, err = startCollector(ctx, base+".db", ln); err != nil {
			ln.Close()
			return nil, err
		}
		defer col.close()
	}
	if !g.waitSerial(ctx, "LAB: agent exit", 90*time.Second) {
		return nil, fmt.Errorf("%s: the agent did not finish (see %s)", name, run.Serial)
	}
	run.SecondsToDelivery = round3(time.Since(t0).Seconds())
	g.waitSerial(ctx, "powering off", 10*time.Second)
	serial, err := os.ReadFile(run.Serial)
	if err != nil {
		return nil, err
	}
	boots := splitBoots(serial)
	last := string(boots[len(boots)-1])
	if i := strings.Index(last, "LAB: agent exit "); i >= 0 {
		run.AgentExit = strings.Fields(last[i+len("LAB: agent exit "):])[0]
	}
	for _, l := range strings.Split(last, "\n") {
		if n, ok := strings.CutPrefix(strings.TrimSpace(l), "LAB: pstore-left "); ok {
			run.RecordsLeft = append(run.RecordsLeft, n)
		}
	}
	if run.Reports, err = col.reports(ctx); err != nil {
		return nil, err
	}
	return run, nil
}
