package manager

// StatusDestroying is the status of a record whose destroy has begun: it
// is written before anything is removed, so that a destroy cut short (the
// daemon killed between removing the files and deleting the record) is
// finished by Recover at the next start, and never undone by a start over
// half-removed files. It shows on the wire for as long as a DELETE runs.
//
// The other statuses of a record after a daemon start (Recover):
//
//   - creating: the first start never finished. If its container survived
//     and its agent answers, the create is finished (running); otherwise it
//     is rolled back (no record, no files), as a failed first start is: the
//     client never got an answer for it.
//   - running: re-attached if its container survived with a working agent,
//     otherwise stopped (cleaned), and started again on next use.
//   - sleeping, stopped: stay so (leftovers cleaned).
const StatusDestroying = "destroying"

// crashed counts a container that exited on its own or lost its agent.
func (m *Manager) crashed() {
	if m.cfg.Metrics != nil && m.cfg.Metrics.CrashesTotal != nil {
		m.cfg.Metrics.CrashesTotal.Inc()
	}
}
