package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/kcrash/kcrash/internal/collector"
	"github.com/kcrash/kcrash/internal/netconsole"
	"github.com/kcrash/kcrash/internal/store"
	"github.com/kcrash/kcrash/internal/store/postgres"
	"github.com/kcrash/kcrash/internal/store/sqlite"
	"github.com/kcrash/kcrash/internal/web"
)

func init() {
	register(&command{
		name:     "serve",
		synopsis: "collect netconsole from kernels, store their crash reports and show them on a web dashboard",
		usage:    "kcrash serve [--udp ADDR] [--http ADDR] [--db PATH|postgres://…] [--symbols DIR] [--token T] [--read-token T] [--tls-cert F --tls-key F] [--allow NETS] [--max-hosts N] [--hosts FILE] [--alert-webhook URL]",
		run:      runServe,
	})
}

// dataDir is where kcrash keeps its database and raw logs by default:
// $XDG_DATA_HOME/kcrash or ~/.local/share/kcrash.
func dataDir() string {
	if d := os.Getenv("XDG_DATA_HOME"); d != "" {
		return filepath.Join(d, "kcrash")
	}
	if h, err := os.UserHomeDir(); err == nil {
		return filepath.Join(h, ".local", "share", "kcrash")
	}
	return "kcrash-data"
}

// openStore opens the database a --db flag names: a postgres:// URL or a SQLite file.
func openStore(ctx context.Context, dsn string) (store.Store, error) {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		return postgres.Open(ctx, dsn)
	}
	return sqlite.Open(ctx, dsn)
}

func parsePrefixes(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		if !strings.Contains(f, "/") {
			a, err := netip.ParseAddr(f)
			if err != nil {
				return nil, fmt.Errorf("--allow %q: %w", f, err)
			}
			out = append(out, netip.PrefixFrom(a, a.BitLen()))
			continue
		}
		p, err := netip.ParsePrefix(f)
		if err != nil {
			return nil, fmt.Errorf("--allow %q: %w", f, err)
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

func runServe(env *cmdEnv, args []string) error {
	c := commands["serve"]
	fs := newFlagSet(env, c)
	udp := fs.String("udp", ":6666", "netconsole `address` to listen on (UDP)")
	httpAddr := fs.String("http", "127.0.0.1:8080", "web dashboard and API `address`")
	db := fs.String("db", filepath.Join(dataDir(), "kcrash.db"), "SQLite database `file`, or a postgres:// URL shared by several collectors")
	logDir := fs.String("logs", filepath.Join(dataDir(), "logs"), "`directory` for per-host raw console logs (empty: none)")
	logMax := fs.Int64("log-max", 8<<20, "rotate a host's raw log at this many `bytes`")
	spoolPath := fs.String("spool", "", "`file` each report is fsynced to before it is stored, and stored from after a crash (default: .spool in --logs; \"none\" for none)")
	sf := addSymbolFlags(fs, "`directory` of vmlinux files per release, for decoded reports", false)
	dumps := fs.String("dumps", filepath.Join(dataDir(), "dumps"), "`directory` for vmcores uploaded by kcrash agent --upload-vmcore (empty: refuse them)")
	dumpMax := fs.Int64("dump-max", 4<<30, "largest vmcore upload in `bytes`")
	token := fs.String("token", os.Getenv("KCRASH_TOKEN"), "bearer `token` for write endpoints, taken from the Authorization header only (default $KCRASH_TOKEN; empty disables them)")
	readToken := fs.String("read-token", os.Getenv("KCRASH_READ_TOKEN"), "`token` the dashboard, API, live tail and metrics need (Bearer, or Basic password; default $KCRASH_READ_TOKEN; empty: open to anyone who can reach --http)")
	tlsCert := fs.String("tls-cert", "", "serve HTTPS with this certificate `file` (PEM; with --tls-key)")
	tlsKey := fs.String("tls-key", "", "private key `file` of --tls-cert (PEM)")
	allow := fs.String("allow", "", "comma-separated `networks` allowed to send netconsole (default: any)")
	sockets := fs.Int("sockets", runtime.GOMAXPROCS(0), "`number` of SO_REUSEPORT sockets reading netconsole")
	maxHosts := fs.Int("max-hosts", 100_000, "most hosts held in memory; beyond it the least recently heard are evicted, never one in the middle of a crash")
	quiet := fs.Duration("quiet", 300*time.Millisecond, "a host silent this long has its report completed")
	silent := fs.Duration("silent-after", 10*time.Minute, "a host not heard from this long shows as silent")
	hostsFile := fs.String("hosts", "", "inventory `file`: ADDRESS NAME [KEY=VALUE…] per line, naming and labelling hosts")
	webhook := fs.String("alert-webhook", "", "`URL` alerts are posted to as JSON (Slack-compatible text field)")
	fleetState := fs.String("fleet-state", "", "`file` keeping the hosts' observed uptime between runs (default: next to a SQLite --db; \"none\" for none)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		fs.Usage()
		return errUsage
	}
	if (*tlsCert == "") != (*tlsKey == "") {
		return fmt.Errorf("--tls-cert and --tls-key go together")
	}
	nets, err := parsePrefixes(*allow)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewJSONHandler(env.stderr, nil))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	st, err := openStore(ctx, *db)
	if err != nil {
		return err
	}
	defer st.Close()
	col := collector.New(collector.Options{Store: st, LogDir: *logDir, LogMaxBytes: *logMax, Allow: nets,
		MaxHosts: *maxHosts, Quiet: *quiet, Shards: *sockets})
	if *spoolPath == "" && *logDir != "" {
		*spoolPath = filepath.Join(*logDir, ".spool")
	}
	if *spoolPath != "" && *spoolPath != "none" {
		n, err := col.OpenSpool(*spoolPath)
		if err != nil {
			return err
		}
		if n > 0 {
			log.Info("spool", "path", *spoolPath, "reports to store", n)
		}
	}
	if *fleetState == "" && !strings.Contains(*db, "://") {
		*fleetState = *db + ".fleet.json"
	}
	if *fleetState == "none" {
		*fleetState = ""
	}
	fl, err := startFleet(ctx, st, *hostsFile, *webhook, *fleetState, log)
	if err != nil {
		return err
	}
	col.OnReport(func(r *store.Report) {
		log.Info("report", "id", r.ID, "host", r.Host, "kind", r.Kind, "title", r.Title, "panicked", r.Panicked)
		fl.report(r)
	})
	rcv, err := netconsole.Listen(ctx, *udp, netconsole.ListenOptions{Sockets: *sockets})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *httpAddr)
	if err != nil {
		rcv.Close()
		return fmt.Errorf("--http: %w", err)
	}
	var decodeErrors counter
	srv := &http.Server{Handler: web.New(web.Options{
		Store: st, Pipeline: col, Token: *token, ReadToken: *readToken, Symbols: *sf.dir, SilentAfter: *silent,
		Decoder:     reportDecoder(sf.lookup(env)),
		FindVmlinux: findVmlinux(sf.lookup(env)),
		DumpDir:     *dumps, DumpMax: *dumpMax, Vmcore: vmcoreRunner(sf.lookup(env)),
		Metrics:      func(w io.Writer) { writeMetrics(w, col, decodeErrors.load()); fl.writeMetrics(w) },
		Fleet:        fl.engine,
		DecodeErrors: decodeErrors.inc,
		Warnings:     col.Warnings,
	}), ReadHeaderTimeout: 10 * time.Second}

	colCtx, stopCol := context.WithCancel(context.Background())
	go col.Run(colCtx, 30*time.Second)
	rcvDone := make(chan error, 1)
	col.SetBackpressure(rcv.Fill)
	go func() { rcvDone <- rcv.Run(col.Receive) }()
	httpDone := make(chan error, 1)
	scheme := "http"
	if *tlsCert != "" {
		scheme = "https"
		go func() { httpDone <- srv.ServeTLS(ln, *tlsCert, *tlsKey) }()
	} else {
		go func() { httpDone <- srv.Serve(ln) }()
	}
	log.Info("serving", "udp", rcv.Addr().String(), "http", scheme+"://"+ln.Addr().String()+"/", "db", redact(*db))
	fmt.Fprintf(env.stderr, "kcrash serve: netconsole on udp %s, dashboard on %s://%s/\n", rcv.Addr(), scheme, ln.Addr())

	var runErr error
	select {
	case <-ctx.Done():
	case err := <-rcvDone:
		runErr = fmt.Errorf("netconsole receiver: %w", err)
	case err := <-httpDone:
		runErr = fmt.Errorf("http: %w", err)
	}
	// Stop taking datagrams, then complete and store what was heard.
	rcv.Close()
	stopCol()
	<-col.Done()
	fl.saveState()
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	srv.Shutdown(sctx)
	log.Info("stopped", "reports", col.Stats.Reports.Load(), "lost", col.Stats.QueueDrops.Load())
	if errors.Is(runErr, http.ErrServerClosed) {
		runErr = nil
	}
	return runErr
}

// redact hides a database URL's password in logs.
func redact(dsn string) string {
	if i := strings.Index(dsn, "://"); i >= 0 {
		if at := strings.Index(dsn[i+3:], "@"); at >= 0 {
			if colon := strings.Index(dsn[i+3:i+3+at], ":"); colon >= 0 {
				return dsn[:i+3+colon] + ":***" + dsn[i+3+at:]
			}
		}
	}
	return dsn
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

type counter struct{ n atomic.Uint64 }

func (c *counter) inc()         { c.n.Add(1) }
func (c *counter) load() uint64 { return c.n.Load() }

// writeMetrics writes the collector's counters in the Prometheus text format.
func writeMetrics(w io.Writer, c *collector.Collector, decodeErrors uint64) {
	s := &c.Stats
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	for _, x := range []struct {
		name, kind, help string
		v                float64
	}{
		{"kcrash_netconsole_packets_total", "counter", "Datagrams received.", float64(s.Packets.Load())},
		{"kcrash_netconsole_bytes_total", "counter", "Payload bytes received.", float64(s.Bytes.Load())},
		{"kcrash_netconsole_lines_total", "counter", "Console lines produced.", float64(s.Lines.Load())},
		{"kcrash_netconsole_bad_packets_total", "counter", "Malformed or truncated datagrams.", float64(s.BadPackets.Load())},
		{"kcrash_netconsole_denied_packets_total", "counter", "Datagrams from sources outside --allow.", float64(s.Denied.Load())},
		{"kcrash_netconsole_junk_packets_total", "counter", "Binary datagrams that are not console text, dropped.", float64(s.Junk.Load())},
		{"kcrash_hosts_evicted_total", "counter", "Idle hosts evicted from memory to stay within --max-hosts.", float64(s.Evicted.Load())},
		{"kcrash_netconsole_gaps_total", "counter", "Extended records never received (sequence gaps).", float64(s.Gaps.Load())},
		{"kcrash_netconsole_duplicates_total", "counter", "Extended records received twice (replays).", float64(s.Dups.Load())},
		{"kcrash_reboots_total", "counter", "New boots seen.", float64(s.Reboots.Load())},
		{"kcrash_hosts", "gauge", "Hosts in memory.", float64(s.Hosts.Load())},
		{"kcrash_reports_total", "counter", "Reports stored.", float64(s.Reports.Load())},
		{"kcrash_reports_duplicate_total", "counter", "Reports received again and not stored.", float64(s.Duplicates.Load())},
		{"kcrash_reports_queued", "gauge", "Reports waiting for the store.", float64(s.Queued.Load())},
		{"kcrash_drops_total{what=\"host_limit\"}", "counter", "Data dropped.", float64(s.Dropped.Load())},
		{"kcrash_drops_total{what=\"report_queue\"}", "", "", float64(s.QueueDrops.Load())},
		{"kcrash_drops_total{what=\"log_bytes\"}", "", "", float64(s.LogDrops.Load())},
		{"kcrash_drops_total{what=\"overload_shed\"}", "", "", float64(s.Shed.Load())},
		{"kcrash_drops_total{what=\"overload_crash\"}", "", "", float64(s.CrashDrops.Load())},
		{"kcrash_overload_kept_total", "counter", "Datagrams of crashing hosts kept while ordinary ones were shed.", float64(s.Kept.Load())},
		{"kcrash_log_write_errors_total", "counter", "Failed raw log writes (a full or failing disk); raw logs are shed for a second after each.", float64(s.LogErrors.Load())},
		{"kcrash_log_shedding", "gauge", "1 while raw logs are shed after a failed write.", b2f(s.LogShedding.Load())},
		{"kcrash_store_errors_total", "counter", "Failed store operations (retried).", float64(s.StoreErrors.Load())},
		{"kcrash_spool_pending", "gauge", "Reports on disk in the spool, not yet stored.", float64(c.SpoolPending())},
		{"kcrash_spool_errors_total", "counter", "Failed spool writes.", float64(s.SpoolErrors.Load())},
		{"kcrash_decode_errors_total", "counter", "Reports the decoder failed on.", float64(decodeErrors)},
		{"kcrash_capture_bytes", "gauge", "Bytes held in report captures.", float64(s.CaptureBytes.Load())},
		{"kcrash_heap_bytes", "gauge", "Go heap in use.", float64(m.HeapInuse)},
	} {
		base, _, _ := strings.Cut(x.name, "{")
		if x.help != "" {
			fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s %s\n", base, x.help, base, x.kind)
		}
		fmt.Fprintf(w, "%s %g\n", x.name, x.v)
	}
}
