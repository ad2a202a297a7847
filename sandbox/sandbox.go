package sandbox

import (
	"context"
	"fmt"
	"net/http"
	"time"

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
	return call[api.Sandbox](ctx, &s.target, "get sandbox "+s.sandboxID, once, http.MethodGet, "", nil, nil)
}

// Update changes the sandbox's settings; nil fields of req are left as they
// are. It returns the sandbox's new description.
func (s *Sandbox) Update(ctx context.Context, req api.UpdateSandboxRequest) (*api.Sandbox, error) {
	return call[api.Sandbox](ctx, &s.target, "update sandbox "+s.sandboxID, once, http.MethodPatch, "", nil, req)
}

// Destroy deletes the sandbox with everything in it: processes, files,
// sessions, code contexts and exposed ports. Destroying a sandbox that was
// already destroyed succeeds. The handle stays usable: its next call that acts
// inside the sandbox creates a fresh one.
func (s *Sandbox) Destroy(ctx context.Context) error {
	_, err := call[none](ctx, &s.target, "destroy sandbox "+s.sandboxID, once, http.MethodDelete, "", nil, nil)
	return err
}

// SetKeepAlive turns sleeping off (true) or on again (false) for the
// sandbox: a sandbox kept alive never sleeps, however long it is idle. It
// returns ErrSandboxNotFound if the sandbox does not exist; it does not
// create it. Sandbox.Info shows the settings.
func (s *Sandbox) SetKeepAlive(ctx context.Context, keepAlive bool) error {
	if _, err := s.Update(ctx, api.UpdateSandboxRequest{KeepAlive: &keepAlive}); err != nil {
		return fmt.Errorf("set keepAlive: %w", err)
	}
	return nil
}

// SetSleepAfter sets how long the sandbox may be idle (no call, no open
// stream or terminal) before it sleeps: its container stops, its files
// stay, and the next call wakes it. d is at least a second; the daemon's
// default is 10 minutes. It returns ErrSandboxNotFound if the sandbox does
// not exist; it does not create it.
func (s *Sandbox) SetSleepAfter(ctx context.Context, d time.Duration) error {
	v := d.String()
	if _, err := s.Update(ctx, api.UpdateSandboxRequest{SleepAfter: &v}); err != nil {
		return fmt.Errorf("set sleepAfter: %w", err)
	}
	return nil
}
