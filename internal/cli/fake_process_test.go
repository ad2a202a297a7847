package cli

import (
	"cmp"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"time"

	"github.com/sandboxd/sandboxd/api"
)

// routeProcesses serves the process calls from f.processes. Each process
// wrote "a\x00b\n" to stdout and "e" to stderr.
func (f *fakeDaemon) routeProcesses(mux *http.ServeMux) {
	mux.HandleFunc("POST /v1/sandboxes/{id}/processes", func(w http.ResponseWriter, r *http.Request) {
		var req api.StartProcessRequest
		json.NewDecoder(r.Body).Decode(&req)
		f.lastStart = req
		id := cmp.Or(req.ProcessID, fmt.Sprintf("proc-%d", len(f.processes)+1))
		if _, ok := f.processes[id]; ok {
			writeError(w, api.CodeProcessExists, "process "+id+" already exists", 409)
			return
		}
		p := api.Process{ID: id, Pid: 100 + len(f.processes), Command: req.Command, Status: api.ProcessRunning,
			StartTime: time.Now().Add(-90 * time.Second), SessionID: cmp.Or(req.SessionID, api.DefaultSessionID)}
		f.processes[id] = p
		json.NewEncoder(w).Encode(p)
	})
	mux.HandleFunc("GET /v1/sandboxes/{id}/processes", func(w http.ResponseWriter, r *http.Request) {
		list := api.ProcessList{Processes: []api.Process{}}
		for _, id := range slices.Sorted(maps.Keys(f.processes)) {
			if p := f.processes[id]; r.URL.Query().Get("status") == "" || r.URL.Query().Get("status") == p.Status {
				list.Processes = append(list.Processes, p)
			}
		}
		list.Count = len(list.Processes)
		json.NewEncoder(w).Encode(list)
	})
	mux.HandleFunc("DELETE /v1/sandboxes/{id}/processes", func(w http.ResponseWriter, r *http.Request) {
		n := 0
		for id, p := range f.processes {
			if p.Status == api.ProcessRunning {
				f.processes[id] = killed(p)
				n++
			}
		}
		json.NewEncoder(w).Encode(api.KillAllResult{KilledCount: n})
	})
	mux.HandleFunc("DELETE /v1/sandboxes/{id}/processes/{pid}", f.withProcess(func(w http.ResponseWriter, r *http.Request, p api.Process) {
		f.lastKill = r.URL.Query().Get("signal")
		if p.Status == api.ProcessRunning {
			p = killed(p)
			f.processes[p.ID] = p
		}
		json.NewEncoder(w).Encode(p)
	}))
	mux.HandleFunc("GET /v1/sandboxes/{id}/processes/{pid}/logs", f.withProcess(func(w http.ResponseWriter, r *http.Request, p api.Process) {
		json.NewEncoder(w).Encode(api.ProcessLogs{ProcessID: p.ID, Stdout: base64.StdEncoding.EncodeToString([]byte("a\x00b\n")),
			StdoutEncoding: api.EncodingBase64, Stderr: "e"})
	}))
	mux.HandleFunc("GET /v1/sandboxes/{id}/processes/{pid}/logs/stream", f.withProcess(func(w http.ResponseWriter, r *http.Request, p api.Process) {
		sse := newSSEWriter(w)
		sse.send(api.StreamEvent{Type: api.EventStdout, Data: base64.StdEncoding.EncodeToString([]byte("a\x00")), Encoding: api.EncodingBase64})
		sse.send(api.StreamEvent{Type: api.EventStderr, Data: "e"})
		sse.send(api.StreamEvent{Type: api.EventStdout, Data: "b\n"})
		if p.ID == "broken" {
			return
		}
		sse.send(api.StreamEvent{Type: api.EventExit, ExitCode: new(0), Status: api.ProcessCompleted})
	}))
}

// withProcess runs h with the process the path names, or answers 404.
func (f *fakeDaemon) withProcess(h func(http.ResponseWriter, *http.Request, api.Process)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		p, ok := f.processes[r.PathValue("pid")]
		if !ok {
			writeError(w, api.CodeProcessNotFound, "process "+r.PathValue("pid")+" not found", 404)
			return
		}
		h(w, r, p)
	}
}

func killed(p api.Process) api.Process {
	p.Status, p.ExitCode = api.ProcessKilled, new(143)
	return p
}

// routeSessions serves the session calls from f.sessions.
func (f *fakeDaemon) routeSessions(mux *http.ServeMux) {
	mux.HandleFunc("POST /v1/sandboxes/{id}/sessions", func(w http.ResponseWriter, r *http.Request) {
		var req api.CreateSessionRequest
		json.NewDecoder(r.Body).Decode(&req)
		id := cmp.Or(req.ID, fmt.Sprintf("session-%d", len(f.sessions)))
		if _, ok := f.sessions[id]; ok {
			writeError(w, api.CodeSessionExists, "session "+id+" already exists", 409)
			return
		}
		s := api.Session{ID: id, Cwd: cmp.Or(req.Cwd, "/workspace"), Env: req.Env, CommandTimeoutMs: req.CommandTimeoutMs,
			CreatedAt: time.Now().Add(-2 * time.Minute)}
		f.sessions[id] = s
		w.WriteHeader(http.StatusCreated)
		json.NewEncoder(w).Encode(s)
	})
	mux.HandleFunc("GET /v1/sandboxes/{id}/sessions", func(w http.ResponseWriter, r *http.Request) {
		list := api.SessionList{Sessions: []api.Session{}}
		for _, id := range slices.Sorted(maps.Keys(f.sessions)) {
			list.Sessions = append(list.Sessions, f.sessions[id])
		}
		list.Count = len(list.Sessions)
		json.NewEncoder(w).Encode(list)
	})
	mux.HandleFunc("DELETE /v1/sandboxes/{id}/sessions/{sid}", func(w http.ResponseWriter, r *http.Request) {
		sid := r.PathValue("sid")
		switch _, ok := f.sessions[sid]; {
		case sid == api.DefaultSessionID:
			writeError(w, api.CodeValidationFailed, "the default session cannot be deleted", 400)
		case !ok:
			writeError(w, api.CodeSessionNotFound, "session "+sid+" not found", 404)
		default:
			delete(f.sessions, sid)
			w.WriteHeader(http.StatusNoContent)
		}
	})
}
