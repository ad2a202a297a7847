package session

import (
	"fmt"

	"github.com/sandboxd/sandboxd/api"
	"github.com/sandboxd/sandboxd/internal/errdefs"
)

// sessionRoomLocked tells whether one more session may be created: an
// error wrapping errdefs.ErrResourceExhausted if not. The caller holds
// reg.mu.
func (reg *Registry) sessionRoomLocked() error {
	n := len(reg.m)
	if _, ok := reg.m[api.DefaultSessionID]; ok {
		n--
	}
	if max := reg.maxSessions; n >= max {
		return fmt.Errorf("%w: this sandbox has at most %d sessions besides the default one (the daemon's --max-sessions); delete one first", errdefs.ErrResourceExhausted, max)
	}
	return nil
}
