package session

import (
	"encoding/json"
	"errors"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/sandboxd/sandboxd/api"
	"github.com/sandboxd/sandboxd/internal/agent/core"
	"github.com/sandboxd/sandboxd/internal/agentapi"
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

// savedSession is one session's settings in the state file; its Cwd is
// the session's first directory, not its shell's last.
type savedSession struct {
	api.Session
	Unset []string `json:"unset,omitempty"`
}

type sessionStateDoc struct {
	Version  int            `json:"version"`
	Sessions []savedSession `json:"sessions"`
}

// loadSessions fills the registry from the state file, if any. A file that
// cannot be read is logged and set aside, never fatal: the sandbox is more
// use with fresh sessions than with none.
func (reg *Registry) loadSessions() {
	if reg.cfg.StateDir == "" {
		return
	}
	path := filepath.Join(reg.cfg.StateDir, sessionStateFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return
	}
	var doc sessionStateDoc
	if err == nil {
		err = json.Unmarshal(b, &doc)
	}
	if err != nil {
		reg.cfg.Log.Warn("session state unreadable; starting without it", "path", path, "err", err)
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
			cwd = reg.cfg.Workdir // removed meanwhile: better a shell than none
		}
		for k, v := range ss.Env {
			if k == "" || strings.ContainsAny(k, "=\x00") || strings.ContainsRune(v, 0) {
				delete(ss.Env, k)
			}
		}
		s := newSession(ss.ID, ss.Env, cwd, time.Duration(max(ss.CommandTimeoutMs, 0))*time.Millisecond)
		if !ss.CreatedAt.IsZero() {
			s.createdAt = ss.CreatedAt
		}
		for _, k := range ss.Unset {
			if agentapi.EnvName.MatchString(k) {
				if s.unset == nil {
					s.unset = map[string]bool{}
				}
				s.unset[k] = true
			}
		}
		reg.m[ss.ID] = s
	}
	if len(doc.Sessions) > 0 {
		reg.cfg.Log.Info("sessions restored", "count", len(doc.Sessions))
	}
}

// sessionsChanged writes every session's settings to the state file and
// syncs it; call it after a change, before answering the call. A failure
// is logged: a sandbox whose disk is full keeps working, its sessions just
// would not survive a restart.
func (reg *Registry) sessionsChanged() {
	if reg.cfg.StateDir == "" {
		return
	}
	reg.saveMu.Lock() // the last snapshot taken is the last written
	defer reg.saveMu.Unlock()
	doc := sessionStateDoc{Version: 1}
	reg.mu.Lock()
	for _, s := range reg.m { // a deleted session has left reg.m
		s.mu.Lock()
		doc.Sessions = append(doc.Sessions, savedSession{Session: api.Session{ID: s.id, Env: maps.Clone(s.env), Cwd: s.initCwd,
			CommandTimeoutMs: s.timeout.Milliseconds(), CreatedAt: s.createdAt}, Unset: slices.Sorted(maps.Keys(s.unset))})
		s.mu.Unlock()
	}
	reg.mu.Unlock()
	slices.SortFunc(doc.Sessions, func(a, b savedSession) int { return strings.Compare(a.ID, b.ID) })
	b, err := json.Marshal(doc)
	if err == nil {
		err = writeSynced(reg.cfg.StateDir, sessionStateFile, b)
	}
	if err != nil {
		reg.cfg.Log.Warn("session settings not saved", "err", err)
	}
}

// writeSynced replaces dir/name with b, atomically, and syncs it and dir.
func writeSynced(dir, name string, b []byte) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, "."+name+"-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // after the rename, nothing to remove
	_, err = tmp.Write(b)
	if err = errors.Join(err, tmp.Sync(), tmp.Close()); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), filepath.Join(dir, name)); err != nil {
		return err
	}
	core.SyncDir(dir)
	return nil
}
