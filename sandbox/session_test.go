package sandbox

import (
	"context"
	"errors"
	"testing"

	"github.com/sandboxd/sandboxd/api"
)

const sessionJSON = `{"id":"s1","cwd":"/work","createdAt":"2026-11-25T12:00:00Z"}`

// TestSessionRequests checks what each session and environment call sends,
// and that a Session handle names its session in every call that runs
// something.
func TestSessionRequests(t *testing.T) {
	sess := func(c *Client) *Session { return c.Get("demo").GetSession("s1") }
	tests := []requestCase{{
		name: "create session",
		call: func(ctx context.Context, c *Client) error {
			s, err := c.Get("demo").CreateSession(ctx, api.CreateSessionRequest{Cwd: "/work", Env: map[string]string{"A": "1"}})
			if err == nil && (s.ID() != "s1" || s.Sandbox().ID() != "demo") {
				t.Errorf("handle on session %q of %q, want s1 of demo", s.ID(), s.Sandbox().ID())
			}
			return err
		},
		resp: response{status: 201, body: sessionJSON},
		want: request{method: "POST", path: "/v1/sandboxes/demo/sessions", body: `{"env":{"A":"1"},"cwd":"/work"}`},
	}, {
		name: "list sessions",
		call: func(ctx context.Context, c *Client) error {
			list, err := c.Get("demo").ListSessions(ctx)
			if err == nil && (len(list) != 1 || list[0].Cwd != "/work") {
				t.Errorf("list = %+v", list)
			}
			return err
		},
		resp: response{status: 200, body: `{"sessions":[` + sessionJSON + `],"count":1}`},
		want: request{method: "GET", path: "/v1/sandboxes/demo/sessions"},
	}, {
		name: "delete session escapes its id",
		call: func(ctx context.Context, c *Client) error { return c.Get("demo").DeleteSession(ctx, "a/b") },
		resp: response{status: 204},
		want: request{method: "DELETE", path: "/v1/sandboxes/demo/sessions/a%2Fb"},
	}, {
		name: "session exec",
		call: func(ctx context.Context, c *Client) error { _, err := sess(c).Exec(ctx, "pwd", nil); return err },
		resp: execOK,
		want: request{method: "POST", path: "/v1/sandboxes/demo/exec", body: `{"command":"pwd","sessionId":"s1"}`},
	}, {
		name: "session exec with its own id in the options",
		call: func(ctx context.Context, c *Client) error {
			_, err := sess(c).Exec(ctx, "pwd", &ExecOptions{SessionID: "s1"})
			return err
		},
		resp: execOK,
		want: request{method: "POST", path: "/v1/sandboxes/demo/exec", body: `{"command":"pwd","sessionId":"s1"}`},
	}, {
		name: "session exec stream",
		call: func(ctx context.Context, c *Client) error {
			st, err := sess(c).ExecStream(ctx, "pwd", nil)
			if err != nil {
				return err
			}
			_, err = st.Wait()
			return err
		},
		resp: sseResponse(completeEv),
		want: request{method: "POST", path: "/v1/sandboxes/demo/exec/stream", body: `{"command":"pwd","sessionId":"s1"}`},
	}, {
		name: "session start process",
		call: func(ctx context.Context, c *Client) error {
			_, err := sess(c).StartProcess(ctx, "sleep 9", nil)
			return err
		},
		resp: response{status: 200, body: processJSON},
		want: request{method: "POST", path: "/v1/sandboxes/demo/processes", body: `{"command":"sleep 9","sessionId":"s1"}`},
	}, {
		name: "session set env",
		call: func(ctx context.Context, c *Client) error {
			return sess(c).SetEnvVars(ctx, map[string]*string{"A": new("1"), "B": nil})
		},
		resp: response{status: 204},
		want: request{method: "POST", path: "/v1/sandboxes/demo/env", body: `{"envVars":{"A":"1","B":null},"sessionId":"s1"}`},
	}, {
		name: "sandbox set env names no session",
		call: func(ctx context.Context, c *Client) error { return c.Get("demo").SetEnvVars(ctx, nil) },
		resp: response{status: 200, body: `{}`},
		want: request{method: "POST", path: "/v1/sandboxes/demo/env", body: `{"envVars":{}}`},
	}}
	checkRequests(t, tests)
}

func TestSessionErrors(t *testing.T) {
	t.Run("options naming another session send nothing", func(t *testing.T) {
		c, f := newFake(t, execOK)
		s := c.Get("demo").GetSession("s1")
		_, err := s.Exec(t.Context(), "pwd", &ExecOptions{SessionID: "s2"})
		if !errors.Is(err, ErrValidation) {
			t.Errorf("Exec err = %v, want ErrValidation", err)
		}
		_, err = s.StartProcess(t.Context(), "pwd", &ProcessOptions{SessionID: "s2"})
		if !errors.Is(err, ErrValidation) {
			t.Errorf("StartProcess err = %v, want ErrValidation", err)
		}
		if n := len(f.seen()); n != 0 {
			t.Errorf("sent %d requests", n)
		}
	})
	t.Run("duplicate", func(t *testing.T) {
		c, _ := newFake(t, response{status: 409, body: `{"code":"SESSION_ALREADY_EXISTS","message":"session s1 exists","httpStatus":409}`})
		_, err := c.Get("demo").CreateSession(t.Context(), api.CreateSessionRequest{ID: "s1"})
		if !errors.Is(err, ErrSessionExists) {
			t.Errorf("err = %v, want ErrSessionExists", err)
		}
	})
	t.Run("default session cannot be deleted", func(t *testing.T) {
		c, _ := newFake(t, response{status: 400, body: `{"code":"VALIDATION_FAILED","message":"the default session cannot be deleted","httpStatus":400}`})
		err := c.Get("demo").DeleteSession(t.Context(), api.DefaultSessionID)
		if !errors.Is(err, ErrValidation) || err.Error() != "delete session default of sandbox demo: the default session cannot be deleted (VALIDATION_FAILED)" {
			t.Errorf("err = %v", err)
		}
	})
	t.Run("errors name the session", func(t *testing.T) {
		c, _ := newFake(t, response{status: 404, body: `{"code":"SESSION_NOT_FOUND","message":"no session s9","httpStatus":404}`})
		_, err := c.Get("demo").GetSession("s9").Exec(t.Context(), "true", nil)
		if !errors.Is(err, ErrSessionNotFound) || err.Error() != "exec sandbox demo session s9: no session s9 (SESSION_NOT_FOUND)" {
			t.Errorf("err = %v", err)
		}
	})
	t.Run("empty session id sends nothing", func(t *testing.T) {
		c, f := newFake(t, response{status: 204})
		if err := c.Get("demo").DeleteSession(t.Context(), ""); !errors.Is(err, ErrValidation) {
			t.Errorf("err = %v, want ErrValidation", err)
		}
		if n := len(f.seen()); n != 0 {
			t.Errorf("sent %d requests", n)
		}
	})
}
