package sandbox

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"
)

var (
	unavailable = response{
		status: 503,
		header: http.Header{"Retry-After": {"0"}},
		body:   `{"code":"SANDBOX_UNAVAILABLE","message":"sandbox demo is starting","httpStatus":503}`,
	}
	execOK = response{status: 200, body: `{"success":true,"stdout":"ok"}`}
)

func TestExecRetry(t *testing.T) {
	internal := response{status: 500, body: `{"code":"INTERNAL_ERROR","message":"boom","httpStatus":500}`}
	tests := []struct {
		name      string
		responses []response
		wantErr   error
		wantCalls int
	}{
		{"succeeds after two 503s", []response{unavailable, unavailable, execOK}, nil, 3},
		{"gives up after the retries", []response{unavailable}, ErrUnavailable, 1 + maxRetries},
		{"other errors are not retried", []response{internal, execOK}, ErrInternal, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, f := newFake(t, tc.responses...)
			res, err := c.Get("demo").Exec(t.Context(), "true", nil)
			if !errors.Is(err, tc.wantErr) || (err == nil && res.Stdout != "ok") {
				t.Errorf("Exec = %+v, %v; want error %v", res, err, tc.wantErr)
			}
			if n := len(f.seen()); n != tc.wantCalls {
				t.Errorf("daemon got %d calls, want %d", n, tc.wantCalls)
			}
		})
	}
}

func TestExecRetryHonorsRetryAfterAndContext(t *testing.T) {
	slow := unavailable
	slow.header = http.Header{"Retry-After": {"60"}}
	c, f := newFake(t, slow, execOK)
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := c.Get("demo").Exec(ctx, "true", nil)
	if !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, ErrUnavailable) {
		t.Errorf("err = %v, want both the deadline and ErrUnavailable", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Exec took %v after its context ended", d)
	}
	if n := len(f.seen()); n != 1 {
		t.Errorf("daemon got %d calls, want 1 (Retry-After: 60 outlasts the context)", n)
	}
}
