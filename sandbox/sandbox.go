package sandbox

import (
	"context"
	"fmt"
	"net/http"
	"net/url"

	"github.com/sandboxd/sandboxd/api"
)

// Sandbox is a handle on one sandbox, obtained from [Client.Get] or
// [Client.Create]. It holds only the client and the ID, so it is cheap,
// safe for concurrent use, and never stale: every method asks the daemon.
//
// Methods that act inside the sandbox (Exec and the like) create it with
// default options if it does not exist yet; Info, Update and Destroy do not.
type Sandbox struct {
	c  *Client
	id string
}

// ID returns the sandbox's ID.
func (s *Sandbox) ID() string { return s.id }

// Info returns the sandbox's description. It returns ErrSandboxNotFound if
// the sandbox does not exist; it does not create it.
func (s *Sandbox) Info(ctx context.Context) (*api.Sandbox, error) {
	var info api.Sandbox
	if err := s.do(ctx, http.MethodGet, "", nil, &info); err != nil {
		return nil, fmt.Errorf("get sandbox %s: %w", s.id, err)
	}
	return &info, nil
}

// Update changes the sandbox's settings; nil fields of req are left as they
// are. It returns the sandbox's new description.
func (s *Sandbox) Update(ctx context.Context, req api.UpdateSandboxRequest) (*api.Sandbox, error) {
	var info api.Sandbox
	if err := s.do(ctx, http.MethodPatch, "", req, &info); err != nil {
		return nil, fmt.Errorf("update sandbox %s: %w", s.id, err)
	}
	return &info, nil
}

// Destroy deletes the sandbox with everything in it: processes, files,
// sessions, code contexts and exposed ports. Destroying a sandbox that was
// already destroyed succeeds. The handle stays usable: its next call that acts
// inside the sandbox creates a fresh one.
func (s *Sandbox) Destroy(ctx context.Context) error {
	if err := s.do(ctx, http.MethodDelete, "", nil, nil); err != nil {
		return fmt.Errorf("destroy sandbox %s: %w", s.id, err)
	}
	return nil
}

// do sends a request to the sandbox's URL followed by suffix. IDs that cannot
// stand as one URL path segment are refused here with ErrValidation; the
// daemon checks the rest of the ID rules.
func (s *Sandbox) do(ctx context.Context, method, suffix string, in, out any) error {
	if s.id == "" || s.id == "." || s.id == ".." {
		return &Error{Code: api.CodeValidationFailed, Message: fmt.Sprintf("invalid sandbox id %q", s.id)}
	}
	return s.c.do(ctx, method, "/v1/sandboxes/"+url.PathEscape(s.id)+suffix, nil, in, out)
}
