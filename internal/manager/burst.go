package manager

import (
	"context"
	"fmt"
	goruntime "runtime"

	"github.com/sandboxd/sandboxd/internal/errdefs"
)

// Bursts: a hundred first calls for new IDs at once would start a hundred
// containers at once, each then taking as long as all of them together
// (runc, mounts and the agents' start share the CPUs), and the slowest
// would run into the start's timeouts. Starts therefore take one of a few
// slots, first come first served: the others wait, without a timeout of
// their own but their caller's, and every start, once it runs, has the
// CPU it needs. Claims from the warm pool take no slot.

// startSlots is how many container starts run at once: enough to keep the
// CPUs busy while some starts wait on the disk.
func startSlots() int { return max(8, 4*goruntime.NumCPU()) }

// startSlot waits for a start slot and returns its release, or an error
// wrapping errdefs.ErrUnavailable if ctx ends first.
func (m *Manager) startSlot(ctx context.Context) (release func(), err error) {
	select {
	case m.starts <- struct{}{}:
		return func() { <-m.starts }, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("%w: waiting for a start slot: %v", errdefs.ErrUnavailable, ctx.Err())
	}
}
