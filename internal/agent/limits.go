package agent

import (
	"fmt"

	"github.com/sandboxd/sandboxd/api"
	"github.com/sandboxd/sandboxd/internal/errdefs"
)

// sessionRoomLocked tells whether one more session may be created: an
// error wrapping errdefs.ErrResourceExhausted if not. The caller holds
// a.sessions.mu.
func (a *Agent) sessionRoomLocked() error {
	n := len(a.sessions.m)
	if _, ok := a.sessions.m[api.DefaultSessionID]; ok {
		n--
	}
	if max := a.limits.WithDefaults().Sessions; n >= max {
		return fmt.Errorf("%w: this sandbox has at most %d sessions besides the default one (the daemon's --max-sessions); delete one first", errdefs.ErrResourceExhausted, max)
	}
	return nil
}
