package lab

import (
	"context"

	"github.com/kcrash/kcrash/internal/repro"
	"github.com/kcrash/kcrash/internal/store"
)

// TargetConsole is a repro.Watcher of a lab target's serial console that follows
// the target across reboots made by other processes (kcrash bisect's boot hook
// runs kcrash lab target reboot): it reads the target's state at every poll. It
// is the oracle for crashes netconsole cannot deliver (an oops inside the NIC's
// own NAPI poll, as netrace's).
type TargetConsole struct {
	Root, Name string
	// DB, when set, stores every report as a collector would.
	DB store.Store
	w  consoleWatcher
}

// Poll implements repro.Watcher.
func (t *TargetConsole) Poll(ctx context.Context) (repro.Observation, error) {
	st, err := LoadTarget(t.Root, t.Name)
	if err != nil {
		return repro.Observation{}, err
	}
	t.w.st, t.w.db = st, t.DB
	return t.w.Poll(ctx)
}
