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

// path returns the API path of the sandbox followed by suffix. IDs that
// cannot stand as one URL path segment are refused with ErrValidation; the
// daemon checks the rest of the ID rules.
func (t *target) path(suffix string) (string, error) {
	if err := checkSegment("sandbox", t.sandboxID); err != nil {
		return "", err
	}
	return "/v1/sandboxes/" + url.PathEscape(t.sandboxID) + suffix, nil
}

// do sends a request to the sandbox's path followed by suffix, as
// [Client.do] does.
func (t *target) do(ctx context.Context, method, suffix string, query url.Values, in, out any) error {
	p, err := t.path(suffix)
	if err != nil {
		return err
	}
	return t.c.do(ctx, method, p, query, in, out)
}

// doRetry is do for calls that change nothing (GETs, waits): it retries them
// while the sandbox is unavailable, as Exec does.
func (t *target) doRetry(ctx context.Context, method, suffix string, query url.Values, in, out any) error {
	return retryUnavailable(ctx, func() error { return t.do(ctx, method, suffix, query, in, out) })
}

// openStream sends a request for a Server-Sent Events stream and returns the
// open response, checked to be one. It is never retried: a stream that
// started has had effects. header adds to the request's headers (such as
// Last-Event-ID); query, if not empty, is its query.
func (t *target) openStream(ctx context.Context, method, suffix string, query url.Values, header http.Header, in any) (*http.Response, error) {
	p, err := t.path(suffix)
	if err != nil {
		return nil, err
	}
	h := http.Header{"Accept": {"text/event-stream"}}
	for k, v := range header {
		h[k] = v
	}
	resp, err := t.c.send(ctx, method, p, query, h, in)
	if err != nil {
		return nil, err
	}
	if ct := resp.Header.Get("Content-Type"); !isEventStream(ct) {
		resp.Body.Close()
		return nil, fmt.Errorf("want an event stream, got Content-Type %q", ct)
	}
	return resp, nil
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
