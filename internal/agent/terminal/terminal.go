// Package terminal is the agent's web terminals (GET /v1/terminal): a shell on a PTY, in a session's
// directory and environment, reached over WebSocket connections. A
// terminal is named by its session and its terminalId; connections that
// name a running terminal join it (they first get the last
// api.TerminalReplayBytes of its output), so a client reconnects, and
// several watch and type at once. A terminal whose shell exited is removed
// once every connection got the exit message; one that has no connection
// for detachedTimeout has its shell killed.
package terminal

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/coder/websocket"
	"github.com/creack/pty"
	"golang.org/x/sys/unix"

	"github.com/sandboxd/sandboxd/api"
	"github.com/sandboxd/sandboxd/internal/agent/core"
	"github.com/sandboxd/sandboxd/internal/agent/session"
	"github.com/sandboxd/sandboxd/internal/agentapi"
	"github.com/sandboxd/sandboxd/internal/errdefs"
)

// Flow control. Output goes at the pace of the slowest viewer, as a
// terminal over ssh would, in a window of outputWindow bytes; a viewer
// that holds it up for viewerStall is dropped (it may reconnect and get the
// replay). See outLog. Input goes at the pace of the shell: a connection's
// keys that wait viewerStall for the PTY are dropped (the client gets an
// error message), so the connection is read again and its end noticed even
// when the shell never reads.
const (
	outputWindow = 1 << 20
	viewerStall  = 10 * time.Second
)

// maxOutputMessage bounds the output sent in one WebSocket message.
const maxOutputMessage = 256 << 10

// viewerWriteTimeout bounds one write to a connection.
const viewerWriteTimeout = 30 * time.Second

// Service is the agent's terminals.
type Service struct {
	reaper   *core.Reaper
	sessions *session.Registry // a terminal runs in a session's directory and environment

	mu sync.Mutex
	m  map[termKey]*terminal // guarded by mu

	// The terminals' durations, set by New; tests shorten them before
	// the first terminal starts.
	detachedTimeout time.Duration // how long a terminal without connections lives
	stall           time.Duration // how long a viewer may hold output, or the shell input, up
	exitDrain       time.Duration // how long output is still read after the shell exited
}

// New returns the terminal service.
func New(reaper *core.Reaper, sessions *session.Registry) *Service {
	return &Service{reaper: reaper, sessions: sessions, m: map[termKey]*terminal{},
		detachedTimeout: api.TerminalDetachedTimeout, stall: viewerStall, exitDrain: exitDrain}
}

// KillSession ends the terminals of session sid (which is being deleted)
// and all their shells started.
func (ts *Service) KillSession(sid string) {
	ts.mu.Lock()
	var kill []*terminal
	for k, t := range ts.m {
		if k.session == sid {
			kill = append(kill, t)
		}
	}
	ts.mu.Unlock()
	for _, t := range kill {
		t.grp.Kill()
	}
}

// Routes adds the terminal's call to mux.
func (ts *Service) Routes(mux *http.ServeMux) {
	mux.HandleFunc("GET /v1/terminal", ts.handleTerminal)
}

type termKey struct{ session, id string }

// terminal is one shell on a PTY and the connections watching it.
type terminal struct {
	key   termKey
	shell string
	pid   int
	pty   *os.File    // the master side; closed once the shell exited and output was read
	tty   *os.File    // the shell's side, kept to resize the PTY; closed once the shell exited; guarded by mu
	grp   *core.Group // the shell and all it starts
	stall time.Duration
	// out is the PTY's output: readOutput appends, each connection's
	// writer sends it from its cursor.
	out *outLog
	// input carries keystrokes from the connections to writeInput, the
	// one goroutine that writes to the PTY (a write blocks while the
	// shell takes no input; a connection that ends must not wait for it).
	input chan []byte
	// closed is closed once the PTY is (the shell exited): writeInput
	// ends and input is no longer taken.
	closed chan struct{}

	// exitMsg is the exit message: set once before out is closed, read
	// by writers after out reported its end.
	exitMsg []byte

	mu      sync.Mutex
	cols    int         // guarded by mu
	rows    int         // guarded by mu
	viewers int         // connections; guarded by mu
	idle    *time.Timer // kills the shell when it fires; runs while there is no viewer; guarded by mu
	ended   bool        // the shell exited; guarded by mu
}

func (ts *Service) handleTerminal(w http.ResponseWriter, r *http.Request) {
	t, p, reconnected, err := ts.getOrStart(r)
	if err != nil {
		core.WriteError(w, err)
		return
	}
	conn, err := websocket.Accept(w, r, &websocket.AcceptOptions{
		// The daemon checked the caller's bearer token and rewrote Host;
		// there are no cookies for a cross-origin page to ride on.
		InsecureSkipVerify: true,
	})
	if err != nil {
		return // without viewers, t's idle countdown runs
	}
	conn.SetReadLimit(1 << 20)
	t.serve(r.Context(), ts, conn, p, reconnected)
}

// getOrStart checks a terminal request and returns the running terminal
// it names (and true), or starts it.
func (ts *Service) getOrStart(r *http.Request) (*terminal, terminalParams, bool, error) {
	if !agentapi.IsUpgrade(r.Header, "websocket") {
		return nil, terminalParams{}, false, &errdefs.CodedError{Code: api.CodeUpgradeRequired, Kind: errdefs.ErrInvalidArgument,
			Message: "the terminal is a WebSocket: send an Upgrade: websocket request"}
	}
	p, err := parseTerminalQuery(r.URL.Query())
	if err != nil {
		return nil, p, false, err
	}
	s, err := ts.sessions.ForRequest(r, p.sessionID)
	if err != nil {
		return nil, p, false, err
	}
	key := termKey{session: s.ID(), id: p.terminalID}
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if t := ts.m[key]; t != nil {
		return t, p, true, nil
	}
	if len(ts.m) >= api.MaxTerminals {
		return nil, p, false, fmt.Errorf("%w: %d terminals run at most in a sandbox; close one (exit its shell)", errdefs.ErrResourceExhausted, api.MaxTerminals)
	}
	t, err := ts.startTerminal(s, p, key)
	if err == nil {
		ts.m[key] = t
	}
	return t, p, false, err
}

// startTerminal starts the shell of a new terminal on a new PTY, in the
// session's directory and environment.
func (ts *Service) startTerminal(s *session.Session, p terminalParams, key termKey) (*terminal, error) {
	shell := p.shell
	if shell == "" {
		shell = "/bin/bash"
		if _, err := os.Stat(shell); err != nil {
			shell = "/bin/sh"
		}
	}
	if fi, err := os.Stat(shell); err != nil || !fi.Mode().IsRegular() || fi.Mode()&0o111 == 0 {
		return nil, fmt.Errorf("%w: shell %q is not an executable file", errdefs.ErrInvalidArgument, shell)
	}
	info := s.Info()
	if fi, err := os.Stat(info.Cwd); err != nil || !fi.IsDir() {
		return nil, fmt.Errorf("%w: the session's directory %q is not a directory", errdefs.ErrInvalidArgument, info.Cwd)
	}
	cols, rows := cmp.Or(p.cols, 80), cmp.Or(p.rows, 24)
	env := core.MergeEnv(core.MergeEnv(s.BaseEnv(), map[string]string{"TERM": "xterm-256color"}), info.Env)
	grp, err := ts.reaper.Cgroups().New("term", nil)
	if err != nil {
		return nil, err
	}
	master, tty, err := openPTY()
	if err != nil {
		grp.Remove()
		return nil, err
	}
	fail := func(err error) (*terminal, error) {
		master.Close()
		tty.Close()
		grp.Remove()
		return nil, err
	}
	if err := pty.Setsize(tty, &pty.Winsize{Cols: uint16(cols), Rows: uint16(rows)}); err != nil {
		return fail(fmt.Errorf("set the pty's size: %w", err))
	}
	proc, exited, err := ts.reaper.Start(grp, shell, []string{shell}, &os.ProcAttr{
		Dir: info.Cwd, Env: env, Files: []*os.File{tty, tty, tty},
		// A session of its own, with the PTY as its controlling terminal
		// (Ctty is the child's descriptor 0).
		Sys: &unix.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0},
	})
	if err != nil {
		return fail(core.StartError(err))
	}
	t := &terminal{key: key, shell: shell, pid: proc.Pid, pty: master, tty: tty, grp: grp, stall: ts.stall,
		out: newOutLog(outputWindow, ts.stall), cols: cols, rows: rows,
		input: make(chan []byte), closed: make(chan struct{})}
	t.idle = time.AfterFunc(ts.detachedTimeout, func() {
		t.mu.Lock()
		abandoned := !t.ended && t.viewers == 0
		t.mu.Unlock()
		if abandoned {
			t.grp.Kill() // the shell and what it started; its exit is then handled as any other
		}
	})
	readDone := make(chan struct{})
	go t.readOutput(readDone)
	go t.writeInput()
	go t.supervise(ts, exited, readDone)
	return t, nil
}

// readOutput appends the PTY's output to t.out until the PTY has no
// writer left (EIO) or its read deadline passes.
func (t *terminal) readOutput(done chan<- struct{}) {
	defer close(done)
	buf := make([]byte, 32<<10)
	for {
		n, err := t.pty.Read(buf)
		if n > 0 {
			t.out.append(buf[:n])
		}
		if err != nil {
			return
		}
	}
}

// exitDrain bounds how long output is still read after the shell exited:
// a background job that kept the PTY open must not hold the exit message.
const exitDrain = 200 * time.Millisecond

// supervise waits for the shell to exit, lets the output drain, then ends
// the output (each viewer gets the exit message after it) and removes the
// terminal.
func (t *terminal) supervise(ts *Service, exited <-chan unix.WaitStatus, readDone <-chan struct{}) {
	ws := <-exited
	t.mu.Lock()
	t.tty.Close() // the PTY's output ends once what the shell left running is gone too
	t.mu.Unlock()
	select {
	case <-readDone:
	case <-time.After(ts.exitDrain):
		_ = t.pty.SetReadDeadline(time.Now())
		<-readDone
	}
	t.pty.Close() // also ends a write of writeInput's
	close(t.closed)
	t.grp.Remove() // once what the shell left running is gone
	code := core.ExitCode(ws)
	msg := api.TerminalMessage{Type: api.TerminalExit, ExitCode: &code}
	if ws.Signaled() {
		msg.Signal = unix.SignalName(ws.Signal())
	}

	ts.mu.Lock()
	if ts.m[t.key] == t {
		delete(ts.m, t.key)
	}
	ts.mu.Unlock()
	t.exitMsg, _ = json.Marshal(msg)
	t.mu.Lock()
	t.ended = true
	t.idle.Stop()
	t.mu.Unlock()
	t.out.close() // the writers send what is left, then the exit message
}

// serve runs one connection: the ready message, the replay, then live
// output out and keystrokes and resizes in, until the shell exits or the
// connection ends.
func (t *terminal) serve(ctx context.Context, ts *Service, conn *websocket.Conn, p terminalParams, reconnected bool) {
	defer conn.CloseNow()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if reconnected && p.cols > 0 && p.rows > 0 {
		t.resize(p.cols, p.rows) // the newest connection's size wins
	}

	c, replay := t.out.join(api.TerminalReplayBytes)
	defer t.out.leave(c)
	t.mu.Lock()
	ready := api.TerminalMessage{Type: api.TerminalReady, TerminalID: t.key.id, SessionID: t.key.session,
		Shell: t.shell, Pid: t.pid, Cols: t.cols, Rows: t.rows, Reconnected: reconnected, ReplayBytes: replay}
	t.viewers++
	t.idle.Stop()
	t.mu.Unlock()
	defer func() {
		t.mu.Lock()
		if t.viewers--; t.viewers == 0 && !t.ended {
			t.idle.Reset(ts.detachedTimeout)
		}
		t.mu.Unlock()
	}()

	readyMsg, _ := json.Marshal(ready)
	var writer sync.WaitGroup
	writer.Go(func() {
		defer cancel() // a writer that stopped ends the reader too
		t.writeOutput(ctx, conn, c, readyMsg)
	})
	t.readInput(ctx, conn)
	cancel()
	writer.Wait()
}

// msgConn is what a viewer's writer needs of its connection (a
// *websocket.Conn).
type msgConn interface {
	Write(ctx context.Context, typ websocket.MessageType, p []byte) error
	Close(code websocket.StatusCode, reason string) error
}

// writeOutput sends conn the ready message, then the output from c on,
// then the exit message, and closes the connection. Each output message
// holds whatever lay between c and the log's published end (up to
// maxOutputMessage; see outLog for when output is published). It returns
// early if c is dropped (the connection is closed with 1008), a write
// fails, or ctx ends.
func (t *terminal) writeOutput(ctx context.Context, conn msgConn, c *cursor, ready []byte) {
	write := func(typ websocket.MessageType, data []byte) bool {
		// A client that takes no data at all for this long is gone
		// (the write's timeout closes the connection).
		wctx, cancel := context.WithTimeout(ctx, viewerWriteTimeout)
		defer cancel()
		return conn.Write(wctx, typ, data) == nil
	}
	if !write(websocket.MessageText, ready) {
		return
	}
	var buf []byte
	for {
		data, err := t.out.next(ctx, c, buf, maxOutputMessage)
		switch {
		case err == io.EOF:
			if write(websocket.MessageText, t.exitMsg) {
				_ = conn.Close(websocket.StatusNormalClosure, "the shell exited")
			}
			return
		case err == errDropped:
			_ = conn.Close(websocket.StatusPolicyViolation, "took no output for too long; reconnect to get the replay")
			return
		case err != nil:
			return
		}
		if !write(websocket.MessageBinary, data) {
			return
		}
		t.out.sent(c, len(data))
		buf = data
	}
}

// readInput passes the connection's binary frames to the PTY and applies
// its resize messages, until the connection ends.
func (t *terminal) readInput(ctx context.Context, conn *websocket.Conn) {
	for {
		typ, data, err := conn.Read(ctx)
		if err != nil {
			return
		}
		if typ == websocket.MessageBinary {
			if !t.sendInput(ctx, data) && ctx.Err() == nil {
				err = fmt.Errorf("%d bytes of input dropped: the shell read no input for %s", len(data), t.stall)
			}
		} else {
			var m api.TerminalMessage
			if m, err = parseClientMessage(data); err == nil {
				t.resize(m.Cols, m.Rows)
			}
		}
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			b, _ := json.Marshal(api.TerminalMessage{Type: api.TerminalError, Message: err.Error()})
			if conn.Write(ctx, websocket.MessageText, b) != nil {
				return
			}
		}
	}
}

// sendInput hands data to writeInput. It returns false if ctx ended or the
// PTY took no input for t.stall; data is then dropped. Keys typed after
// the shell exited are dropped silently: the exit message is on its way.
func (t *terminal) sendInput(ctx context.Context, data []byte) bool {
	select {
	case t.input <- data:
		return true
	case <-t.closed:
		return true
	case <-ctx.Done():
		return false
	case <-time.After(t.stall):
		return false
	}
}

// writeInput writes the connections' keystrokes to the PTY, in the order
// they were taken, until the PTY is closed. Input that the PTY refuses
// is dropped, as a terminal drops keys typed after its shell exited.
func (t *terminal) writeInput() {
	for {
		select {
		case <-t.closed:
			return
		case data := <-t.input:
			_, _ = t.pty.Write(data)
		}
	}
}

// resize sets the PTY's size (the kernel sends the shell SIGWINCH).
func (t *terminal) resize(cols, rows int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.ended {
		return
	}
	if err := pty.Setsize(t.tty, &pty.Winsize{Cols: uint16(cols), Rows: uint16(rows)}); err == nil {
		t.cols, t.rows = cols, rows
	}
}

// openPTY opens a PTY pair. The master is made non-blocking and handed to
// Go's poller, so that reads take deadlines and Close ends a blocked read
// (pty.Open's file was put in blocking mode by its ioctls, through Fd).
func openPTY() (master, tty *os.File, err error) {
	m, tty, err := pty.Open()
	if err != nil {
		return nil, nil, fmt.Errorf("open a pty: %w", err)
	}
	defer m.Close()
	fd, err := unix.FcntlInt(m.Fd(), unix.F_DUPFD_CLOEXEC, 0)
	if err == nil {
		err = unix.SetNonblock(fd, true)
		if err != nil {
			unix.Close(fd)
		}
	}
	if err != nil {
		tty.Close()
		return nil, nil, fmt.Errorf("open a pty: %w", err)
	}
	return os.NewFile(uintptr(fd), "/dev/ptmx"), tty, nil
}
