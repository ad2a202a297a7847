package manager

import (
	"context"
	"errors"
	"sync"
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
// One goroutine, the sleeper, owned by the Manager (started by Recover,
// stopped by Close), does it. It keeps no clock of its own: it computes the
// earliest deadline from the entries' in-memory activity and waits on a
// timer for it. Activity only moves deadlines later, so calls never wake
// it; what may bring a deadline sooner (a sandbox starting, a hold
// released, a shorter sleepAfter) kicks it to compute again.

// sleepGranularity is the shortest wait between two looks at the
// deadlines: sleeps are at most this late, and a burst of kicks costs one
// scan.
const sleepGranularity = 100 * time.Millisecond

// sleepTimeout bounds putting one sandbox to sleep.
const sleepTimeout = 30 * time.Second

// sleeper is the Manager's sleep goroutine's control.
type sleeper struct {
	once  sync.Once
	kickc chan struct{} // buffered (1): a pending "look again"
	stopc chan struct{} // closed by stop
	done  chan struct{} // closed when the goroutine returns

	mu      sync.Mutex
	started bool // guarded by mu
	stopped bool // guarded by mu
}

func (s *sleeper) init() {
	s.once.Do(func() {
		s.kickc = make(chan struct{}, 1)
		s.stopc = make(chan struct{})
		s.done = make(chan struct{})
	})
}

// kick asks the sleeper to look at the deadlines again. It never blocks.
func (s *sleeper) kick() {
	s.init()
	select {
	case s.kickc <- struct{}{}:
	default:
	}
}

// startSleeper starts the sleeper, once; after stopSleeper, never again.
func (m *Manager) startSleeper() {
	s := &m.sleep
	s.init()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started || s.stopped {
		return
	}
	s.started = true
	go func() {
		defer close(s.done)
		m.sleepLoop()
	}()
}

// stopSleeper stops the sleeper and waits for it (a sandbox it is putting
// to sleep finishes first).
func (m *Manager) stopSleeper() {
	s := &m.sleep
	s.init()
	s.mu.Lock()
	started := s.started
	if !s.stopped {
		s.stopped = true
		close(s.stopc)
	}
	s.mu.Unlock()
	if started {
		<-s.done
	}
}

func (m *Manager) sleepLoop() {
	s := &m.sleep
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		next := m.sleepDue()
		var wake <-chan time.Time // nil: nothing to wait for but kicks
		if !next.IsZero() {
			timer.Reset(max(time.Until(next), sleepGranularity))
			wake = timer.C
		}
		select {
		case <-s.stopc:
			return
		case <-s.kickc:
			// Coalesce a burst of kicks into one look.
			t := time.NewTimer(sleepGranularity)
			select {
			case <-s.stopc:
				t.Stop()
				return
			case <-t.C:
			}
		case <-wake:
		}
		timer.Stop()
	}
}

// sleepDue puts to sleep every sandbox past its deadline and returns the
// next deadline (zero if none).
func (m *Manager) sleepDue() time.Time {
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
		select {
		case <-m.sleep.stopc:
			return time.Time{}
		default:
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
	if m.cfg.Metrics != nil && m.cfg.Metrics.SleepsTotal != nil {
		m.cfg.Metrics.SleepsTotal.Inc()
	}
	log.Info("sandbox asleep", "idle", idle.Round(time.Millisecond).String(), "sleepAfter", formatDuration(rec.SleepAfter), "ms", time.Since(began).Milliseconds())
	return time.Time{}, false
}

// woke records that e, asleep, was started again by a call that took d.
func (m *Manager) woke(e *entry, d time.Duration) {
	if m.cfg.Metrics != nil && m.cfg.Metrics.WakeSeconds != nil {
		m.cfg.Metrics.WakeSeconds.Observe(d.Seconds())
	}
	m.log.Info("sandbox woke", "sandbox", e.id, "ms", d.Milliseconds())
}
