package main

import (
	"context"
	"os"
	"path/filepath"
	"time"

	"github.com/kcrash/kcrash/internal/collector"
	"github.com/kcrash/kcrash/internal/netconsole"
	"github.com/kcrash/kcrash/internal/store"
	"github.com/kcrash/kcrash/internal/store/sqlite"
)

// rig is a collector as kcrash serve runs it, in a temporary directory: SQLite,
// raw logs, optionally a spool, and a receiver on a loopback port feeding Receive.
type rig struct {
	tmp    string
	st     *store.SQL
	rcv    *netconsole.Receiver
	col    *collector.Collector
	cancel context.CancelFunc
	rdone  chan error
}

// newRig starts a rig; o gets its Store and LogDir from it.
func newRig(prefix string, o collector.Options, spool bool) (*rig, error) {
	ctx := context.Background()
	tmp, err := os.MkdirTemp("", prefix)
	if err != nil {
		return nil, err
	}
	r := &rig{tmp: tmp, rdone: make(chan error, 1)}
	if r.st, err = sqlite.Open(ctx, filepath.Join(tmp, "k.db")); err != nil {
		os.RemoveAll(tmp)
		return nil, err
	}
	if r.rcv, err = netconsole.Listen(ctx, "127.0.0.1:0", netconsole.ListenOptions{Sockets: shards, ReadBuffer: 32 << 20, Coalesce: coalesce}); err != nil {
		r.st.Close()
		os.RemoveAll(tmp)
		return nil, err
	}
	o.Store, o.LogDir, o.Shards = r.st, filepath.Join(tmp, "logs"), shards
	r.col = collector.New(o)
	if spool {
		if _, err := r.col.OpenSpool(filepath.Join(tmp, "spool")); err != nil {
			r.rcv.Close()
			r.st.Close()
			os.RemoveAll(tmp)
			return nil, err
		}
	}
	cctx, cancel := context.WithCancel(ctx)
	r.cancel = cancel
	go r.col.Run(cctx, 30*time.Second)
	r.col.SetBackpressure(r.rcv.Fill)
	go func() { r.rdone <- r.rcv.Run(r.col.Receive) }()
	return r, nil
}

// port is the receiver's UDP port.
func (r *rig) port() int { return r.rcv.Addr().Port }

// stopReceiving closes the receiver and waits for its reader.
func (r *rig) stopReceiving() {
	r.rcv.Close()
	<-r.rdone
}

// close stops everything (the receiver first, if still running) and removes the
// directory.
func (r *rig) close() {
	r.rcv.Close()
	r.cancel()
	<-r.col.Done()
	r.st.Close()
	os.RemoveAll(r.tmp)
}

// warm sends records records from each of f's hosts, paced by what the collector
// has taken so nothing is shed.
func (r *rig) warm(snd *sender, f *fleet, hosts, records int) error {
	srcs := make([][4]byte, 64)
	for n := 0; n < hosts*records; n += 64 {
		for uint64(n) > r.col.Stats.Packets.Load()+8192 {
			time.Sleep(time.Millisecond)
		}
		f.fill(snd, 64, srcs)
		if err := snd.send(64, srcs); err != nil {
			return err
		}
	}
	return nil
}
