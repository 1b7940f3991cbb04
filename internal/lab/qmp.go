package lab

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"
)

// QMP is a client of the QEMU Machine Protocol (docs/interop/qmp-spec.rst): JSON
// objects, one per line, over a socket. Commands carry an "id" that the matching
// reply echoes; asynchronous events arrive in between and are queued for Events.
type QMP struct {
	conn io.ReadWriteCloser
	enc  *json.Encoder

	mu      sync.Mutex // serializes Execute
	nextID  int
	replies chan qmpMessage
	events  chan Event
	done    chan struct{}
	readErr error
}

// Event is one asynchronous QMP event, stamped with the time it was received.
type Event struct {
	Name     string          `json:"event"`
	Data     json.RawMessage `json:"data,omitempty"`
	Received time.Time       `json:"-"`
}

// QMPError is an error reply to a command.
type QMPError struct {
	Command string
	Class   string `json:"class"`
	Desc    string `json:"desc"`
}

func (e *QMPError) Error() string {
	return fmt.Sprintf("qmp %s: %s: %s", e.Command, e.Class, e.Desc)
}

type qmpMessage struct {
	QMP    json.RawMessage `json:"QMP"`
	Event  string          `json:"event"`
	Data   json.RawMessage `json:"data"`
	Return json.RawMessage `json:"return"`
	Error  *QMPError       `json:"error"`
	ID     *int            `json:"id"`
}

// DialQMP connects to a QMP unix socket, retrying until ctx ends (QEMU creates the
// socket a little after it starts), and negotiates capabilities.
func DialQMP(ctx context.Context, path string) (*QMP, error) {
	var d net.Dialer
	for {
		conn, err := d.DialContext(ctx, "unix", path)
		if err == nil {
			return NewQMP(ctx, conn)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("connecting to qmp socket %s: %w (last error: %v)", path, ctx.Err(), err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// NewQMP starts a session on conn: it reads the greeting and sends qmp_capabilities.
// The QMP owns conn and closes it in Close.
func NewQMP(ctx context.Context, conn io.ReadWriteCloser) (*QMP, error) {
	q := &QMP{
		conn:    conn,
		enc:     json.NewEncoder(conn),
		replies: make(chan qmpMessage, 8),
		events:  make(chan Event, 256),
		done:    make(chan struct{}),
	}
	greeting := make(chan error, 1)
	go q.readLoop(greeting)
	select {
	case err := <-greeting:
		if err != nil {
			conn.Close()
			return nil, fmt.Errorf("qmp greeting: %w", err)
		}
	case <-ctx.Done():
		conn.Close()
		return nil, fmt.Errorf("qmp greeting: %w", ctx.Err())
	}
	if _, err := q.Execute(ctx, "qmp_capabilities", nil); err != nil {
		conn.Close()
		return nil, err
	}
	return q, nil
}

func (q *QMP) readLoop(greeting chan<- error) {
	defer close(q.done)
	defer close(q.events)
	sc := bufio.NewScanner(q.conn)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	first := true
	for sc.Scan() {
		var m qmpMessage
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			q.readErr = fmt.Errorf("qmp: bad message %.100q: %w", sc.Bytes(), err)
			if first {
				greeting <- q.readErr
			}
			return
		}
		switch {
		case first:
			first = false
			if m.QMP == nil {
				q.readErr = fmt.Errorf("qmp: expected greeting, got %.100q", sc.Bytes())
				greeting <- q.readErr
				return
			}
			greeting <- nil
		case m.Event != "":
			ev := Event{Name: m.Event, Data: m.Data, Received: time.Now()}
			select {
			case q.events <- ev:
			default: // nobody is listening; never block replies behind events
			}
		default:
			q.replies <- m
		}
	}
	q.readErr = sc.Err()
	if q.readErr == nil {
		q.readErr = io.EOF
	}
	if first {
		greeting <- q.readErr
	}
}

// Events delivers asynchronous events in arrival order; it is closed when the
// connection ends. Up to 256 unread events are kept; later ones are dropped.
func (q *QMP) Events() <-chan Event { return q.events }

// Done is closed when the connection ends (QEMU quit or the socket broke).
func (q *QMP) Done() <-chan struct{} { return q.done }

// Execute runs one command and returns its "return" value. Commands run one at a
// time; a reply that does not match the command's id is an error.
func (q *QMP) Execute(ctx context.Context, command string, args any) (json.RawMessage, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.nextID++
	id := q.nextID
	req := struct {
		Execute   string `json:"execute"`
		Arguments any    `json:"arguments,omitempty"`
		ID        int    `json:"id"`
	}{command, args, id}
	if err := q.enc.Encode(req); err != nil {
		return nil, fmt.Errorf("qmp %s: sending: %w", command, err)
	}
	for {
		select {
		case m := <-q.replies:
			if m.ID != nil && *m.ID < id {
				continue // the late reply of a command whose caller gave up
			}
			if m.ID == nil || *m.ID != id {
				return nil, fmt.Errorf("qmp %s: reply for another command (id %v, want %d)", command, m.ID, id)
			}
			if m.Error != nil {
				m.Error.Command = command
				return nil, m.Error
			}
			return m.Return, nil
		case <-q.done:
			return nil, fmt.Errorf("qmp %s: connection closed: %w", command, q.readErr)
		case <-ctx.Done():
			return nil, fmt.Errorf("qmp %s: %w", command, ctx.Err())
		}
	}
}

// Close closes the connection.
func (q *QMP) Close() error {
	err := q.conn.Close()
	<-q.done
	if errors.Is(err, net.ErrClosed) {
		err = nil
	}
	return err
}
