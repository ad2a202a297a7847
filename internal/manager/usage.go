package manager

import (
	"cmp"
	"context"
	"errors"

	"github.com/sandboxd/sandboxd/api"
	"github.com/sandboxd/sandboxd/internal/errdefs"
	"github.com/sandboxd/sandboxd/internal/runtime"
	"github.com/sandboxd/sandboxd/internal/store"
)

// usage returns what rec's container uses now; false if rec is not
// running, the runtime cannot say (no runtime.UsageReader), or the
// container stopped meanwhile.
func (m *Manager) usage(ctx context.Context, rec store.Sandbox) (runtime.Usage, bool) {
	ur, ok := m.cfg.Runtime.(runtime.UsageReader)
	if !ok || rec.Status != api.StatusRunning {
		return runtime.Usage{}, false
	}
	u, err := ur.Usage(ctx, cmp.Or(rec.RuntimeName, rec.ID))
	if err != nil {
		if !errors.Is(err, errdefs.ErrNotFound) {
			m.log.Warn("sandbox usage", "sandbox", rec.ID, "err", err)
		}
		return runtime.Usage{}, false
	}
	return u, true
}

// apiUsage is the wire form of u.
func apiUsage(u runtime.Usage) *api.SandboxUsage {
	return &api.SandboxUsage{CPUMs: u.CPU.Milliseconds(), MemoryBytes: u.MemoryBytes, Pids: u.Pids, DiskBytes: u.DiskBytes}
}
