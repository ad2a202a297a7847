package server

import (
	"fmt"
	"net/http"
	"slices"
	"strconv"

	"github.com/sandboxd/sandboxd/api"
	"github.com/sandboxd/sandboxd/internal/errdefs"
	"github.com/sandboxd/sandboxd/internal/manager"
	"github.com/sandboxd/sandboxd/internal/store"
)

// maxPortName bounds an exposed port's name.
const maxPortName = 128

// exposePort serves POST /v1/sandboxes/{id}/ports. Exposed ports are the
// daemon's business (its store and its preview proxy), not the agent's.
func (s *server) exposePort(w http.ResponseWriter, r *http.Request, id string) {
	var req api.ExposePortRequest
	if !s.decode(w, r, &req, false) {
		return
	}
	if err := s.checkExpose(req); err != nil {
		s.error(w, r, err)
		return
	}
	p, err := s.mgr.ExposePort(r.Context(), id, req.Port, req.Name, req.Token)
	if err != nil {
		s.error(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, s.exposed(r, p))
}

// listPorts serves GET /v1/sandboxes/{id}/ports.
func (s *server) listPorts(w http.ResponseWriter, r *http.Request, id string) {
	ports, err := s.mgr.ExposedPorts(r.Context(), id)
	if err != nil {
		s.error(w, r, err)
		return
	}
	out := api.ExposedPortList{Ports: make([]api.ExposedPort, 0, len(ports)), Count: len(ports)}
	for _, p := range ports {
		out.Ports = append(out.Ports, s.exposed(r, p))
	}
	writeJSON(w, http.StatusOK, out)
}

// unexposePort serves DELETE /v1/sandboxes/{id}/ports/{port}: idempotent.
func (s *server) unexposePort(w http.ResponseWriter, r *http.Request, id string) {
	port, err := strconv.Atoi(r.PathValue("port"))
	if err != nil || port < 1 || port > 65535 {
		s.error(w, r, invalidPort(fmt.Sprintf("port %q: want a number in 1-65535", r.PathValue("port"))))
		return
	}
	s.reply(w, r, http.StatusNoContent, nil, s.mgr.UnexposePort(r.Context(), id, port))
}

// checkExpose refuses ports outside 1024-65535 and the ports the system
// itself uses (Config.ReservedPorts), tokens that are not [a-z0-9_]{1,16}
// and names over maxPortName bytes.
func (s *server) checkExpose(req api.ExposePortRequest) error {
	switch {
	case req.Port < 1024 || req.Port > 65535:
		return invalidPort(fmt.Sprintf("port %d: want 1024-65535", req.Port))
	case slices.Contains(s.cfg.ReservedPorts, req.Port):
		return invalidPort(fmt.Sprintf("port %d is reserved: the daemon itself serves on it", req.Port))
	case req.Token != "" && !manager.ValidToken(req.Token):
		return fmt.Errorf("%w: token %q: want 1-16 characters of [a-z0-9_]", errdefs.ErrInvalidArgument, req.Token)
	case len(req.Name) > maxPortName:
		return fmt.Errorf("%w: port name over %d bytes", errdefs.ErrInvalidArgument, maxPortName)
	}
	return nil
}

func invalidPort(msg string) error {
	return &errdefs.CodedError{Code: api.CodeInvalidPort, Message: msg, Kind: errdefs.ErrInvalidArgument}
}

// exposed describes p, with its preview URL as seen by the client of r.
func (s *server) exposed(r *http.Request, p store.Port) api.ExposedPort {
	return api.ExposedPort{Port: p.Port, Name: p.Name, Token: p.Token,
		ExposedAt: s.preview.URL(r, p.Port, p.SandboxID, p.Token)}
}
