package manager

import (
	"sync"
	"time"
)

// Activity is what decides when a sandbox sleeps (see sleep.go). It lives
// in memory, guarded by Manager.mu: the open holds by sandbox ID
// (Manager.holds), and the entry's lastActive, awake, sleepAfter and
// keepAlive. Calls record it without a disk write, and the sleeper reads it
// without touching the store. The store's lastActiveAt is written at most
// every few seconds (touchLocked), for clients and for a daemon restart.

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
		if now := time.Now(); now.After(e.lastActive) {
			e.lastActive = now
		}
		awake = e.awake
	}
	m.mu.Unlock()
	if awake {
		// Its deadline starts now: the sleeper may be waiting on
		// nothing but kicks.
		m.sleep.kick()
	}
}

// noteActive records a call to e's running container at now: e is awake,
// and its idle time starts again.
func (m *Manager) noteActive(e *entry, now time.Time) {
	m.mu.Lock()
	was := e.awake
	e.awake = true
	if now.After(e.lastActive) {
		e.lastActive = now
	}
	m.mu.Unlock()
	if !was {
		m.sleep.kick() // a new deadline
	}
}

// setLastActive sets e's last activity to t, even if that is earlier than
// what e had (a sandbox re-attached after a daemon restart has been idle
// since its record's lastActiveAt, not since the restart).
func (m *Manager) setLastActive(e *entry, t time.Time) {
	m.mu.Lock()
	e.lastActive = t
	m.mu.Unlock()
	m.sleep.kick()
}

// setSleepPolicy records e's sleepAfter and keepAlive, from its record.
func (m *Manager) setSleepPolicy(e *entry, sleepAfter time.Duration, keepAlive bool) {
	m.mu.Lock()
	e.sleepAfter, e.keepAlive = sleepAfter, keepAlive
	m.mu.Unlock()
	m.sleep.kick() // the deadline may be sooner now
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
