package lab

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"net"
	"strings"
	"testing"
	"time"
)

// fakeQEMU answers a QMP session on conn as script says: for each command name,
// the raw lines to send back (with "ID" replaced by the request's id).
func fakeQEMU(t *testing.T, conn net.Conn, script map[string][]string) {
	t.Helper()
	go func() {
		defer conn.Close()
		w := bufio.NewWriter(conn)
		w.WriteString(`{"QMP": {"version": {"qemu": {"micro": 0, "minor": 2, "major": 7}}, "capabilities": []}}` + "\r\n")
		w.Flush()
		sc := bufio.NewScanner(conn)
		for sc.Scan() {
			var req struct {
				Execute string          `json:"execute"`
				ID      json.RawMessage `json:"id"`
			}
			if err := json.Unmarshal(sc.Bytes(), &req); err != nil {
				return
			}
			for _, line := range script[req.Execute] {
				w.WriteString(strings.ReplaceAll(line, "ID", string(req.ID)) + "\r\n")
			}
			w.Flush()
		}
	}()
}

func TestQMP(t *testing.T) {
	client, server := net.Pipe()
	fakeQEMU(t, server, map[string][]string{
		"qmp_capabilities": {`{"return": {}, "id": ID}`},
		"stop": {
			`{"timestamp": {"seconds": 1, "microseconds": 2}, "event": "STOP"}`,
			`{"return": {}, "id": ID}`,
		},
		"dump-guest-memory": {`{"error": {"class": "GenericError", "desc": "dump: no space"}, "id": ID}`},
		"query-status":      {`{"return": {"status": "paused", "running": false}, "id": ID}`},
	})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	q, err := NewQMP(ctx, client)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	if _, err := q.Execute(ctx, "stop", nil); err != nil {
		t.Fatal(err)
	}
	select {
	case ev := <-q.Events():
		if ev.Name != "STOP" {
			t.Errorf("event %q, want STOP", ev.Name)
		}
	case <-ctx.Done():
		t.Fatal("no STOP event")
	}
	_, err = q.Execute(ctx, "dump-guest-memory", map[string]any{"paging": false, "protocol": "file:/x"})
	var qe *QMPError
	if !errors.As(err, &qe) || qe.Class != "GenericError" || qe.Command != "dump-guest-memory" {
		t.Errorf("dump error %v, want a GenericError from dump-guest-memory", err)
	}
	ret, err := q.Execute(ctx, "query-status", nil)
	if err != nil || !strings.Contains(string(ret), `"paused"`) {
		t.Errorf("query-status %s, %v", ret, err)
	}
}

func TestQMPBadGreeting(t *testing.T) {
	client, server := net.Pipe()
	go func() {
		server.Write([]byte(`{"return": {}}` + "\n"))
		server.Close()
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := NewQMP(ctx, client); err == nil {
		t.Fatal("no error for a session without a greeting")
	}
}

func TestQMPClosed(t *testing.T) {
	client, server := net.Pipe()
	fakeQEMU(t, server, map[string][]string{"qmp_capabilities": {`{"return": {}, "id": ID}`}})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	q, err := NewQMP(ctx, client)
	if err != nil {
		t.Fatal(err)
	}
	server.Close()
	if _, err := q.Execute(ctx, "quit", nil); err == nil {
		t.Error("Execute on a closed session succeeded")
	}
	select {
	case <-q.Done():
	case <-ctx.Done():
		t.Error("Done not closed")
	}
}
