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

// exec returns the handler of an exec route: it checks the request and
// hands it to the agent at agentPath.
func (s *server) exec(agentPath string) func(w http.ResponseWriter, r *http.Request, id string) {
	return func(w http.ResponseWriter, r *http.Request, id string) {
		began := time.Now()
		var req api.ExecRequest
		if !s.decode(w, r, &req, false) {
			return
		}
		if req.SessionID == "" {
			req.SessionID = r.Header.Get(api.HeaderSessionID)
		}
		if err := validateExec(&req); err != nil {
			s.error(w, r, err)
			return
		}
		// Strings and maps of strings: Marshal cannot fail.
		body, _ := json.Marshal(agentapi.ExecRequest{ExecRequest: req, MaxOutputBytes: s.cfg.MaxOutputBytes})
		status := s.proxy(w, r, id, agentPath, body)
		if m := s.cfg.Metrics; m != nil {
			outcome := "ok"
			if status == 0 || status >= 300 {
				outcome = "error"
			}
			m.ExecTotal.WithLabelValues(outcome).Inc()
			m.ExecSeconds.Observe(time.Since(began).Seconds())
		}
	}
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
	return nil
}
