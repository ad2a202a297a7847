package manager

import (
	"context"
	"errors"
	"time"

	"github.com/sandboxd/sandboxd/api"
	"github.com/sandboxd/sandboxd/internal/errdefs"
	"github.com/sandboxd/sandboxd/internal/store"
)

// StatusDestroying is the status of a record whose destroy has begun: it
// is written before anything is removed, so that a destroy cut short (the
// daemon killed between removing the files and deleting the record) is
// finished by Recover at the next start, and never undone by a start over
// half-removed files. It shows on the wire for as long as a DELETE runs.
const StatusDestroying = "destroying"

// Recover brings the in-memory state in line with the store and the
// runtime after a daemon start, then starts the Manager's goroutines. By
// the status a record was left in:
//
//   - destroying: the destroy is finished.
//   - creating: the first start never finished. If its container survived
//     and its agent answers, the create is finished (running); otherwise it
//     is rolled back (no record, no files), as a failed first start is: the
//     client never got an answer for it.
//   - running: re-attached if its container survived with a working agent,
//     otherwise stopped (cleaned), and started again on next use.
//   - sleeping, stopped: stay so (leftovers cleaned).
//
// Pooled sandboxes are adopted or destroyed (recoverPool).
func (m *Manager) Recover(ctx context.Context) error {
	recs, err := m.cfg.Store.List(ctx)
	if err != nil {
		return err
	}
	defer m.startLoops()
	if err := m.recoverPool(ctx); err != nil {
		return err
	}
	for _, rec := range recs {
		m.recoverOne(ctx, rec)
	}
	return nil
}

func (m *Manager) recoverOne(ctx context.Context, rec store.Sandbox) {
	log := m.log.With("sandbox", rec.ID)
	if rec.Status == StatusDestroying {
		if err := m.Destroy(ctx, rec.ID); err != nil {
			log.Error("recover: finish interrupted destroy", "err", err)
		} else {
			log.Info("recover: finished interrupted destroy")
		}
		return
	}
	e := m.lock(rec.ID)
	inst, err := m.cfg.Runtime.Attach(ctx, rec.RuntimeName)
	if err == nil {
		c, cerr := connect(ctx, inst, 5*time.Second)
		if cerr == nil {
			// Idle since, as far as the record knows.
			m.runningLocked(e, c, inst, rec, rec.LastActiveAt)
			log.Info("re-attached running sandbox", "pid", inst.Pid)
		} else {
			log.Warn("running sandbox has no usable agent; stopping it", "err", cerr)
			err = m.cfg.Runtime.Stop(ctx, rec.RuntimeName)
		}
	}
	status := api.StatusStopped
	switch {
	case e.client != nil:
		status = api.StatusRunning
	case rec.Status == api.StatusCreating:
		e.mu.Unlock()
		if derr := m.Destroy(ctx, rec.ID); derr != nil {
			log.Error("recover: roll back interrupted create", "err", derr)
		} else {
			log.Info("recover: rolled back interrupted create")
		}
		return
	case rec.Status == api.StatusSleeping:
		status = api.StatusSleeping
	}
	if rec.Status != status {
		if _, uerr := m.cfg.Store.Update(ctx, rec.ID, func(r *store.Sandbox) error { r.Status = status; return nil }); uerr != nil {
			err = errors.Join(err, uerr)
		}
	}
	e.mu.Unlock()
	if err != nil && !errors.Is(err, errdefs.ErrNotFound) {
		log.Error("recover sandbox", "err", err)
	}
}
