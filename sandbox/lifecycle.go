package sandbox

import (
	"context"
	"fmt"
	"time"

	"github.com/sandboxd/sandboxd/api"
)

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
