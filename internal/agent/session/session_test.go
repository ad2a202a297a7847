package session

import (
	"errors"
	"testing"

	"github.com/sandboxd/sandboxd/api"
	"github.com/sandboxd/sandboxd/internal/errdefs"
)

func TestSessionRoom(t *testing.T) {
	reg := &Registry{cfg: Config{MaxSessions: 1}, m: map[string]*Session{}}
	reg.m[api.DefaultSessionID] = &Session{}
	if err := reg.sessionRoomLocked(); err != nil {
		t.Fatalf("room for the first session besides the default: %v", err)
	}
	reg.m["one"] = &Session{}
	if err := reg.sessionRoomLocked(); !errors.Is(err, errdefs.ErrResourceExhausted) {
		t.Fatalf("second session: err = %v, want ErrResourceExhausted", err)
	}
}
