package sandbox

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/sandboxd/sandboxd/api"
)

// target is what commands, processes and environment changes act on: a
// sandbox, and a session in it. [Sandbox] and [Session] both embed a target,
// so they offer the same methods for these (Exec, ExecStream, StartProcess,
// SetEnvVars...) and differ only in the session the calls name. A
// Sandbox's target has no session: its calls use the sandbox's default
// session, or the one named in per-call options.
type target struct {
	c         *Client
	sandboxID string // lowercased
	sessionID string // "" on a Sandbox
}

// describe names the target in error messages: "sandbox demo" or
// "sandbox demo session s1".
func (t *target) describe() string {
	if t.sessionID == "" {
		return "sandbox " + t.sandboxID
	}
	return "sandbox " + t.sandboxID + " session " + t.sessionID
}

// session resolves the session a call runs in from the target's and the
// per-call option's: either may be empty, but they may not differ.
func (t *target) session(option string) (string, error) {
	if t.sessionID != "" && option != "" && option != t.sessionID {
		return "", &Error{Code: api.CodeValidationFailed,
			Message: fmt.Sprintf("options name session %q on a handle of session %q", option, t.sessionID)}
	}
	if t.sessionID != "" {
		return t.sessionID, nil
	}
	return option, nil
}

// sessionHeader returns request headers naming the target's session, for
// calls without a JSON body to carry it.
func (t *target) sessionHeader() http.Header {
	h := http.Header{}
	if t.sessionID != "" {
		h.Set(api.HeaderSessionID, t.sessionID)
	}
	return h
}

// path returns the API path of the sandbox followed by suffix. IDs that
// cannot stand as one URL path segment are refused with ErrValidation; the
// daemon checks the rest of the ID rules.
func (t *target) path(suffix string) (string, error) {
	if err := checkSegment("sandbox", t.sandboxID); err != nil {
		return "", err
	}
	return "/v1/sandboxes/" + url.PathEscape(t.sandboxID) + suffix, nil
}

// Whether [call] retries a call while the sandbox is unavailable: calls
// that change nothing (reads, waits) are retried, and Exec, which the
// daemon refuses before it runs anything; the others are sent once.
const (
	once    = false
	retried = true
)

// call sends one request to the target's path followed by suffix, as
// [Client.do] does, and returns the response decoded into a new Out (use
// [none] to drop it). Errors are wrapped with op.
func call[Out any](ctx context.Context, t *target, op string, retry bool, method, suffix string, query url.Values, in any) (*Out, error) {
	out := new(Out)
	p, err := t.path(suffix)
	send := func() error { return t.c.do(ctx, method, p, query, nil, in, out) }
	switch {
	case err != nil:
	case retry:
		err = retryUnavailable(ctx, send)
	default:
		err = send()
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	return out, nil
}

// processCall is call for the process id: suffix follows the process's
// path.
func processCall[Out any](ctx context.Context, t *target, op string, retry bool, method, id, suffix string, query url.Values, in any) (*Out, error) {
	if err := checkSegment("process", id); err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	return call[Out](ctx, t, op, retry, method, "/processes/"+url.PathEscape(id)+suffix, query, in)
}

// checkSegment refuses IDs that cannot stand as one URL path segment: empty,
// "." and "..".
func checkSegment(kind, id string) error {
	if id == "" || id == "." || id == ".." {
		return &Error{Code: api.CodeValidationFailed, Message: fmt.Sprintf("invalid %s id %q", kind, id)}
	}
	return nil
}

// millis converts d to whole milliseconds, rounded up, for the wire's *Ms
// fields; a d that is not positive gives 0 (the daemon's default).
func millis(d time.Duration) int64 {
	if d <= 0 {
		return 0
	}
	return int64((d + time.Millisecond - 1) / time.Millisecond)
}
