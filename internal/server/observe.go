package server

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"

	"github.com/sandboxd/sandboxd/api"
)

// observe counts a call forwarded to an agent in sandboxd_operations_total
// (by operation: the route less its /v1/sandboxes/{id} prefix, and
// outcome) and, for an error answer of the agent, in
// sandboxd_api_errors_total by its code, as s.error does for the daemon's
// own. resp is nil if the agent could not be reached (s.error counts that
// one). An error body is small JSON: it is read here and handed on
// unchanged.
func (s *server) observe(r *http.Request, resp *http.Response) {
	m := s.cfg.Metrics
	if m == nil {
		return
	}
	op := strings.Replace(r.Pattern, " /v1/sandboxes/{id}", " ", 1)
	outcome := "ok"
	if resp == nil || resp.StatusCode >= 400 {
		outcome = "error"
	}
	m.OperationsTotal.WithLabelValues(op, outcome).Inc()
	if resp == nil || resp.StatusCode < 400 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		return
	}
	const maxErrorBody = 64 << 10
	head, err := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	resp.Body = struct {
		io.Reader
		io.Closer
	}{io.MultiReader(bytes.NewReader(head), resp.Body), resp.Body}
	if err != nil {
		return
	}
	var e api.Error
	if json.Unmarshal(head, &e) == nil && e.Code != "" {
		m.APIErrors.WithLabelValues(e.Code).Inc()
	}
}
