package sandbox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/coder/websocket"

	"github.com/sandboxd/sandboxd/api"
)

// TerminalOptions configure [Sandbox.Terminal].
type TerminalOptions struct {
	// SessionID picks the session whose directory and environment the
	// shell starts with ("" for the handle's session, or the default one).
	SessionID string
	// TerminalID names the terminal within its session; "" means
	// api.DefaultTerminalID. Connecting again with the same session and ID
	// joins the running terminal (reconnect, or a second viewer).
	TerminalID string
	// Cols and Rows are the terminal's size (0: 80x24 for a new terminal,
	// unchanged for a running one).
	Cols, Rows int
	// Shell is the absolute path of the shell to run in a new terminal
	// ("": /bin/bash, else /bin/sh). It is ignored when joining.
	Shell string
}

// Terminal is a connection to a web terminal: a shell on a PTY in the
// sandbox. Read returns the terminal's output (first the replay of its
// latest output when it joined a running terminal), Write types, Resize
// changes the size. Read and Write may be called concurrently with each
// other (Read from one goroutine at a time).
//
// When the shell exits, Read returns io.EOF after the last output and
// ExitCode reports the status. Close leaves the shell running (for
// api.TerminalDetachedTimeout), so another connection can join it.
type Terminal struct {
	conn   *websocket.Conn
	ctx    context.Context // ends when Close is called
	cancel context.CancelFunc
	ready  api.TerminalMessage
	closed atomic.Bool         // Close was called
	exit   atomic.Pointer[int] // the shell's exit code, once the exit message came

	rmu     sync.Mutex // serializes Read; guards pending and readErr
	pending []byte     // output not yet returned by Read
	readErr error      // what ended the stream
}

// Terminal opens a WebSocket to a terminal of the target's session (see
// [TerminalOptions]). It returns once the daemon said the terminal is
// ready. Errors from the handshake are typed: ErrResourceExhausted past the
// sandbox's terminal limit, ErrSessionNotFound, ErrValidation,
// ErrUnauthorized.
func (t *target) Terminal(ctx context.Context, opts TerminalOptions) (*Terminal, error) {
	sid, err := t.session(opts.SessionID)
	if err != nil {
		return nil, err
	}
	p, err := t.path("/terminal")
	if err != nil {
		return nil, err
	}
	q := url.Values{}
	for k, v := range map[string]string{"sessionId": sid, "terminalId": opts.TerminalID, "shell": opts.Shell} {
		if v != "" {
			q.Set(k, v)
		}
	}
	for k, v := range map[string]int{"cols": opts.Cols, "rows": opts.Rows} {
		if v > 0 {
			q.Set(k, strconv.Itoa(v))
		}
	}
	u := t.c.baseURL + p
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	h := http.Header{}
	if t.c.token != "" {
		h.Set("Authorization", "Bearer "+t.c.token)
	}
	op := "open terminal in " + t.describe()
	conn, resp, err := websocket.Dial(ctx, u, &websocket.DialOptions{HTTPClient: t.c.http, HTTPHeader: h})
	if err != nil && resp != nil && resp.StatusCode != http.StatusSwitchingProtocols {
		err = errorFromResponse(resp)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	conn.SetReadLimit(4 << 20)
	tctx, cancel := context.WithCancel(context.Background())
	term := &Terminal{conn: conn, ctx: tctx, cancel: cancel}
	// The first message says which terminal this is; ctx bounds the wait.
	stop := context.AfterFunc(ctx, cancel)
	typ, data, err := conn.Read(tctx)
	stop()
	if err == nil && typ == websocket.MessageText {
		err = json.Unmarshal(data, &term.ready)
	}
	if err == nil && term.ready.Type != api.TerminalReady {
		err = fmt.Errorf("want a ready message first, got %q", data)
	}
	if err != nil {
		cancel()
		conn.CloseNow()
		if ctx.Err() != nil {
			err = ctx.Err()
		}
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	return term, nil
}

// Ready returns the server's ready message: the terminal's ID, session,
// shell, pid, size, whether the connection joined a running terminal, and
// how many bytes of replayed output Read returns first.
func (t *Terminal) Ready() api.TerminalMessage { return t.ready }

// Read reads the terminal's output. It returns io.EOF once the shell exited
// and all its output was read (see ExitCode), and an error if the
// connection ended otherwise.
func (t *Terminal) Read(p []byte) (int, error) {
	t.rmu.Lock()
	defer t.rmu.Unlock()
	for len(t.pending) == 0 && t.readErr == nil {
		typ, data, err := t.conn.Read(t.ctx)
		var m api.TerminalMessage
		switch {
		case err != nil:
			t.readErr = t.streamEnd(err)
		case typ == websocket.MessageBinary:
			t.pending = data
		case json.Unmarshal(data, &m) == nil && m.Type == api.TerminalExit && m.ExitCode != nil:
			t.exit.Store(m.ExitCode)
		}
	}
	if len(t.pending) == 0 {
		return 0, t.readErr
	}
	n := copy(p, t.pending)
	t.pending = t.pending[n:]
	return n, nil
}

// streamEnd says why the stream ended: io.EOF after the exit message,
// ErrTerminalClosed after Close, the connection's error otherwise.
func (t *Terminal) streamEnd(err error) error {
	if _, ok := t.ExitCode(); ok {
		return io.EOF
	}
	if t.closed.Load() {
		return ErrTerminalClosed
	}
	if websocket.CloseStatus(err) != -1 {
		return fmt.Errorf("terminal connection closed before the shell exited: %w", err)
	}
	return fmt.Errorf("terminal connection lost: %w", err)
}

// ErrTerminalClosed is returned by a Terminal's methods after Close.
var ErrTerminalClosed = errors.New("terminal connection closed")

// Write sends p to the terminal, as typed keys.
func (t *Terminal) Write(p []byte) (int, error) {
	if err := t.conn.Write(t.ctx, websocket.MessageBinary, p); err != nil {
		if t.closed.Load() {
			return 0, ErrTerminalClosed
		}
		return 0, fmt.Errorf("write to terminal: %w", err)
	}
	return len(p), nil
}

// Resize sets the terminal's size (for every viewer; the shell gets
// SIGWINCH). Cols and rows are 1 to api.MaxTerminalSize.
func (t *Terminal) Resize(ctx context.Context, cols, rows int) error {
	if cols < 1 || rows < 1 || cols > api.MaxTerminalSize || rows > api.MaxTerminalSize {
		return &Error{Code: api.CodeValidationFailed, Message: fmt.Sprintf("terminal size %dx%d: want 1-%d each", cols, rows, api.MaxTerminalSize)}
	}
	b, _ := json.Marshal(api.TerminalMessage{Type: api.TerminalResize, Cols: cols, Rows: rows})
	// Bounded by ctx and by Close. (A write that ctx cuts short closes
	// the connection: a half-written frame cannot be taken back.)
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(t.ctx, cancel)
	defer stop()
	if err := t.conn.Write(wctx, websocket.MessageText, b); err != nil {
		if t.closed.Load() {
			return ErrTerminalClosed
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("resize terminal: %w", err)
	}
	return nil
}

// ExitCode returns the shell's exit status (128+N if signal N ended it),
// once Read has returned io.EOF. ok is false before the shell exited.
func (t *Terminal) ExitCode() (code int, ok bool) {
	if p := t.exit.Load(); p != nil {
		return *p, true
	}
	return 0, false
}

// Close closes the connection. The shell keeps running unless it exited,
// so the terminal can be joined again (TerminalOptions.TerminalID).
func (t *Terminal) Close() error {
	t.closed.Store(true)
	err := t.conn.Close(websocket.StatusNormalClosure, "")
	t.cancel()
	if err != nil && !errors.Is(err, net.ErrClosed) && websocket.CloseStatus(err) == -1 {
		return fmt.Errorf("close terminal: %w", err)
	}
	return nil
}
