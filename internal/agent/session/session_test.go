package session

import (
	"errors"
	"testing"

	"github.com/sandboxd/sandboxd/api"
	"github.com/sandboxd/sandboxd/internal/errdefs"
)

// TestSessionAdd: the default session is not counted against the limit;
// an ID in use is refused.
func TestSessionAdd(t *testing.T) {
	reg := &Registry{cfg: Config{MaxSessions: 1}, m: map[string]*Session{}}
	reg.m[api.DefaultSessionID] = &Session{}
	if err := reg.add(&Session{id: "one"}); err != nil {
		t.Fatalf("room for the first session besides the default: %v", err)
	}
	if err := reg.add(&Session{id: "two"}); !errors.Is(err, errdefs.ErrResourceExhausted) {
		t.Fatalf("second session: err = %v, want ErrResourceExhausted", err)
	}
	for _, id := range []string{"one", api.DefaultSessionID} {
		if err := reg.add(&Session{id: id}); errdefs.Code(err) != api.CodeSessionExists {
			t.Errorf("session %q again: err = %v, want %s", id, err, api.CodeSessionExists)
		}
	}
}
