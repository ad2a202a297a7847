package manager

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"path"
	"strings"

	"github.com/sandboxd/sandboxd/api"
	"github.com/sandboxd/sandboxd/internal/agentapi"
	"github.com/sandboxd/sandboxd/internal/errdefs"
	"github.com/sandboxd/sandboxd/internal/runtime"
	"github.com/sandboxd/sandboxd/internal/store"
)

// Create creates id with opts and starts it. If id exists, created is
// false: the options it can take (sleepAfter, keepAlive, labels, env) are
// applied to it, and those it cannot without being made anew (image,
// network, resources, cwd), if they differ from its own, give an error
// with code SANDBOX_OPTIONS_CONFLICT naming them, before anything changes.
func (m *Manager) Create(ctx context.Context, id string, opts api.CreateSandboxRequest) (sb api.Sandbox, created bool, err error) {
	e := m.lock(id)
	locked := true
	defer func() {
		if locked {
			e.mu.Unlock()
		}
	}()
	rec, err := m.cfg.Store.Get(ctx, e.id)
	exists := err == nil
	if err != nil && !errors.Is(err, errdefs.ErrSandboxNotFound) {
		return sb, false, err
	}
	if exists {
		// Options that are bad in themselves are refused first (400), so
		// that none of them is half applied.
		if _, err := newRecord(id, opts, m.cfg.DefaultImage); err != nil {
			return sb, false, err
		}
		for k := range opts.Env {
			if !agentapi.EnvName.MatchString(k) { // a running shell takes them
				return sb, false, fmt.Errorf("%w: env name %q: want [A-Za-z_][A-Za-z0-9_]*", errdefs.ErrInvalidArgument, k)
			}
		}
		if err := m.optionsConflict(rec, opts); err != nil {
			return sb, false, err
		}
	}
	switch {
	case !exists:
		created, err = true, m.createLocked(ctx, e, opts)
	case e.client == nil:
		err = m.startLocked(ctx, e, rec, false)
	}
	if err != nil {
		return sb, false, err
	}
	if exists {
		// Once begun, the changes are made whatever the caller does.
		ctx := context.WithoutCancel(ctx)
		if err := m.applyOptionsLocked(ctx, e, opts); err != nil {
			return sb, false, err
		}
		if c := e.client; c != nil && len(opts.Env) > 0 {
			// Not under e's lock: the agent waits for the default
			// session's running command, if any, to finish.
			e.mu.Unlock()
			locked = false
			vars := make(map[string]*string, len(opts.Env))
			for k, v := range opts.Env {
				vars[k] = &v
			}
			if err := c.SetEnv(ctx, vars); err != nil {
				return sb, false, err
			}
		}
	}
	sb, err = m.Get(ctx, id)
	return sb, created, err
}

// optionsConflict returns a SANDBOX_OPTIONS_CONFLICT error naming the
// options in opts that differ from those of rec, the record of an existing
// sandbox, and cannot change without making it anew; nil if none does.
// Options opts leaves out (empty, zero) never conflict.
func (m *Manager) optionsConflict(rec store.Sandbox, opts api.CreateSandboxRequest) error {
	var names []string
	if opts.Image != "" && opts.Image != rec.Image {
		names = append(names, fmt.Sprintf("image (%q, not %q)", rec.Image, opts.Image))
	}
	if opts.Network != "" && opts.Network != rec.Network {
		names = append(names, fmt.Sprintf("network (%q, not %q)", rec.Network, opts.Network))
	}
	if opts.Cwd != "" && path.Clean(opts.Cwd) != path.Clean(rec.Cwd) {
		names = append(names, fmt.Sprintf("cwd (%q, not %q)", rec.Cwd, opts.Cwd))
	}
	if r := opts.Resources; r != nil {
		has := rec.Resources
		def := runtime.Resources{}.WithDefaults()
		has.CPUs, has.MemoryMB, has.Pids = cmp.Or(has.CPUs, def.CPUs), cmp.Or(has.MemoryMB, def.MemoryMB), cmp.Or(has.Pids, def.Pids)
		if (r.CPUs != 0 && r.CPUs != has.CPUs) || (r.MemoryMB != 0 && r.MemoryMB != has.MemoryMB) ||
			(r.Pids != 0 && r.Pids != has.Pids) || (r.DiskMB != 0 && r.DiskMB != has.DiskMB) {
			names = append(names, fmt.Sprintf("resources (cpus %g, memoryMB %d, pids %d, diskMB %d)", has.CPUs, has.MemoryMB, has.Pids, has.DiskMB))
		}
	}
	if len(names) == 0 {
		return nil
	}
	return &errdefs.CodedError{
		Code: api.CodeOptionsConflict, Kind: errdefs.ErrConflict,
		Message: fmt.Sprintf("sandbox %s exists with other %s; delete it to create it with these", rec.ID, strings.Join(names, ", ")),
	}
}

// applyOptionsLocked applies to e's record what opts sets that can change:
// sleepAfter, keepAlive (true only: false is also what leaving it out
// says), labels, and env, added to its environment for its next starts
// (Create then sets it in its running default session).
func (m *Manager) applyOptionsLocked(ctx context.Context, e *entry, opts api.CreateSandboxRequest) error {
	var up api.UpdateSandboxRequest
	if opts.SleepAfter != "" {
		up.SleepAfter = &opts.SleepAfter
	}
	if opts.KeepAlive {
		up.KeepAlive = &opts.KeepAlive
	}
	if opts.Labels != nil {
		up.Labels = &opts.Labels
	}
	if up != (api.UpdateSandboxRequest{}) {
		if _, err := m.Update(ctx, e.id, up); err != nil {
			return err
		}
	}
	if len(opts.Env) == 0 {
		return nil
	}
	if _, err := m.cfg.Store.Update(ctx, e.id, func(r *store.Sandbox) error {
		r.Env = maps.Clone(r.Env)
		if r.Env == nil {
			r.Env = map[string]string{}
		}
		maps.Copy(r.Env, opts.Env)
		return nil
	}); err != nil {
		return err
	}
	return nil
}

// runLocked makes e's sandbox run: it starts its container unless it runs
// already, or, if it has no record, creates it with opts (created true).
func (m *Manager) runLocked(ctx context.Context, e *entry, opts api.CreateSandboxRequest) (created bool, err error) {
	if e.client != nil {
		return false, nil
	}
	rec, err := m.cfg.Store.Get(ctx, e.id)
	if errors.Is(err, errdefs.ErrSandboxNotFound) {
		return true, m.createLocked(ctx, e, opts)
	}
	if err != nil {
		return false, err
	}
	return false, m.startLocked(ctx, e, rec, false)
}

// createLocked validates opts, stores a new record and starts it. If the
// first start fails, the sandbox is rolled back: no record, no files.
func (m *Manager) createLocked(ctx context.Context, e *entry, opts api.CreateSandboxRequest) error {
	trace := runtime.NewStartTrace()
	rec, err := m.record(e.id, opts)
	if err != nil {
		return err
	}
	if claimed, err := m.claimLocked(ctx, e, rec); claimed || err != nil {
		return err
	}
	rec, err = m.cfg.Store.Create(ctx, rec, m.cfg.MaxSandboxes)
	if err != nil {
		return err
	}
	m.poolMissed(rec)
	trace.Mark("record")
	if err := m.startLocked(runtime.WithStartTrace(ctx, trace), e, rec, true); err != nil {
		bg := context.WithoutCancel(ctx)
		if derr := m.cfg.Runtime.Destroy(bg, rec.RuntimeName); derr != nil {
			m.log.Error("roll back failed create", "sandbox", e.id, "err", derr)
			return err // keep the record: its files still need cleaning
		}
		if derr := m.cfg.Store.Delete(bg, e.id); derr != nil {
			m.log.Error("roll back failed create", "sandbox", e.id, "err", derr)
		}
		return err
	}
	return nil
}
