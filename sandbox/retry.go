package sandbox

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/sandboxd/sandboxd/api"
)

// Bounds on retrying calls that found the sandbox unavailable.
const (
	maxRetries   = 3                      // retries after the first attempt
	minRetryWait = 100 * time.Millisecond // doubled on each retry
	maxRetryWait = 10 * time.Second       // cap on a daemon-requested wait
)

// retryUnavailable calls call, and calls it again, up to maxRetries times,
// while it fails with SANDBOX_UNAVAILABLE. Before each retry it waits for the
// longer of the daemon's Retry-After and a short doubling backoff, capped at
// maxRetryWait. If ctx ends while waiting, the last error is returned joined
// with ctx's error.
func retryUnavailable(ctx context.Context, call func() error) error {
	for attempt := 0; ; attempt++ {
		err := call()
		var e *Error
		if attempt == maxRetries || !errors.As(err, &e) || e.Code != api.CodeSandboxUnavailable {
			return err
		}
		wait := min(max(e.RetryAfter, minRetryWait<<attempt), maxRetryWait)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%w: %w", err, ctx.Err())
		case <-t.C:
		}
	}
}
