package manager

import (
	"context"
	"sync"
	"time"

	"github.com/sandboxd/sandboxd/internal/store"
)

// Activity is what decides when a sandbox sleeps (see sleep.go). It lives
// in memory, guarded by Manager.mu: the open holds by sandbox ID
// (Manager.holds), and the entry's lastActive, awake, sleepAfter and
// keepAlive. Calls record it without a disk write, and the sleeper reads it
// without touching the store.
//
// The store's lastActiveAt follows in batches: activity marks the ID in
// Manager.unsaved, and the saver (saveLoop) writes all of them in one
// transaction every activitySaveEvery, and Close once more. Get and List
// show the in-memory value where it is later. A daemon that dies without
// Close loses at most activitySaveEvery of lastActiveAt.

// activitySaveEvery is how often the saver writes the activity noted since
// its last write.
const activitySaveEvery = 5 * time.Second

// activitySaveTimeout bounds one write of the saver.
const activitySaveTimeout = 30 * time.Second

// Hold marks id busy until release is called: an open stream, terminal or
// preview connection is activity for as long as it lasts, so a sandbox
// with a hold on it is never put to sleep. Take the hold before asking for
// the agent (Agent), so that the sandbox cannot fall asleep in between.
// release may be called more than once; only the first call counts. Hold
// neither creates nor starts id.
//
// Holds count by ID, not by entry: a hold taken while id was being
// destroyed covers the sandbox that a call then creates under that ID.
func (m *Manager) Hold(id string) (release func()) {
	m.mu.Lock()
	m.holds[id]++
	m.mu.Unlock()
	var once sync.Once
	return func() { once.Do(func() { m.unhold(id) }) }
}

// unhold ends one hold on id: it is activity now, the start of an idle
// time if it was the last hold.
func (m *Manager) unhold(id string) {
	m.mu.Lock()
	if m.holds[id]--; m.holds[id] <= 0 {
		delete(m.holds, id)
	}
	var awake bool
	if e := m.entries[id]; e != nil {
		m.activeLocked(e, time.Now())
		awake = e.awake
	}
	m.mu.Unlock()
	if awake {
		// Its deadline starts now: the sleeper may be waiting on
		// nothing but kicks.
		kick(m.sleepKick)
	}
}

// noteActive records a call to e's running container at now: e is awake,
// and its idle time starts again.
func (m *Manager) noteActive(e *entry, now time.Time) {
	m.mu.Lock()
	was := e.awake
	e.awake = true
	m.activeLocked(e, now)
	m.mu.Unlock()
	if !was {
		kick(m.sleepKick) // a new deadline
	}
}

// activeLocked moves e's last activity forward to t, for the saver to
// write. The caller holds m.mu.
func (m *Manager) activeLocked(e *entry, t time.Time) {
	if t.After(e.lastActive) {
		e.lastActive = t
		m.unsaved[e.id] = t
	}
}

// startedActive records that e's container runs, with rec's sleepAfter
// and keepAlive, awake and idle since stored, the lastActiveAt its record
// holds (earlier than now for a sandbox re-attached after a daemon
// restart: it has been idle since then, not since the restart).
func (m *Manager) startedActive(e *entry, rec store.Sandbox, stored time.Time) {
	m.mu.Lock()
	e.awake, e.lastActive = true, stored
	e.sleepAfter, e.keepAlive = rec.SleepAfter, rec.KeepAlive
	if t, ok := m.unsaved[e.id]; ok && !t.After(stored) {
		delete(m.unsaved, e.id)
	}
	m.mu.Unlock()
	kick(m.sleepKick) // a new deadline
}

// setSleepPolicy records e's sleepAfter and keepAlive, from its record.
func (m *Manager) setSleepPolicy(e *entry, sleepAfter time.Duration, keepAlive bool) {
	m.mu.Lock()
	e.sleepAfter, e.keepAlive = sleepAfter, keepAlive
	m.mu.Unlock()
	kick(m.sleepKick) // the deadline may be sooner now
}

// sleepDeadlineLocked returns when e falls asleep if nothing happens
// meanwhile, and false if it cannot (not running, kept alive, held). The
// caller holds m.mu.
func (m *Manager) sleepDeadlineLocked(e *entry) (time.Time, bool) {
	if !e.awake || e.keepAlive || m.holds[e.id] > 0 {
		return time.Time{}, false
	}
	after := e.sleepAfter
	if after <= 0 {
		after = DefaultSleepAfter
	}
	return e.lastActive.Add(after), true
}

// withActivity returns recs with the last activity noted in memory where
// it is later than the stored lastActiveAt (which lags by up to
// activitySaveEvery), in the store's precision (milliseconds, UTC).
func (m *Manager) withActivity(recs ...store.Sandbox) []store.Sandbox {
	m.mu.Lock()
	defer m.mu.Unlock()
	for i, r := range recs {
		if e := m.entries[r.ID]; e != nil && e.lastActive.After(r.LastActiveAt) {
			recs[i].LastActiveAt = time.UnixMilli(e.lastActive.UnixMilli()).UTC()
		}
	}
	return recs
}

// saveActivity writes the activity noted since the last write to the
// store, in one transaction. If that fails, the values stay noted for the
// next try.
func (m *Manager) saveActivity(ctx context.Context) error {
	m.mu.Lock()
	if len(m.unsaved) == 0 {
		m.mu.Unlock()
		return nil
	}
	batch := m.unsaved
	m.unsaved = make(map[string]time.Time)
	m.mu.Unlock()
	err := m.cfg.Store.SaveActivity(ctx, batch)
	if err != nil {
		m.mu.Lock()
		for id, t := range batch {
			if u, ok := m.unsaved[id]; !ok || t.After(u) {
				m.unsaved[id] = t
			}
		}
		m.mu.Unlock()
	}
	return err
}

// saveLoop is the saver: it writes the activity noted every
// activitySaveEvery until ctx ends.
func (m *Manager) saveLoop(ctx context.Context) {
	tick := time.NewTicker(activitySaveEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			m.saveNow()
		}
	}
}

// saveNow writes the activity noted so far, logging a failure.
func (m *Manager) saveNow() {
	ctx, cancel := context.WithTimeout(context.Background(), activitySaveTimeout)
	defer cancel()
	if err := m.saveActivity(ctx); err != nil {
		m.log.Warn("save activity", "err", err) // kept for the next try
	}
}
