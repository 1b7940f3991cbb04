package fleet

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync/atomic"
	"time"
)

// Notifier posts events to a webhook as JSON ({"text": …} for Slack, plus the
// event's fields), in order, from its own goroutine: Send never blocks. A failed
// post is retried with exponential backoff (MinBackoff doubling to MaxBackoff)
// until it succeeds or Run's context ends; events arriving meanwhile wait in a
// bounded queue, and what does not fit is dropped and counted.
type Notifier struct {
	URL                    string
	Client                 *http.Client
	MinBackoff, MaxBackoff time.Duration
	queue                  chan Event
	Sent, Failures, Drops  atomic.Uint64
}

// NewNotifier returns a notifier for url holding up to queue events (1000 for 0).
func NewNotifier(url string, queue int) *Notifier {
	if queue <= 0 {
		queue = 1000
	}
	return &Notifier{URL: url, Client: &http.Client{Timeout: 10 * time.Second},
		MinBackoff: time.Second, MaxBackoff: 5 * time.Minute, queue: make(chan Event, queue)}
}

// Send queues an event; it never blocks.
func (n *Notifier) Send(e Event) {
	select {
	case n.queue <- e:
	default:
		n.Drops.Add(1)
	}
}

// Run posts queued events until ctx ends.
func (n *Notifier) Run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case e := <-n.queue:
			backoff := n.MinBackoff
			for {
				err := n.post(ctx, e)
				if err == nil {
					n.Sent.Add(1)
					break
				}
				n.Failures.Add(1)
				select {
				case <-ctx.Done():
					return
				case <-time.After(backoff):
				}
				backoff = min(2*backoff, n.MaxBackoff)
			}
		}
	}
}

func (n *Notifier) post(ctx context.Context, e Event) error {
	body, err := json.Marshal(e)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, n.URL, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := n.Client.Do(req)
	if err != nil {
		return err
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("webhook: %s", resp.Status)
	}
	return nil
}
