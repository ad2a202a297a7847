package agent

import (
	"errors"
	"testing"

	"github.com/sandboxd/sandboxd/api"
	"github.com/sandboxd/sandboxd/internal/agentapi"
	"github.com/sandboxd/sandboxd/internal/errdefs"
)

func TestSessionRoom(t *testing.T) {
	a := &Agent{limits: agentapi.Limits{Sessions: 1}, sessions: sessions{m: map[string]*session{}}}
	a.sessions.m[api.DefaultSessionID] = &session{}
	if err := a.sessionRoomLocked(); err != nil {
		t.Fatalf("room for the first session besides the default: %v", err)
	}
	a.sessions.m["one"] = &session{}
	if err := a.sessionRoomLocked(); !errors.Is(err, errdefs.ErrResourceExhausted) {
		t.Fatalf("second session: err = %v, want ErrResourceExhausted", err)
	}
}
