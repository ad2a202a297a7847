package sandbox

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/coder/websocket"

	"github.com/sandboxd/sandboxd/api"
)

// terminalServer answers the terminal route with handler, after checking
// the token.
func terminalServer(t *testing.T, handler func(w http.ResponseWriter, r *http.Request)) *Client {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer tok" {
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = io.WriteString(w, `{"code":"UNAUTHORIZED","message":"no","httpStatus":401}`)
			return
		}
		handler(w, r)
	}))
	t.Cleanup(srv.Close)
	c, err := NewClient(Options{URL: srv.URL, Token: "tok"})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func sendJSON(ctx context.Context, t *testing.T, conn *websocket.Conn, m api.TerminalMessage) {
	b, _ := json.Marshal(m)
	if err := conn.Write(ctx, websocket.MessageText, b); err != nil {
		t.Error(err)
	}
}

func TestTerminalHandshakeErrors(t *testing.T) {
	for _, tc := range []struct {
		status int
		body   string
		want   error
	}{
		{426, `{"code":"UPGRADE_REQUIRED","message":"x","httpStatus":426}`, ErrUpgradeRequired},
		{429, `{"code":"RESOURCE_EXHAUSTED","message":"16 terminals","httpStatus":429}`, ErrResourceExhausted},
		{404, `{"code":"SESSION_NOT_FOUND","message":"x","httpStatus":404}`, ErrSessionNotFound},
	} {
		c := terminalServer(t, func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(tc.status)
			_, _ = io.WriteString(w, tc.body)
		})
		if _, err := c.Get("demo").Terminal(t.Context(), TerminalOptions{}); !errors.Is(err, tc.want) {
			t.Errorf("status %d: %v, want %v", tc.status, err, tc.want)
		}
	}
	c := terminalServer(t, nil)
	bad, _ := NewClient(Options{URL: c.baseURL, Token: "wrong"})
	if _, err := bad.Get("demo").Terminal(t.Context(), TerminalOptions{}); !errors.Is(err, ErrUnauthorized) {
		t.Errorf("wrong token: %v", err)
	}
}

func TestTerminalConversation(t *testing.T) {
	got := make(chan string, 10)
	c := terminalServer(t, func(w http.ResponseWriter, r *http.Request) {
		got <- r.URL.Path + "?" + r.URL.RawQuery
		conn, err := websocket.Accept(w, r, nil)
		if err != nil {
			t.Error(err)
			return
		}
		defer conn.CloseNow()
		ctx := r.Context()
		sendJSON(ctx, t, conn, api.TerminalMessage{Type: api.TerminalReady, TerminalID: "t1", Pid: 42, ReplayBytes: 3})
		_ = conn.Write(ctx, websocket.MessageBinary, []byte("old"))
		for range 2 { // a resize and some keys
			typ, data, err := conn.Read(ctx)
			if err != nil {
				t.Error(err)
				return
			}
			got <- map[websocket.MessageType]string{websocket.MessageText: "text ", websocket.MessageBinary: "binary "}[typ] + string(data)
		}
		_ = conn.Write(ctx, websocket.MessageBinary, []byte("new"))
		sendJSON(ctx, t, conn, api.TerminalMessage{Type: api.TerminalExit, ExitCode: new(3)})
		conn.Close(websocket.StatusNormalClosure, "the shell exited")
	})
	sess := c.Get("demo").GetSession("s1")
	term, err := sess.Terminal(t.Context(), TerminalOptions{TerminalID: "t1", Cols: 100, Rows: 30, Shell: "/bin/sh"})
	if err != nil {
		t.Fatal(err)
	}
	defer term.Close()
	if q := <-got; q != "/v1/sandboxes/demo/terminal?cols=100&rows=30&sessionId=s1&shell=%2Fbin%2Fsh&terminalId=t1" {
		t.Errorf("request: %s", q)
	}
	if r := term.Ready(); r.TerminalID != "t1" || r.Pid != 42 || r.ReplayBytes != 3 {
		t.Errorf("ready: %+v", r)
	}
	if err := term.Resize(t.Context(), 120, 40); err != nil {
		t.Fatal(err)
	}
	if _, err := term.Write([]byte("ls\n")); err != nil {
		t.Fatal(err)
	}
	if m := <-got; m != `text {"type":"resize","cols":120,"rows":40}` {
		t.Errorf("resize sent as %s", m)
	}
	if m := <-got; m != "binary ls\n" {
		t.Errorf("keys sent as %q", m)
	}
	if _, ok := term.ExitCode(); ok {
		t.Error("exit code before the exit")
	}
	out, err := io.ReadAll(term) // ReadAll treats io.EOF as the end
	if err != nil || string(out) != "oldnew" {
		t.Errorf("output %q, %v", out, err)
	}
	if code, ok := term.ExitCode(); !ok || code != 3 {
		t.Errorf("exit code %d %v, want 3", code, ok)
	}
	if err := term.Resize(t.Context(), 0, 1); !errors.Is(err, ErrValidation) {
		t.Errorf("resize to 0 cols: %v", err)
	}
	// A session handle names its session; an option naming another is refused.
	if _, err := sess.Terminal(t.Context(), TerminalOptions{SessionID: "other"}); !errors.Is(err, ErrValidation) {
		t.Errorf("conflicting session: %v", err)
	}
}

func TestTerminalCutBeforeExit(t *testing.T) {
	c := terminalServer(t, func(w http.ResponseWriter, r *http.Request) {
		conn, err := websocket.Accept(w, r, nil)
		if err != nil {
			t.Error(err)
			return
		}
		sendJSON(r.Context(), t, conn, api.TerminalMessage{Type: api.TerminalReady})
		_ = conn.Write(r.Context(), websocket.MessageBinary, []byte("partial"))
		conn.CloseNow() // no exit message, no close handshake
	})
	term, err := c.Get("demo").Terminal(t.Context(), TerminalOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer term.Close()
	out, err := io.ReadAll(term)
	if err == nil || string(out) != "partial" {
		t.Errorf("a cut connection: %q, %v; want the output and an error", out, err)
	}
	if _, ok := term.ExitCode(); ok {
		t.Error("an exit code without an exit")
	}
}
