package agent

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"
)

// DefaultChunk is the size of one vmcore upload request.
const DefaultChunk = 8 << 20

type dumpState struct {
	Size     int64 `json:"size"`
	Complete bool  `json:"complete"`
}

func (c *Client) dumpURL(key, suffix string) string {
	return strings.TrimSuffix(c.Server, "/") + "/api/agent/dumps/" + key + suffix
}

func (c *Client) httpClient() *http.Client {
	if c.HTTP != nil {
		return c.HTTP
	}
	return &http.Client{Timeout: 2 * time.Minute}
}

func (c *Client) dumpCall(ctx context.Context, method, u string, body io.Reader, size int64) (dumpState, int, error) {
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return dumpState{}, 0, err
	}
	if body != nil {
		req.ContentLength = size
	}
	req.Header.Set("Authorization", "Bearer "+c.Token)
	resp, err := c.httpClient().Do(req)
	if err != nil {
		return dumpState{}, 0, err
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	var st dumpState
	if resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusConflict {
		if json.Unmarshal(data, &st) == nil {
			return st, resp.StatusCode, nil
		}
	}
	return st, resp.StatusCode, fmt.Errorf("%s %s: %s: %s", method, u, resp.Status, strings.TrimSpace(string(data)))
}

// UploadDump sends a dump file in chunks, resuming at the size the collector already
// has (an upload cut by a kill or a lost connection goes on where it stopped), and
// completes it with the file's size and SHA-256. key names it on the collector (the
// dump's own Dump.Key). chunk <= 0 means DefaultChunk.
// reports are the stored report IDs the dump belongs to (its page links it).
func (c *Client) UploadDump(ctx context.Context, key, path string, chunk int64, reports ...int64) error {
	if chunk <= 0 {
		chunk = DefaultChunk
	}
	st, _, err := c.dumpCall(ctx, "GET", c.dumpURL(key, ""), nil, 0)
	if err != nil {
		return err
	}
	if st.Complete {
		return nil
	}
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	total := fi.Size()
	off := st.Size
	for off < total {
		n := min(chunk, total-off)
		next, code, err := c.dumpCall(ctx, "PUT", c.dumpURL(key, fmt.Sprintf("?offset=%d", off)), io.NewSectionReader(f, off, n), n)
		if err != nil {
			return err
		}
		if code == http.StatusConflict && next.Size == off {
			return fmt.Errorf("the collector refused the chunk at %d", off)
		}
		if next.Size > total {
			return fmt.Errorf("the collector holds %d bytes of a %d-byte dump", next.Size, total)
		}
		off = next.Size
	}
	h := sha256.New()
	if _, err := io.Copy(h, io.NewSectionReader(f, 0, total)); err != nil {
		return err
	}
	var ids []string
	for _, id := range reports {
		ids = append(ids, fmt.Sprint(id))
	}
	done, _, err := c.dumpCall(ctx, "POST", c.dumpURL(key, fmt.Sprintf("/complete?size=%d&sha256=%s&reports=%s", total, hex.EncodeToString(h.Sum(nil)), strings.Join(ids, ","))), nil, 0)
	if err != nil {
		return err
	}
	if !done.Complete {
		return fmt.Errorf("the collector did not complete the dump")
	}
	return nil
}
