package server

import (
	"encoding/json"
	"fmt"
	"net/http"
	"path"
	"strings"
	"time"

	"github.com/sandboxd/sandboxd/api"
	"github.com/sandboxd/sandboxd/internal/agentapi"
	"github.com/sandboxd/sandboxd/internal/errdefs"
	"github.com/sandboxd/sandboxd/internal/manager"
)

func (s *server) exec(w http.ResponseWriter, r *http.Request, id string) {
	s.execVia(w, r, id, "/v1/exec")
}

func (s *server) execStream(w http.ResponseWriter, r *http.Request, id string) {
	s.execVia(w, r, id, "/v1/exec/stream")
}

// execVia checks an exec request and hands it to the agent.
func (s *server) execVia(w http.ResponseWriter, r *http.Request, id, agentPath string) {
	began := time.Now()
	var req api.ExecRequest
	if err := decode(w, r, &req, false); err != nil {
		s.error(w, r, err)
		return
	}
	if req.SessionID == "" {
		req.SessionID = r.Header.Get(api.HeaderSessionID)
	}
	if err := validateExec(&req); err != nil {
		s.error(w, r, err)
		return
	}
	body, err := json.Marshal(agentapi.ExecRequest{ExecRequest: req, MaxOutputBytes: s.cfg.MaxOutputBytes})
	if err != nil {
		s.error(w, r, err)
		return
	}
	rec := &statusRecorder{ResponseWriter: w}
	s.proxy(rec, r, id, agentPath, body)
	if m := s.cfg.Metrics; m != nil {
		outcome := "ok"
		if rec.status >= 300 {
			outcome = "error"
		}
		m.ExecTotal.WithLabelValues(outcome).Inc()
		m.ExecSeconds.Observe(time.Since(began).Seconds())
	}
}

// statusRecorder notes the status a handler sent.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach Flush.
func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

func validateExec(req *api.ExecRequest) error {
	if req.Command == "" {
		return fmt.Errorf("%w: command is required", errdefs.ErrInvalidArgument)
	}
	if strings.ContainsRune(req.Command, 0) || strings.ContainsRune(req.Cwd, 0) {
		return fmt.Errorf("%w: command and cwd must not contain NUL bytes", errdefs.ErrInvalidArgument)
	}
	if req.Cwd != "" && !path.IsAbs(req.Cwd) {
		return fmt.Errorf("%w: cwd %q must be absolute", errdefs.ErrInvalidArgument, req.Cwd)
	}
	if err := manager.ValidateEnv(req.Env); err != nil {
		return err
	}
	if req.TimeoutMs < 0 {
		return fmt.Errorf("%w: timeoutMs must not be negative", errdefs.ErrInvalidArgument)
	}
	return nil
}
