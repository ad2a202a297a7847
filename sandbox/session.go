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
	info, err := call[api.Session](ctx, &s.target, "create session in "+s.describe(), once, http.MethodPost, "/sessions", nil, req)
	if err != nil {
		return nil, err
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
	list, err := call[api.SessionList](ctx, &s.target, "list sessions of "+s.describe(), retried, http.MethodGet, "/sessions", nil, nil)
	if err != nil {
		return nil, err
	}
	return list.Sessions, nil
}

// DeleteSession ends the session id: it kills its shell and the processes
// started in it. It returns ErrSessionNotFound if there is no such session,
// and ErrValidation for the default session, which cannot be deleted.
func (s *Sandbox) DeleteSession(ctx context.Context, id string) error {
	op := fmt.Sprintf("delete session %s of %s", id, s.describe())
	if err := checkSegment("session", id); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	_, err := call[none](ctx, &s.target, op, once, http.MethodDelete, "/sessions/"+url.PathEscape(id), nil, nil)
	return err
}

// SetEnvVars sets environment variables for the session's later commands
// and processes (on a Sandbox, the default session's): a nil value unsets
// the variable. Per-call Env still takes precedence over these.
func (t *target) SetEnvVars(ctx context.Context, vars map[string]*string) error {
	req := api.SetEnvRequest{EnvVars: vars, SessionID: t.sessionID}
	if req.EnvVars == nil {
		req.EnvVars = map[string]*string{}
	}
	_, err := call[none](ctx, t, "set env of "+t.describe(), once, http.MethodPost, "/env", nil, req)
	return err
}
