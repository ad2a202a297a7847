package server

import (
	"net/http"

	"github.com/sandboxd/sandboxd/api"
)

func (s *server) createSandbox(w http.ResponseWriter, r *http.Request, id string) {
	var req api.CreateSandboxRequest
	if !s.decode(w, r, &req, true) {
		return
	}
	sb, created, err := s.mgr.Create(r.Context(), id, req)
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	s.reply(w, r, status, sb, err)
}

func (s *server) getSandbox(w http.ResponseWriter, r *http.Request, id string) {
	sb, err := s.mgr.Get(r.Context(), id)
	s.reply(w, r, http.StatusOK, sb, err)
}

func (s *server) listSandboxes(w http.ResponseWriter, r *http.Request) {
	labels, err := labelFilter(r)
	if err != nil {
		s.error(w, r, err)
		return
	}
	list, err := s.mgr.List(r.Context(), labels)
	s.reply(w, r, http.StatusOK, api.SandboxList{Sandboxes: list, Count: len(list)}, err)
}

func (s *server) updateSandbox(w http.ResponseWriter, r *http.Request, id string) {
	var req api.UpdateSandboxRequest
	if !s.decode(w, r, &req, false) {
		return
	}
	sb, err := s.mgr.Update(r.Context(), id, req)
	s.reply(w, r, http.StatusOK, sb, err)
}

func (s *server) destroySandbox(w http.ResponseWriter, r *http.Request, id string) {
	s.reply(w, r, http.StatusNoContent, nil, s.mgr.Destroy(r.Context(), id))
}
