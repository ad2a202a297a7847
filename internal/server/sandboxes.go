package server

import (
	"net/http"

	"github.com/sandboxd/sandboxd/api"
)

func (s *server) createSandbox(w http.ResponseWriter, r *http.Request, id string) {
	var req api.CreateSandboxRequest
	if err := decode(w, r, &req, true); err != nil {
		s.error(w, r, err)
		return
	}
	sb, created, err := s.mgr.Create(r.Context(), id, req)
	if err != nil {
		s.error(w, r, err)
		return
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	writeJSON(w, status, sb)
}

func (s *server) getSandbox(w http.ResponseWriter, r *http.Request, id string) {
	sb, err := s.mgr.Get(r.Context(), id)
	if err != nil {
		s.error(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, sb)
}

func (s *server) listSandboxes(w http.ResponseWriter, r *http.Request) {
	labels, err := labelFilter(r)
	if err != nil {
		s.error(w, r, err)
		return
	}
	list, err := s.mgr.List(r.Context(), labels)
	if err != nil {
		s.error(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, api.SandboxList{Sandboxes: list, Count: len(list)})
}

func (s *server) updateSandbox(w http.ResponseWriter, r *http.Request, id string) {
	var req api.UpdateSandboxRequest
	if err := decode(w, r, &req, false); err != nil {
		s.error(w, r, err)
		return
	}
	sb, err := s.mgr.Update(r.Context(), id, req)
	if err != nil {
		s.error(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, sb)
}

func (s *server) destroySandbox(w http.ResponseWriter, r *http.Request, id string) {
	if err := s.mgr.Destroy(r.Context(), id); err != nil {
		s.error(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
