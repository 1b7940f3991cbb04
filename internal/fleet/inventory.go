package fleet

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"regexp"
	"strings"
)

// Inventory maps host addresses to names and labels (kcrash serve --hosts FILE).
//
// One host per line: its address, its name, then labels as key=value:
//
//	# address           name     labels
//	10.0.0.5            web-01   rack=r12 model=R640
//	10.0.0.6:6665       web-02   rack=r12
//	build-7             build-7  role=ci
//
// An address without a port matches the host from any source port; any other first
// field is a host ID as given to kcrash ingest. Blank lines and # comments are
// skipped.
type Inventory struct {
	byID   map[string]InventoryEntry
	byAddr map[netip.Addr]InventoryEntry
}

// InventoryEntry is one host of an inventory.
type InventoryEntry struct {
	Name   string
	Labels map[string]string
}

var (
	invName  = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$`)
	invLabel = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_.-]{0,62}$`)
)

// Bounds on an inventory.
const (
	maxInventoryLines = 1_000_000
	maxInventoryLine  = 4096
)

// ParseInventory reads an inventory. Every bad line is reported with its number,
// and then nothing is accepted.
func ParseInventory(r io.Reader) (*Inventory, error) {
	inv := &Inventory{byID: map[string]InventoryEntry{}, byAddr: map[netip.Addr]InventoryEntry{}}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), maxInventoryLine)
	var errs []error
	n := 0
	for sc.Scan() {
		n++
		if n > maxInventoryLines {
			return nil, fmt.Errorf("inventory: more than %d lines", maxInventoryLines)
		}
		line := sc.Text()
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if len(errs) >= 20 {
			continue
		}
		if len(f) < 2 {
			errs = append(errs, fmt.Errorf("line %d: want ADDRESS NAME [KEY=VALUE…]", n))
			continue
		}
		ent := InventoryEntry{Name: f[1], Labels: map[string]string{}}
		if !invName.MatchString(f[1]) {
			errs = append(errs, fmt.Errorf("line %d: bad host name %q", n, f[1]))
			continue
		}
		bad := false
		for _, kv := range f[2:] {
			k, v, ok := strings.Cut(kv, "=")
			if !ok || !invLabel.MatchString(k) || v == "" || len(v) > 128 {
				errs = append(errs, fmt.Errorf("line %d: bad label %q (want key=value)", n, kv))
				bad = true
				break
			}
			ent.Labels[k] = v
		}
		if bad {
			continue
		}
		key := f[0]
		if a, err := netip.ParseAddr(key); err == nil {
			if _, dup := inv.byAddr[a.Unmap()]; dup {
				errs = append(errs, fmt.Errorf("line %d: %s listed twice", n, key))
				continue
			}
			inv.byAddr[a.Unmap()] = ent
			continue
		}
		if ap, err := netip.ParseAddrPort(key); err == nil {
			key = ap.String()
		} else if !invName.MatchString(key) {
			errs = append(errs, fmt.Errorf("line %d: bad address %q", n, f[0]))
			continue
		}
		if _, dup := inv.byID[key]; dup {
			errs = append(errs, fmt.Errorf("line %d: %s listed twice", n, key))
			continue
		}
		inv.byID[key] = ent
	}
	if err := sc.Err(); err != nil {
		errs = append(errs, fmt.Errorf("line %d: %w", n+1, err))
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("inventory: %w", errors.Join(errs...))
	}
	return inv, nil
}

// Lookup finds a host ID's entry: by the ID itself, else by its address.
func (inv *Inventory) Lookup(id string) (InventoryEntry, bool) {
	if inv == nil {
		return InventoryEntry{}, false
	}
	if e, ok := inv.byID[id]; ok {
		return e, true
	}
	if ap, err := netip.ParseAddrPort(id); err == nil {
		e, ok := inv.byAddr[ap.Addr().Unmap()]
		return e, ok
	}
	if a, err := netip.ParseAddr(id); err == nil {
		e, ok := inv.byAddr[a.Unmap()]
		return e, ok
	}
	return InventoryEntry{}, false
}

// Len is the number of hosts listed.
func (inv *Inventory) Len() int {
	if inv == nil {
		return 0
	}
	return len(inv.byID) + len(inv.byAddr)
}
