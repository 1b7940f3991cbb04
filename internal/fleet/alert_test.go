package fleet

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"
)

// receiver is a local webhook endpoint that can be taken down and brought back on
// the same address.
type receiver struct {
	t    *testing.T
	addr string
	srv  *http.Server
	mu   sync.Mutex
	got  []Event
	hits chan struct{}
}

func (r *receiver) start() {
	ln, err := net.Listen("tcp", r.addr)
	if err != nil {
		r.t.Fatal(err)
	}
	r.addr = ln.Addr().String()
	r.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		b, _ := io.ReadAll(req.Body)
		var e Event
		if err := json.Unmarshal(b, &e); err != nil || e.Text == "" {
			r.t.Errorf("webhook body %q: %v", b, err)
		}
		r.mu.Lock()
		r.got = append(r.got, e)
		r.mu.Unlock()
		r.hits <- struct{}{}
	})}
	go r.srv.Serve(ln)
}

func (r *receiver) stop() { r.srv.Close() }

func TestNotifierOutage(t *testing.T) {
	rc := &receiver{t: t, addr: "127.0.0.1:0", hits: make(chan struct{}, 100)}
	rc.start()
	n := NewNotifier("http://"+rc.addr+"/hook", 4)
	n.MinBackoff, n.MaxBackoff = 20*time.Millisecond, 80*time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go n.Run(ctx)

	n.Send(Event{Type: "new_signature", Text: "one"})
	<-rc.hits
	// The receiver goes down: events queue, posts fail and are retried, and Send
	// still returns at once even when the queue is full.
	rc.stop()
	n.Send(Event{Type: "rate_jump", Text: "two"})
	deadline := time.Now().Add(5 * time.Second)
	for n.Failures.Load() < 1 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	start := time.Now()
	for _, s := range []string{"three", "four", "five", "six", "seven"} {
		n.Send(Event{Type: "rate_jump", Text: s})
	}
	if d := time.Since(start); d > 50*time.Millisecond {
		t.Errorf("Send blocked for %v during the outage", d)
	}
	for n.Failures.Load() < 3 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n.Failures.Load() < 3 {
		t.Fatalf("%d failed posts during the outage, want retries", n.Failures.Load())
	}
	// Back up on the same address: what was queued arrives, in order.
	rc.start()
	want := []string{"one", "two", "three", "four", "five", "six"}
	for range want[1:] {
		select {
		case <-rc.hits:
		case <-time.After(5 * time.Second):
			t.Fatalf("events after the outage not delivered: %+v", rc.got)
		}
	}
	rc.mu.Lock()
	defer rc.mu.Unlock()
	var got []string
	for _, e := range rc.got {
		got = append(got, e.Text)
	}
	if len(got) != len(want) {
		t.Fatalf("delivered %q, want %q", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("delivered %q, want %q", got, want)
		}
	}
	// One event was being retried and four waited: the last one was dropped.
	if n.Drops.Load() != 1 {
		t.Errorf("%d drops, want 1", n.Drops.Load())
	}
}
