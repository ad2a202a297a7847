package manager

import (
	"context"
	"errors"
	"time"

	"github.com/sandboxd/sandboxd/api"
	"github.com/sandboxd/sandboxd/internal/errdefs"
	"github.com/sandboxd/sandboxd/internal/store"
)

// Sleep: a running sandbox that has seen no call and no hold (see Hold)
// for its sleepAfter is put to sleep: its container stops (its processes
// end), its files stay, and its status is "sleeping". The next call starts
// it again (Agent), so a caller sees only latency.
//
// One goroutine, the sleeper (sleepLoop), does it. It keeps no clock of its
// own: it computes the earliest deadline from the entries' in-memory
// activity and waits on a timer for it. Activity only moves deadlines
// later, so calls never wake it; what may bring a deadline sooner (a
// sandbox starting, a hold released, a shorter sleepAfter) kicks it.

// sleepGranularity is the wait after each look at the deadlines.
const sleepGranularity = 100 * time.Millisecond

// sleepTimeout bounds putting one sandbox to sleep.
const sleepTimeout = 30 * time.Second

// sleepLoop is the sleeper: it puts sandboxes to sleep at their deadlines
// until ctx ends.
func (m *Manager) sleepLoop(ctx context.Context) {
	for {
		var due <-chan time.Time // nil: nothing to wait for but kicks
		if next := m.sleepDue(ctx); !next.IsZero() {
			due = time.After(time.Until(next))
		}
		select {
		case <-ctx.Done():
			return
		case <-m.sleepKick:
		case <-due:
		}
		// Sleeps are at most sleepGranularity late, and a burst of kicks
		// costs one scan.
		select {
		case <-ctx.Done():
			return
		case <-time.After(sleepGranularity):
		}
	}
}

// sleepDue puts to sleep every sandbox past its deadline and returns the
// next deadline (zero if none). It stops early when ctx ends.
func (m *Manager) sleepDue(ctx context.Context) time.Time {
	now := time.Now()
	var due []*entry
	var next time.Time
	m.mu.Lock()
	for _, e := range m.entries {
		d, ok := m.sleepDeadlineLocked(e)
		switch {
		case !ok:
		case !d.After(now):
			due = append(due, e)
		case next.IsZero() || d.Before(next):
			next = d
		}
	}
	m.mu.Unlock()
	for _, e := range due {
		if ctx.Err() != nil {
			return time.Time{}
		}
		if d, ok := m.sleepOne(e); ok && (next.IsZero() || d.Before(next)) {
			next = d
		}
	}
	return next
}

// sleepOne puts e to sleep if it is still idle past its deadline, taking
// the word of its record for keepAlive and sleepAfter. If it is not due
// after all, it returns its new deadline.
func (m *Manager) sleepOne(e *entry) (time.Time, bool) {
	ctx, cancel := context.WithTimeout(context.Background(), sleepTimeout)
	defer cancel()
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.gone || e.client == nil {
		m.mu.Lock()
		e.awake = false
		m.mu.Unlock()
		return time.Time{}, false
	}
	log := m.log.With("sandbox", e.id)
	rec, err := m.cfg.Store.Get(ctx, e.id)
	if err != nil {
		m.mu.Lock()
		if errors.Is(err, errdefs.ErrSandboxNotFound) {
			e.awake = false
		} else {
			// Try again after another sleepAfter, not in a loop.
			log.Error("sleep: read record", "err", err)
			e.lastActive = time.Now()
		}
		m.mu.Unlock()
		return time.Time{}, false
	}
	m.mu.Lock()
	e.sleepAfter, e.keepAlive = rec.SleepAfter, rec.KeepAlive
	d, ok := m.sleepDeadlineLocked(e)
	if rec.Pooled { // a warm-pool sandbox never sleeps
		e.awake, ok = false, false
	}
	if !ok || d.After(time.Now()) {
		m.mu.Unlock()
		return d, ok
	}
	idle := time.Since(d.Add(-rec.SleepAfter))
	e.awake = false
	m.mu.Unlock()

	began := time.Now()
	// Stopped as any container is (the runtime is called through the
	// manager's helpers only), then marked sleeping.
	m.stopLocked(ctx, e)
	if _, err := m.cfg.Store.Update(ctx, e.id, func(r *store.Sandbox) error {
		if r.Status == api.StatusStopped {
			r.Status = api.StatusSleeping
		}
		return nil
	}); err != nil && !errors.Is(err, errdefs.ErrSandboxNotFound) {
		log.Error("sleep: save status", "err", err)
	}
	m.cfg.Metrics.SleepsTotal.Inc()
	log.Info("sandbox asleep", "idle", idle.Round(time.Millisecond).String(), "sleepAfter", formatDuration(rec.SleepAfter), "ms", time.Since(began).Milliseconds())
	return time.Time{}, false
}
