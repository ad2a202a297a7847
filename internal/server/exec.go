package server

import (
	"fmt"
	"net/http"
	"path"
	"strings"
	"time"

	"github.com/sandboxd/sandboxd/api"
	"github.com/sandboxd/sandboxd/internal/agent"
	"github.com/sandboxd/sandboxd/internal/errdefs"
	"github.com/sandboxd/sandboxd/internal/manager"
)

// defaultSession names the one session every sandbox has. Sessions of
// their own come with the sessions API.
const defaultSession = "default"

func (s *server) exec(w http.ResponseWriter, r *http.Request, id string) {
	began := time.Now()
	var req api.ExecRequest
	if err := decode(w, r, &req, false); err != nil {
		s.error(w, r, err)
		return
	}
	if req.SessionID == "" {
		req.SessionID = r.Header.Get("X-Session-Id")
	}
	if err := validateExec(&req); err != nil {
		s.error(w, r, err)
		return
	}
	c, err := s.mgr.Agent(r.Context(), id)
	if err != nil {
		s.error(w, r, err)
		return
	}
	res, err := c.Exec(r.Context(), agent.ExecRequest{ExecRequest: req, MaxOutputBytes: s.cfg.MaxOutputBytes})
	if err != nil {
		err = s.mgr.CallFailed(r.Context(), id, c, err)
	}
	if m := s.cfg.Metrics; m != nil {
		outcome := "error"
		switch {
		case err == nil && res.ExitCode == 0:
			outcome = "ok"
		case err == nil:
			outcome = "nonzero"
		}
		m.ExecTotal.WithLabelValues(outcome).Inc()
		m.ExecSeconds.Observe(time.Since(began).Seconds())
	}
	if err != nil {
		s.error(w, r, err)
		return
	}
	res.SessionID = req.SessionID
	writeJSON(w, http.StatusOK, res)
}

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
	switch req.SessionID {
	case "":
		req.SessionID = defaultSession
	case defaultSession:
	default:
		return &errdefs.CodedError{Code: api.CodeSessionNotFound, Kind: errdefs.ErrNotFound,
			Message: fmt.Sprintf("session %q not found", req.SessionID)}
	}
	return nil
}
