package sandbox

import (
	"cmp"
	"context"
	"fmt"
	"net/http"
	"net/url"

	"github.com/sandboxd/sandboxd/api"
)

// Session is a handle on one session of a sandbox: a long-lived shell whose
// state (current directory, exported variables, functions) carries from
// command to command. It offers the same methods as [Sandbox] for commands,
// processes and environment, each acting in this session: Exec runs in its
// shell, StartProcess starts processes in it, SetEnvVars changes its
// environment. Sessions share the sandbox's files, processes and ports.
//
// Calls to one session run one at a time, in order; different sessions run
// in parallel. Like a Sandbox, a Session holds only IDs, so it is cheap and
// safe for concurrent use.
type Session struct {
	target
}

// ID returns the session's ID.
func (s *Session) ID() string { return s.sessionID }

// Sandbox returns a handle on the session's sandbox.
func (s *Session) Sandbox() *Sandbox {
	return &Sandbox{target{c: s.c, sandboxID: s.sandboxID}}
}

// CreateSession creates a session in the sandbox and returns a handle on
// it. req.ID names it (empty lets the daemon choose one); req.Env and
// req.Cwd set its starting environment and directory, and
// req.CommandTimeoutMs a default timeout for its commands. It returns
// ErrSessionExists if the sandbox has a session with that ID already. It is
// not retried.
func (s *Sandbox) CreateSession(ctx context.Context, req api.CreateSessionRequest) (*Session, error) {
	var info api.Session
	if err := s.do(ctx, http.MethodPost, "/sessions", nil, req, &info); err != nil {
		return nil, fmt.Errorf("create session in %s: %w", s.describe(), err)
	}
	return s.GetSession(cmp.Or(info.ID, req.ID)), nil
}

// GetSession returns a handle on the session id of the sandbox. It sends no
// request: calls through the handle return ErrSessionNotFound if there is no
// such session. api.DefaultSessionID names the session the sandbox's own
// methods use.
func (s *Sandbox) GetSession(id string) *Session {
	return &Session{target{c: s.c, sandboxID: s.sandboxID, sessionID: id}}
}

// ListSessions returns the sandbox's sessions, the default one included.
func (s *Sandbox) ListSessions(ctx context.Context) ([]api.Session, error) {
	var list api.SessionList
	if err := s.doRetry(ctx, http.MethodGet, "/sessions", nil, nil, &list); err != nil {
		return nil, fmt.Errorf("list sessions of %s: %w", s.describe(), err)
	}
	return list.Sessions, nil
}

// DeleteSession ends the session id: it kills its shell and the processes
// started in it. It returns ErrSessionNotFound if there is no such session,
// and ErrValidation for the default session, which cannot be deleted.
func (s *Sandbox) DeleteSession(ctx context.Context, id string) error {
	err := checkSegment("session", id)
	if err == nil {
		err = s.do(ctx, http.MethodDelete, "/sessions/"+url.PathEscape(id), nil, nil, nil)
	}
	if err != nil {
		return fmt.Errorf("delete session %s of %s: %w", id, s.describe(), err)
	}
	return nil
}

// SetEnvVars sets environment variables for the session's later commands
// and processes (on a Sandbox, the default session's): a nil value unsets
// the variable. Per-call Env still takes precedence over these.
func (t *target) SetEnvVars(ctx context.Context, vars map[string]*string) error {
	req := api.SetEnvRequest{EnvVars: vars, SessionID: t.sessionID}
	if req.EnvVars == nil {
		req.EnvVars = map[string]*string{}
	}
	if err := t.do(ctx, http.MethodPost, "/env", nil, req, nil); err != nil {
		return fmt.Errorf("set env of %s: %w", t.describe(), err)
	}
	return nil
}
