package kernel

import (
	"errors"
	"fmt"
)

// ErrListCycle is returned when a list revisits a node other than its head.
var ErrListCycle = errors.New("list has a cycle")

// ErrListTooLong is returned when a list has more nodes than the walk's cap.
var ErrListTooLong = errors.New("list longer than the cap")

// DefaultListCap bounds list walks when the caller gives no cap.
const DefaultListCap = 1 << 20

// ListWalk follows the next pointers at offset next from node start: a
// circular list (struct list_head: back to start) or a NULL-terminated chain
// (struct hlist_node, an hlist_head's first). It returns the nodes visited,
// start first, and stops with ErrListCycle when a node other than start
// comes round again (a corrupted list), ErrListTooLong past max nodes, or the
// read error of an unreadable next pointer. The nodes read so far are
// returned with any error. Memory: one map entry per node.
func (k *Kernel) ListWalk(start uint64, next int64, max int) ([]uint64, error) {
	if max <= 0 {
		max = DefaultListCap
	}
	seen := map[uint64]bool{start: true}
	nodes := []uint64{start}
	p := start
	for {
		n, err := k.U64(p + uint64(next))
		if err != nil {
			return nodes, err
		}
		if n == 0 || n == start {
			return nodes, nil
		}
		if seen[n] {
			return nodes, fmt.Errorf("%w: %#x comes again after %d nodes", ErrListCycle, n, len(nodes))
		}
		if len(nodes) >= max {
			return nodes, fmt.Errorf("%w (%d nodes)", ErrListTooLong, max)
		}
		seen[n] = true
		nodes = append(nodes, n)
		p = n
	}
}
