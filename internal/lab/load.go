package lab

import (
	"context"
	"errors"
	"fmt"
	"net"
	"syscall"
	"time"
)

// LoadOptions describe a UDP flood: the host-side load that makes the receive-path
// race crash (an iperf-like UDP stream at a target packet rate).
type LoadOptions struct {
	// To is host:port (a target's forwarded UDP port on 127.0.0.1).
	To string
	// PPS is the packet rate to aim at; 0 sends as fast as the socket takes them.
	PPS int
	// Duration bounds the flood (0: until ctx ends).
	Duration time.Duration
	// Size is the UDP payload size (default 64 bytes).
	Size int
}

// LoadResult is what a flood sent.
type LoadResult struct {
	To      string  `json:"to"`
	PPS     int     `json:"pps"`
	Seconds float64 `json:"seconds"`
	Packets int64   `json:"packets"`
	// Rate is the packet rate achieved (packets/seconds).
	Rate float64 `json:"rate"`
	// Refused counts sends the kernel refused because nothing listens any more (the
	// target's QEMU went away, e.g. it crashed and was stopped).
	Refused int64 `json:"refused"`
	// Stopped says why the flood ended: "duration", "canceled" or "target gone".
	Stopped string `json:"stopped"`
}

// Flood sends UDP datagrams to o.To at o.PPS until o.Duration passes or ctx ends.
// It paces in 1 ms slots and catches up when the scheduler delays it, so the
// average rate holds. A target whose port stops existing (ECONNREFUSED 50 times in
// a row) ends the flood with Stopped "target gone", not an error.
func Flood(ctx context.Context, o LoadOptions) (LoadResult, error) {
	res := LoadResult{To: o.To, PPS: o.PPS}
	if o.PPS < 0 {
		return res, fmt.Errorf("load: --pps %d is negative", o.PPS)
	}
	size := o.Size
	if size <= 0 {
		size = 64
	}
	if size > 65507 {
		return res, fmt.Errorf("load: payload of %d bytes is more than UDP carries", size)
	}
	conn, err := net.Dial("udp", o.To)
	if err != nil {
		return res, fmt.Errorf("load: %w", err)
	}
	defer conn.Close()
	payload := make([]byte, size)
	for i := range payload {
		payload[i] = byte('a' + i%26)
	}
	start := time.Now()
	var deadline <-chan time.Time
	if o.Duration > 0 {
		t := time.NewTimer(o.Duration)
		defer t.Stop()
		deadline = t.C
	}
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	refusedRun := 0
	res.Stopped = "canceled"
loop:
	for {
		var due int64
		if o.PPS > 0 {
			due = int64(time.Since(start).Seconds()*float64(o.PPS)) - res.Packets
		} else {
			due = 256
		}
		for ; due > 0; due-- {
			// A varying source of entropy in the payload spreads the flows.
			payload[0], payload[1] = byte(res.Packets), byte(res.Packets>>8)
			if _, err := conn.Write(payload); err != nil {
				if errors.Is(err, syscall.ECONNREFUSED) {
					res.Refused++
					if refusedRun++; refusedRun >= 50 {
						res.Stopped = "target gone"
						break loop
					}
					continue
				}
				if errors.Is(err, syscall.ENOBUFS) || errors.Is(err, syscall.EAGAIN) {
					break
				}
				res.Seconds = time.Since(start).Seconds()
				return res, fmt.Errorf("load to %s: %w", o.To, err)
			}
			refusedRun = 0
			res.Packets++
		}
		select {
		case <-ctx.Done():
			break loop
		case <-deadline:
			res.Stopped = "duration"
			break loop
		case <-tick.C:
		}
	}
	res.Seconds = round3(time.Since(start).Seconds())
	if res.Seconds > 0 {
		res.Rate = float64(int64(float64(res.Packets) / res.Seconds))
	}
	return res, nil
}
