package sandbox

import (
	"context"
	"fmt"
	"net/http"

	"github.com/sandboxd/sandboxd/api"
)

// Sandbox is a handle on one sandbox, obtained from [Client.Get] or
// [Client.Create]. It holds only the client and the ID, so it is cheap,
// safe for concurrent use, and never stale: every method asks the daemon.
//
// Methods that act inside the sandbox (Exec, StartProcess and the like)
// create it with default options if it does not exist yet; Info, Update and
// Destroy do not. Commands run in the sandbox's default session unless their
// options name another; [Sandbox.GetSession] gives a handle whose commands
// all run in one session.
type Sandbox struct {
	target
}

// ID returns the sandbox's ID.
func (s *Sandbox) ID() string { return s.sandboxID }

// Info returns the sandbox's description. It returns ErrSandboxNotFound if
// the sandbox does not exist; it does not create it.
func (s *Sandbox) Info(ctx context.Context) (*api.Sandbox, error) {
	var info api.Sandbox
	if err := s.do(ctx, http.MethodGet, "", nil, nil, &info); err != nil {
		return nil, fmt.Errorf("get sandbox %s: %w", s.sandboxID, err)
	}
	return &info, nil
}

// Update changes the sandbox's settings; nil fields of req are left as they
// are. It returns the sandbox's new description.
func (s *Sandbox) Update(ctx context.Context, req api.UpdateSandboxRequest) (*api.Sandbox, error) {
	var info api.Sandbox
	if err := s.do(ctx, http.MethodPatch, "", nil, req, &info); err != nil {
		return nil, fmt.Errorf("update sandbox %s: %w", s.sandboxID, err)
	}
	return &info, nil
}

// Destroy deletes the sandbox with everything in it: processes, files,
// sessions, code contexts and exposed ports. Destroying a sandbox that was
// already destroyed succeeds. The handle stays usable: its next call that acts
// inside the sandbox creates a fresh one.
func (s *Sandbox) Destroy(ctx context.Context) error {
	if err := s.do(ctx, http.MethodDelete, "", nil, nil, nil); err != nil {
		return fmt.Errorf("destroy sandbox %s: %w", s.sandboxID, err)
	}
	return nil
}
