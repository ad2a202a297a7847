// Package session is the agent's sessions: each a long-lived shell whose
// state (cwd, exported variables, functions) carries from command to
// command, with settings kept across restarts of the sandbox
// (session_state.go); exec and exec/stream run commands in them (exec.go,
// shell.go). Other parts find a session through the Registry, for its
// directory and environment.
package session

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/sandboxd/sandboxd/api"
	"github.com/sandboxd/sandboxd/internal/agent/core"
	"github.com/sandboxd/sandboxd/internal/agentapi"
	"github.com/sandboxd/sandboxd/internal/errdefs"
)

// Session is one persistent shell and its settings. Calls run one at a
// time, in arrival order (q); the shell is started on first use and again
// after it exited.
type Session struct {
	id        string
	createdAt time.Time
	timeout   time.Duration
	initCwd   string

	q  core.Queue
	sh *shell // guarded by q

	mu      sync.Mutex
	env     map[string]string // guarded by mu
	unset   map[string]bool   // variables unset by setEnvVars; guarded by mu
	cwd     string            // the shell's last known directory; guarded by mu
	deleted bool              // guarded by mu
	// grp holds the groups of the shell and its commands, made when the
	// shell first starts; guarded by mu.
	grp *core.Group
}

// ID returns the session's ID.
func (s *Session) ID() string { return s.id }

// Config configures a Registry.
type Config struct {
	Reaper *core.Reaper
	// Workdir is the default session's directory, and that of sessions
	// created without one.
	Workdir string
	// RunDir holds the shells' command directories.
	RunDir string
	// StateDir holds the sessions' settings across restarts ("": kept
	// nowhere).
	StateDir string
	// MaxSessions bounds the sessions besides the default one.
	MaxSessions int
	// Deleted, if set, is called with the ID of a session being deleted,
	// after its shell was killed: the processes and terminals started in
	// it go too.
	Deleted func(id string)
	Log     *slog.Logger
}

// Registry is the agent's sessions.
type Registry struct {
	cfg    Config
	saveMu sync.Mutex // serializes writers of the state file (session_state.go)

	mu sync.Mutex
	m  map[string]*Session // guarded by mu
}

// New returns a registry of cfg, with the sessions saved in cfg.StateDir.
func New(cfg Config) *Registry {
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	reg := &Registry{cfg: cfg, m: map[string]*Session{}}
	reg.loadSessions()
	return reg
}

// Routes adds the session and exec calls to mux.
func (reg *Registry) Routes(mux *http.ServeMux) {
	mux.HandleFunc("POST /v1/exec", core.JSON(http.StatusOK, reg.handleExec))
	mux.HandleFunc("POST /v1/exec/stream", reg.handleExecStream)
	mux.HandleFunc("POST /v1/sessions", core.JSON(http.StatusCreated, reg.handleCreateSession))
	mux.HandleFunc("GET /v1/sessions", core.JSON(http.StatusOK, reg.handleListSessions))
	mux.HandleFunc("DELETE /v1/sessions/{sid}", core.JSON(http.StatusNoContent, reg.handleDeleteSession))
	mux.HandleFunc("POST /v1/env", core.JSON(http.StatusOK, reg.handleSetEnv))
}

// ForRequest returns the session a call selects: sid (from its body or
// query), else the X-Session-Id header, else the default session.
func (reg *Registry) ForRequest(r *http.Request, sid string) (*Session, error) {
	if sid == "" {
		sid = r.Header.Get(api.HeaderSessionID)
	}
	return reg.Get(sid)
}

// Get returns session id ("" means the default one, created on first
// use), or SESSION_NOT_FOUND.
func (reg *Registry) Get(id string) (*Session, error) {
	if id == "" {
		id = api.DefaultSessionID
	}
	reg.mu.Lock()
	defer reg.mu.Unlock()
	if s := reg.m[id]; s != nil {
		return s, nil
	}
	if id == api.DefaultSessionID {
		s := newSession(id, nil, reg.cfg.Workdir, 0)
		reg.m[id] = s
		return s, nil
	}
	return nil, notFound(id, "not found")
}

// notFound is SESSION_NOT_FOUND for session id, which is how ("not
// found", "was deleted").
func notFound(id, how string) error {
	return &errdefs.CodedError{Code: api.CodeSessionNotFound, Kind: errdefs.ErrNotFound, Message: fmt.Sprintf("session %q %s", id, how)}
}

func newSession(id string, env map[string]string, cwd string, timeout time.Duration) *Session {
	if env == nil {
		env = map[string]string{}
	}
	return &Session{id: id, createdAt: time.Now().UTC(), timeout: timeout, env: env, cwd: cwd, initCwd: cwd}
}

// Info describes the session.
func (s *Session) Info() api.Session {
	s.mu.Lock()
	defer s.mu.Unlock()
	return api.Session{ID: s.id, Cwd: s.cwd, Env: maps.Clone(s.env), CommandTimeoutMs: s.timeout.Milliseconds(), CreatedAt: s.createdAt}
}

// runInSession runs c in the session's shell, starting one if needed. The
// caller must not hold s.q; it is taken here, in arrival order.
func (reg *Registry) runInSession(ctx context.Context, s *Session, c command, sink outputSink) (runResult, error) {
	if err := s.q.Lock(ctx); err != nil {
		return runResult{}, err
	}
	defer s.q.Unlock()
	if c.timeout == 0 {
		c.timeout = s.timeout
	}
	if s.sh == nil {
		env, grp, err := s.shellSettings(reg.cfg.Reaper.Cgroups())
		if err != nil {
			return runResult{}, err
		}
		if s.sh, err = reg.startShell(env, s.initCwd, grp); err != nil {
			return runResult{}, err
		}
	} else if s.isDeleted() {
		return runResult{}, notFound(s.id, "was deleted")
	}
	res, err := s.sh.run(ctx, c, sink)
	res.timeout = c.timeout
	if res.reset {
		s.closeShell()
	}
	if err == nil && res.cwd != "" {
		s.mu.Lock()
		s.cwd = res.cwd
		s.mu.Unlock()
	}
	return res, err
}

// shellSettings returns the environment a new shell of the session gets
// and the session's group, made on first use. A deleted session, or one
// whose directory is gone, gets an error.
func (s *Session) shellSettings(cg *core.Cgroups) ([]string, *core.Group, error) {
	base := s.BaseEnv()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.deleted {
		return nil, nil, notFound(s.id, "was deleted")
	}
	if fi, err := os.Stat(s.initCwd); err != nil || !fi.IsDir() {
		return nil, nil, fmt.Errorf("%w: the session's directory %q is not a directory", errdefs.ErrInvalidArgument, s.initCwd)
	}
	if s.grp == nil {
		g, err := cg.New("session", nil)
		if err != nil {
			return nil, nil, err
		}
		s.grp = g
	}
	return core.MergeEnv(base, s.env), s.grp, nil
}

func (s *Session) isDeleted() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.deleted
}

// closeShell ends the session's shell, if it has one. The caller holds s.q.
func (s *Session) closeShell() {
	if s.sh != nil {
		s.sh.close()
		s.sh = nil
	}
}

// BaseEnv is the agent's environment less what the session unset.
func (s *Session) BaseEnv() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.DeleteFunc(os.Environ(), func(kv string) bool {
		k, _, _ := strings.Cut(kv, "=")
		return s.unset[k]
	})
}

func (reg *Registry) handleCreateSession(r *http.Request, req *api.CreateSessionRequest) (api.Session, error) {
	if req.ID == "" {
		req.ID = "session-" + core.NewID(12)
	}
	if !core.IDPattern.MatchString(req.ID) {
		return api.Session{}, fmt.Errorf("%w: session id %q: 1-64 characters of [A-Za-z0-9._-]", errdefs.ErrInvalidArgument, req.ID)
	}
	if req.Cwd == "" {
		req.Cwd = reg.cfg.Workdir
	}
	if !filepath.IsAbs(req.Cwd) {
		req.Cwd = filepath.Join(reg.cfg.Workdir, req.Cwd)
	}
	if req.CommandTimeoutMs < 0 {
		return api.Session{}, fmt.Errorf("%w: commandTimeoutMs must not be negative", errdefs.ErrInvalidArgument)
	}
	// A directory that does not exist yet is made, as Cloudflare's
	// session examples expect (a session for a project not cloned yet),
	// and removed again if the session cannot be made after all.
	_, statErr := os.Stat(req.Cwd)
	if err := os.MkdirAll(req.Cwd, 0o755); err != nil {
		return api.Session{}, fmt.Errorf("%w: cwd %q: %v", errdefs.ErrInvalidArgument, req.Cwd, err)
	}
	s := newSession(req.ID, req.Env, req.Cwd, time.Duration(req.CommandTimeoutMs)*time.Millisecond)
	if err := reg.add(s); err != nil {
		if errors.Is(statErr, fs.ErrNotExist) {
			_ = os.Remove(req.Cwd)
		}
		return api.Session{}, err
	}
	reg.sessionsChanged()
	return s.Info(), nil
}

// add adds a new session: SESSION_ALREADY_EXISTS if its ID is taken, an
// error wrapping errdefs.ErrResourceExhausted if there is no room for one
// more.
func (reg *Registry) add(s *Session) error {
	reg.mu.Lock()
	defer reg.mu.Unlock()
	n := len(reg.m)
	if _, ok := reg.m[api.DefaultSessionID]; ok {
		n--
	}
	switch max := reg.cfg.MaxSessions; {
	case reg.m[s.id] != nil || s.id == api.DefaultSessionID:
		return &errdefs.CodedError{Code: api.CodeSessionExists, Kind: errdefs.ErrConflict, Message: fmt.Sprintf("session %q already exists", s.id)}
	case n >= max:
		return fmt.Errorf("%w: this sandbox has at most %d sessions besides the default one (the daemon's --max-sessions); delete one first", errdefs.ErrResourceExhausted, max)
	}
	reg.m[s.id] = s
	return nil
}

func (reg *Registry) handleListSessions(r *http.Request, _ *core.NoBody) (api.SessionList, error) {
	_, _ = reg.Get("") // the default one always exists: made here if need be
	reg.mu.Lock()
	list := make([]api.Session, 0, len(reg.m))
	for _, s := range reg.m {
		list = append(list, s.Info())
	}
	reg.mu.Unlock()
	slices.SortFunc(list, func(a, b api.Session) int { return a.CreatedAt.Compare(b.CreatedAt) })
	return api.SessionList{Sessions: list, Count: len(list)}, nil
}

// handleDeleteSession kills the session's shell, what it started and the
// background processes started in it.
func (reg *Registry) handleDeleteSession(r *http.Request, _ *core.NoBody) (core.Status, error) {
	id := r.PathValue("sid")
	if id == api.DefaultSessionID {
		return 0, fmt.Errorf("%w: the default session cannot be deleted", errdefs.ErrInvalidArgument)
	}
	reg.mu.Lock()
	s := reg.m[id]
	delete(reg.m, id)
	reg.mu.Unlock()
	if s == nil {
		return 0, notFound(id, "not found")
	}
	s.mu.Lock()
	s.deleted = true
	grp := s.grp
	s.mu.Unlock()
	reg.sessionsChanged()
	// Kill first: a command running in the shell ends, and its call
	// returns, so the queue frees up.
	if grp != nil {
		grp.Kill()
	}
	if reg.cfg.Deleted != nil {
		reg.cfg.Deleted(id)
	}
	if err := s.q.Lock(r.Context()); err == nil {
		s.closeShell()
		s.q.Unlock()
	}
	return core.Status(http.StatusNoContent), nil
}

// handleSetEnv sets (or, for null values, unsets) variables in a session:
// in its settings, and in its running shell.
func (reg *Registry) handleSetEnv(r *http.Request, req *api.SetEnvRequest) (api.Session, error) {
	s, err := reg.ForRequest(r, req.SessionID)
	if err != nil {
		return api.Session{}, err
	}
	for k := range req.EnvVars {
		if !agentapi.EnvName.MatchString(k) {
			return api.Session{}, fmt.Errorf("%w: env name %q", errdefs.ErrInvalidArgument, k)
		}
	}
	var script string
	s.mu.Lock()
	if s.deleted {
		s.mu.Unlock()
		return api.Session{}, notFound(s.id, "was deleted")
	}
	if s.unset == nil {
		s.unset = map[string]bool{}
	}
	for k, v := range req.EnvVars {
		if v == nil {
			delete(s.env, k)
			s.unset[k] = true
			script += "unset " + k + "\n"
		} else {
			s.env[k] = *v
			delete(s.unset, k)
			script += "export " + shQuote(k+"="+*v) + "\n"
		}
	}
	s.mu.Unlock()
	reg.sessionsChanged()
	// Apply to the running shell, in order with the session's commands.
	if err := s.q.Lock(r.Context()); err != nil {
		return api.Session{}, err
	}
	defer s.q.Unlock()
	if s.sh != nil && script != "" {
		if res, err := s.sh.run(r.Context(), command{text: script}, &bufferSink{}); res.reset {
			s.closeShell() // the next shell starts with the new settings
		} else if err != nil {
			return api.Session{}, err
		}
	}
	return s.Info(), nil
}
