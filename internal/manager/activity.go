package manager

import "time"

// Hold marks id busy until release is called: an open stream, terminal or
// preview connection is activity for as long as it lasts, so a sandbox
// with a hold on it is never put to sleep. release may be called more than
// once; only the first call counts. Hold neither creates nor starts id.
func (m *Manager) Hold(id string) (release func()) {
	e := m.entry(id)
	m.mu.Lock()
	e.holds++
	m.mu.Unlock()
	var once bool
	return func() {
		m.mu.Lock()
		defer m.mu.Unlock()
		if once {
			return
		}
		once = true
		e.holds--
		e.lastHold = time.Now()
	}
}

// heldSinceLocked reports whether e has holds, or had one until after t. The
// caller holds m.mu.
func (e *entry) heldSinceLocked(t time.Time) bool {
	return e.holds > 0 || e.lastHold.After(t)
}
