package session

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/sandboxd/sandboxd/api"
	"github.com/sandboxd/sandboxd/internal/agent/core"
)

// Sessions' settings outlive the container: a sandbox that sleeps, crashes
// or is restarted with its daemon comes back with the same sessions (IDs,
// env, working directory, command timeout), each with a fresh shell
// started on its first use. The agent keeps them in a state file on the
// sandbox's own filesystem (the overlay's upper layer, which a stop keeps),
// readable by the sandbox's root only, written atomically and synced
// before the call that changed them is answered.

// DefaultStateDir is where the agent keeps its state when it runs as a
// sandbox's PID 1.
const DefaultStateDir = "/var/lib/sandbox-agent"

const sessionStateFile = "sessions.json"

// savedSession is one session's settings in the state file.
type savedSession struct {
	ID               string            `json:"id"`
	Env              map[string]string `json:"env,omitempty"`
	Unset            []string          `json:"unset,omitempty"`
	Cwd              string            `json:"cwd"`
	CommandTimeoutMs int64             `json:"commandTimeoutMs,omitempty"`
	CreatedAt        time.Time         `json:"createdAt"`
}

type sessionStateDoc struct {
	Version  int            `json:"version"`
	Sessions []savedSession `json:"sessions"`
}

// sessionState writes the state file; mu serializes writers, so the last
// snapshot taken is the last written.
type sessionState struct {
	mu  sync.Mutex
	dir string // "" keeps nothing
}

// loadSessions fills the registry from the state file, if any. A file that
// cannot be read is logged and set aside, never fatal: the sandbox is more
// use with fresh sessions than with none.
func (reg *Registry) loadSessions() {
	if reg.state == nil || reg.state.dir == "" {
		return
	}
	path := filepath.Join(reg.state.dir, sessionStateFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return
	}
	var doc sessionStateDoc
	if err == nil {
		err = json.Unmarshal(b, &doc)
	}
	if err != nil {
		reg.log.Warn("session state unreadable; starting without it", "path", path, "err", err)
		_ = os.Rename(path, path+".bad")
		return
	}
	reg.mu.Lock()
	defer reg.mu.Unlock()
	for _, ss := range doc.Sessions {
		if !core.IDPattern.MatchString(ss.ID) && ss.ID != api.DefaultSessionID {
			continue
		}
		if _, dup := reg.m[ss.ID]; dup {
			continue
		}
		// The file is in the sandbox, where anything may have changed
		// it: take only what a call could have set.
		cwd := ss.Cwd
		if fi, err := os.Stat(cwd); !filepath.IsAbs(cwd) || err != nil || !fi.IsDir() {
			cwd = reg.workdir // removed meanwhile: better a shell than none
		}
		for k, v := range ss.Env {
			if k == "" || strings.ContainsAny(k, "=\x00") || strings.ContainsRune(v, 0) {
				delete(ss.Env, k)
			}
		}
		ss.Unset = slices.DeleteFunc(ss.Unset, func(k string) bool { return !core.EnvName.MatchString(k) })
		s := reg.newSession(ss.ID, ss.Env, cwd, time.Duration(max(ss.CommandTimeoutMs, 0))*time.Millisecond)
		if !ss.CreatedAt.IsZero() {
			s.createdAt = ss.CreatedAt
		}
		if len(ss.Unset) > 0 {
			s.unset = map[string]bool{}
			for _, k := range ss.Unset {
				s.unset[k] = true
			}
		}
		reg.m[ss.ID] = s
	}
	if len(doc.Sessions) > 0 {
		reg.log.Info("sessions restored", "count", len(doc.Sessions))
	}
}

// saveSessions writes every session's settings to the state file and
// syncs it. Call it after a change, before answering the call.
func (reg *Registry) saveSessions() error {
	if reg.state == nil || reg.state.dir == "" {
		return nil
	}
	reg.state.mu.Lock()
	defer reg.state.mu.Unlock()
	doc := sessionStateDoc{Version: 1}
	reg.mu.Lock()
	for _, s := range reg.m {
		s.mu.Lock()
		ss := savedSession{ID: s.id, Env: core.CopyEnv(s.env), Cwd: s.initCwd, CommandTimeoutMs: s.timeout.Milliseconds(), CreatedAt: s.createdAt}
		for k := range s.unset {
			ss.Unset = append(ss.Unset, k)
		}
		deleted := s.deleted
		s.mu.Unlock()
		if !deleted {
			sort.Strings(ss.Unset)
			doc.Sessions = append(doc.Sessions, ss)
		}
	}
	reg.mu.Unlock()
	sort.Slice(doc.Sessions, func(i, j int) bool { return doc.Sessions[i].ID < doc.Sessions[j].ID })
	b, err := json.Marshal(doc)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(reg.state.dir, 0o700); err != nil {
		return fmt.Errorf("save sessions: %w", err)
	}
	tmp, err := os.CreateTemp(reg.state.dir, ".sessions-*")
	if err != nil {
		return fmt.Errorf("save sessions: %w", err)
	}
	defer os.Remove(tmp.Name()) // after the rename, nothing to remove
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return fmt.Errorf("save sessions: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("save sessions: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("save sessions: %w", err)
	}
	if err := os.Rename(tmp.Name(), filepath.Join(reg.state.dir, sessionStateFile)); err != nil {
		return fmt.Errorf("save sessions: %w", err)
	}
	core.SyncDir(reg.state.dir)
	return nil
}

// sessionsChanged saves the sessions' settings, logging a failure: a
// sandbox whose disk is full keeps working, its sessions just would not
// survive a restart.
func (reg *Registry) sessionsChanged() {
	if err := reg.saveSessions(); err != nil {
		reg.log.Warn("session settings not saved", "err", err)
	}
}
