package agent

import (
	"errors"
	"reflect"
	"testing"

	"github.com/sandboxd/sandboxd/api"
	"github.com/sandboxd/sandboxd/internal/errdefs"
)

func TestLimitsArgs(t *testing.T) {
	if got := (Limits{}).Args(); len(got) != 0 {
		t.Errorf("zero limits give flags %q", got)
	}
	got := Limits{Processes: 2, Contexts: 5}.Args()
	if want := []string{"--max-processes=2", "--max-contexts=5"}; !reflect.DeepEqual(got, want) {
		t.Errorf("Args = %q, want %q", got, want)
	}
	if d := (Limits{Sessions: 1}).WithDefaults(); d.Sessions != 1 || d.Processes != DefaultMaxProcesses || d.Contexts != DefaultMaxContexts {
		t.Errorf("WithDefaults = %+v", d)
	}
}

func TestSessionRoom(t *testing.T) {
	a := &Agent{limits: Limits{Sessions: 1}, sessions: sessions{m: map[string]*session{}}}
	a.sessions.m[api.DefaultSessionID] = &session{}
	if err := a.sessionRoomLocked(); err != nil {
		t.Fatalf("room for the first session besides the default: %v", err)
	}
	a.sessions.m["one"] = &session{}
	if err := a.sessionRoomLocked(); !errors.Is(err, errdefs.ErrResourceExhausted) {
		t.Fatalf("second session: err = %v, want ErrResourceExhausted", err)
	}
}
