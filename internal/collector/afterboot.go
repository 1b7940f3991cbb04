package collector

import (
	"bytes"
	"context"
	"fmt"
	"time"

	"github.com/kcrash/kcrash/internal/oops"
)

// Stored is one report an agent's upload produced, as acknowledged to the agent.
type Stored struct {
	ID      int64  `json:"id"`
	Created bool   `json:"created"` // false: the same report was already stored
	Title   string `json:"title"`
	Source  string `json:"source"`
}

// IngestReports stores the crash reports of a log read after the reboot (a pstore
// record, kdump's vmcore-dmesg.txt) synchronously, marked with their source, and
// returns them: the agent deletes its copy only once it has the stored IDs. The
// syslog "<N>" level prefixes of a pstore record are dropped first, so a report also
// heard live over netconsole has the same text, hence the same key, and is stored
// once (with both sources). No report in text is not an error: the result is empty.
func (c *Collector) IngestReports(ctx context.Context, host, source string, text []byte) ([]Stored, error) {
	if c.o.Store == nil {
		return nil, fmt.Errorf("ingest %s: no store", host)
	}
	text = stripLevels(text)
	cp := capture{host: host, at: time.Now(), text: text}
	var out []Stored
	for _, r := range oops.Parse(text) {
		sr := c.storeReport(cp, r)
		sr.Source = source
		id, created, err := c.o.Store.SaveReport(ctx, sr)
		if err != nil {
			c.Stats.StoreErrors.Add(1)
			return out, fmt.Errorf("ingest %s: %w", host, err)
		}
		if created {
			sr.ID = id
			// Counted once its watchers heard of it: whoever waits for the count
			// (a test, a dashboard) then finds the report everywhere it goes.
			if c.notify != nil {
				c.notify(sr)
			}
			c.Stats.Reports.Add(1)
		} else {
			c.Stats.Duplicates.Add(1)
		}
		out = append(out, Stored{ID: id, Created: created, Title: sr.Title, Source: source})
	}
	return out, nil
}

// stripLevels removes a "<N>" syslog level at the start of each line (pstore's
// kmsg_dump writes the log with them; the console and netconsole do not).
func stripLevels(text []byte) []byte {
	if !bytes.Contains(text, []byte("\n<")) && !bytes.HasPrefix(text, []byte("<")) {
		return text
	}
	out := make([]byte, 0, len(text))
	for len(text) > 0 {
		line := text
		if i := bytes.IndexByte(text, '\n'); i >= 0 {
			line, text = text[:i+1], text[i+1:]
		} else {
			text = nil
		}
		if len(line) >= 3 && line[0] == '<' {
			if j := bytes.IndexByte(line[:min(len(line), 6)], '>'); j > 1 && allDigits(line[1:j]) {
				line = line[j+1:]
			}
		}
		out = append(out, line...)
	}
	return out
}

func allDigits(b []byte) bool {
	for _, c := range b {
		if c < '0' || c > '9' {
			return false
		}
	}
	return len(b) > 0
}
