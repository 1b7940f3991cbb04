package netconsole

import (
	"context"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"
)

// TestReceiver sends datagrams from several loopback source addresses to a
// two-socket receiver and checks every one arrives once, with its source, and that
// each source's datagrams stay in order.
func TestReceiver(t *testing.T) {
	r, err := Listen(context.Background(), "127.0.0.1:0", ListenOptions{Sockets: 2, Batch: 16})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	got := map[string][]string{}
	sockets := map[string]int{}
	done := make(chan error, 1)
	go func() {
		done <- r.Run(func(socket int, now time.Time, pkts []Packet) {
			mu.Lock()
			defer mu.Unlock()
			for _, p := range pkts {
				k := p.From.String()
				got[k] = append(got[k], string(p.Data))
				if s, ok := sockets[k]; ok && s != socket {
					t.Errorf("%s reached sockets %d and %d", k, s, socket)
				}
				sockets[k] = socket
			}
		})
	}()
	const senders, each = 4, 200
	want := map[string]int{}
	for i := range senders {
		c, err := net.DialUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, byte(10+i))}, r.Addr())
		if err != nil {
			t.Fatal(err)
		}
		for j := range each {
			if _, err := fmt.Fprintf(c, "%d", j); err != nil {
				t.Fatal(err)
			}
		}
		want[c.LocalAddr().String()] = each
		c.Close()
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		mu.Lock()
		n := 0
		for _, v := range got {
			n += len(v)
		}
		mu.Unlock()
		if n >= senders*each || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	r.Close()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	for from, n := range want {
		if len(got[from]) != n {
			t.Errorf("%s: %d datagrams, want %d", from, len(got[from]), n)
			continue
		}
		for j, d := range got[from] {
			if d != fmt.Sprint(j) {
				t.Errorf("%s: datagram %d is %q", from, j, d)
				break
			}
		}
	}
}

func BenchmarkStreamExtended(b *testing.B) {
	s := NewStream(StreamOptions{})
	now := time.Now()
	var d [][]byte
	for i := range 1024 {
		d = append(d, rec(uint64(i), uint64(i)*1000, "some ordinary kernel log line: eth0: link up, 1000Mbps"))
	}
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		s.Push(d[n%1024], now, func([]byte, Event) {})
		n++
		if n%1024 == 0 {
			s = NewStream(StreamOptions{})
		}
	}
}

// TestFill: the kernel buffer's fill grows while datagrams wait unread.
func TestFill(t *testing.T) {
	r, err := Listen(context.Background(), "127.0.0.1:0", ListenOptions{ReadBuffer: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	empty := r.Fill(0)
	if empty < 0 || empty > 0.01 {
		t.Fatalf("fill of an idle socket %v", empty)
	}
	c, err := net.DialUDP("udp", nil, r.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for i := 0; i < 200; i++ {
		c.Write(make([]byte, 1000))
	}
	if f := r.Fill(0); f <= empty || f > 1.5 {
		t.Errorf("fill after 200 unread datagrams: %v (idle %v)", f, empty)
	}
	if r.Fill(5) != -1 {
		t.Errorf("fill of a socket that does not exist")
	}
}

// TestCoalesce: after a recvmmsg that took less than a quarter batch the reader
// waits Coalesce before the next; after a fuller one it goes back at once.
func TestCoalesce(t *testing.T) {
	for _, tc := range []struct {
		name     string
		first    int           // datagrams waiting when the reader starts (its first batch)
		coalesce time.Duration // the option
		minGap   time.Duration // between the first batch's handler returning and the second's call
		maxGap   time.Duration
	}{
		{"small batch waits", 1, 100 * time.Millisecond, 100 * time.Millisecond, time.Hour},
		{"quarter batch does not", 4, 5 * time.Second, 0, 2 * time.Second},
		{"disabled", 1, -1, 0, 2 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := Listen(context.Background(), "127.0.0.1:0", ListenOptions{Batch: 16, Coalesce: tc.coalesce})
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			c, err := net.DialUDP("udp", nil, r.Addr())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			for i := range tc.first {
				fmt.Fprintf(c, "first %d", i)
			}
			var returned time.Time
			type batch struct {
				n  int
				at time.Time
			}
			second := make(chan batch, 1)
			calls := 0
			go r.Run(func(_ int, now time.Time, pkts []Packet) {
				calls++
				switch calls {
				case 1:
					if len(pkts) != tc.first {
						t.Errorf("first batch: %d datagrams, want %d", len(pkts), tc.first)
					}
					// The next datagrams are in the socket before this batch is done.
					for i := range 3 {
						fmt.Fprintf(c, "second %d", i)
					}
					returned = time.Now()
				case 2:
					second <- batch{len(pkts), time.Now()}
				}
			})
			select {
			case b := <-second:
				gap := b.at.Sub(returned)
				if gap < tc.minGap || gap > tc.maxGap {
					t.Errorf("the second recvmmsg came %v after the first batch, want %v to %v", gap, tc.minGap, tc.maxGap)
				}
				if b.n != 3 {
					t.Errorf("second batch: %d datagrams, want 3", b.n)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("no second batch")
			}
		})
	}
}
