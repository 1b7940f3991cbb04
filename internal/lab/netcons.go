package lab

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// Receiver takes netconsole datagrams on one UDP port and keeps them in the forms
// the tests read:
//   - Stream: the payloads concatenated, as sent (the plain netconsole stream);
//   - Records (optional, for the extended format): one line per datagram, with a
//     newline added when the payload lacks one, so each record `level,seq,ts,flags;text`
//     is a line of its own (drivers/net/netconsole.c sends one record per datagram,
//     or fragments of one with ",ncfrag=off/total" in the header);
//   - JSONL (optional): one JSON object per datagram, {"t": seconds since the receiver
//     started, "from": source address, "data": payload}, in arrival order.
type Receiver struct {
	conn   *net.UDPConn
	start  time.Time
	files  []*os.File
	stream *bufio.Writer
	lines  *bufio.Writer
	jsonl  *bufio.Writer

	mu      sync.Mutex
	packets int
	bytes   int64
	err     error
	done    chan struct{}
}

// ReceiverFiles names the files a Receiver writes; empty names are not written.
type ReceiverFiles struct {
	Stream  string // payloads concatenated
	Records string // one datagram per line
	JSONL   string // one JSON object per datagram
}

// Datagram is one line of a Receiver's JSONL file.
type Datagram struct {
	T    float64 `json:"t"`
	From string  `json:"from"`
	Data string  `json:"data"`
}

// Listen opens a UDP socket on addr (e.g. "127.0.0.1:0" for any free port) and
// starts writing what arrives to the files. Close stops it.
func Listen(addr string, files ReceiverFiles) (*Receiver, error) {
	ua, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return nil, fmt.Errorf("netconsole receiver %s: %w", addr, err)
	}
	conn, err := net.ListenUDP("udp", ua)
	if err != nil {
		return nil, fmt.Errorf("netconsole receiver: %w", err)
	}
	_ = conn.SetReadBuffer(4 << 20) // a panic's burst must not overflow the default buffer
	r := &Receiver{conn: conn, start: time.Now(), done: make(chan struct{})}
	open := func(name string) (*bufio.Writer, error) {
		if name == "" {
			return nil, nil
		}
		f, err := os.Create(name)
		if err != nil {
			return nil, fmt.Errorf("netconsole receiver: %w", err)
		}
		r.files = append(r.files, f)
		return bufio.NewWriter(f), nil
	}
	if r.stream, err = open(files.Stream); err == nil {
		if r.lines, err = open(files.Records); err == nil {
			r.jsonl, err = open(files.JSONL)
		}
	}
	if err != nil {
		conn.Close()
		for _, f := range r.files {
			f.Close()
		}
		return nil, err
	}
	go r.loop()
	return r, nil
}

// Port is the UDP port the receiver listens on.
func (r *Receiver) Port() int { return r.conn.LocalAddr().(*net.UDPAddr).Port }

func (r *Receiver) loop() {
	defer close(r.done)
	buf := make([]byte, 65536)
	enc := (*json.Encoder)(nil)
	if r.jsonl != nil {
		enc = json.NewEncoder(r.jsonl)
		enc.SetEscapeHTML(false)
	}
	for {
		n, from, err := r.conn.ReadFromUDP(buf)
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				r.setErr(err)
			}
			return
		}
		t := time.Since(r.start).Seconds()
		p := buf[:n]
		if r.stream != nil {
			r.stream.Write(p)
		}
		if r.lines != nil {
			r.lines.Write(p)
			if n == 0 || p[n-1] != '\n' {
				r.lines.WriteByte('\n')
			}
		}
		if enc != nil {
			enc.Encode(Datagram{T: float64(int64(t*1e6)) / 1e6, From: from.String(), Data: escapeInvalid(p)})
		}
		r.mu.Lock()
		r.packets++
		r.bytes += int64(n)
		r.mu.Unlock()
	}
}

// escapeInvalid returns p as a string, writing bytes that are not UTF-8 as \xNN
// (the extended format's own escape, kernel/printk/printk.c msg_add_ext_text).
func escapeInvalid(p []byte) string {
	if utf8.Valid(p) {
		return string(p)
	}
	var b strings.Builder
	for len(p) > 0 {
		r, size := utf8.DecodeRune(p)
		if r == utf8.RuneError && size <= 1 {
			fmt.Fprintf(&b, `\x%02x`, p[0])
		} else {
			b.Write(p[:size])
		}
		p = p[size:]
	}
	return b.String()
}

func (r *Receiver) setErr(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err == nil {
		r.err = err
	}
}

// Stats returns how many datagrams and payload bytes arrived so far.
func (r *Receiver) Stats() (packets int, bytes int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.packets, r.bytes
}

// Close stops receiving, flushes and closes the files and returns the first error.
func (r *Receiver) Close() error {
	r.conn.Close()
	<-r.done
	for _, w := range []*bufio.Writer{r.stream, r.lines, r.jsonl} {
		if w != nil {
			if err := w.Flush(); err != nil {
				r.setErr(err)
			}
		}
	}
	for _, f := range r.files {
		if err := f.Close(); err != nil {
			r.setErr(err)
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.err
}
