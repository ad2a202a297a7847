package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/sandboxd/sandboxd/api"
	"github.com/sandboxd/sandboxd/internal/agent/core"
	"github.com/sandboxd/sandboxd/internal/agentapi"
	"github.com/sandboxd/sandboxd/internal/errdefs"
)

// tunnelDialTimeout bounds the connect to the service inside the sandbox
// (on loopback it is refused or accepted at once; a full backlog waits).
const tunnelDialTimeout = 10 * time.Second

// handleTunnel serves GET /v1/tunnel?port=N with "Connection: Upgrade" and
// "Upgrade: tcp": it connects to 127.0.0.1:N (or [::1]:N) inside the
// sandbox's network namespace, answers 101 and then copies bytes both ways until both sides
// have finished, passing each side's end of writing (half-close) on to the
// other. This is how the daemon reaches a service in a sandbox that has no
// published ports (preview URLs).
//
// If nothing accepts the connection, the answer is 502 PORT_NOT_LISTENING,
// so the daemon can tell "not listening" from "agent gone".
func handleTunnel(w http.ResponseWriter, r *http.Request) {
	port, err := strconv.Atoi(r.URL.Query().Get("port"))
	if err != nil || port < 1 || port > 65535 {
		core.WriteError(w, &errdefs.CodedError{Code: api.CodeInvalidPort, Message: fmt.Sprintf("tunnel: port %q: want 1-65535", r.URL.Query().Get("port")), Kind: errdefs.ErrInvalidArgument})
		return
	}
	if !agentapi.IsUpgrade(r.Header, agentapi.TunnelProtocol) {
		w.Header().Set("Upgrade", agentapi.TunnelProtocol)
		w.Header().Set("Connection", "Upgrade")
		core.WriteJSON(w, http.StatusUpgradeRequired, api.Error{Code: api.CodeValidationFailed,
			Message: "tunnel: want Connection: Upgrade and Upgrade: " + agentapi.TunnelProtocol, HTTPStatus: http.StatusUpgradeRequired})
		return
	}
	up, err := dialLoopback(r.Context(), port)
	if err != nil {
		core.WriteError(w, &errdefs.CodedError{Code: api.CodePortNotListening,
			Message: fmt.Sprintf("nothing is listening on port %d inside the sandbox: %v", port, tunnelDialCause(err))})
		return
	}
	defer up.Close()
	down, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		slog.Warn("tunnel: hijack", "err", err)
		return
	}
	defer down.Close()
	_ = down.SetDeadline(time.Time{}) // the server's read deadlines do not apply to the tunnel
	if _, err := brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: " + agentapi.TunnelProtocol + "\r\n\r\n"); err != nil || brw.Flush() != nil {
		return
	}
	// Bytes the daemon sent after its request, already buffered, go
	// first; then the connection itself.
	var fromDaemon io.Reader = down
	if n := brw.Reader.Buffered(); n > 0 {
		fromDaemon = io.MultiReader(io.LimitReader(brw.Reader, int64(n)), down)
	}
	splice(down, up, fromDaemon)
}

// dialLoopback connects to port on the sandbox's loopback: 127.0.0.1, or
// ::1 if nothing listens there (a server bound to "localhost" may have
// picked ::1 alone, as Node does).
func dialLoopback(ctx context.Context, port int) (net.Conn, error) {
	d := net.Dialer{Timeout: tunnelDialTimeout}
	p := strconv.Itoa(port)
	c, err := d.DialContext(ctx, "tcp", net.JoinHostPort("127.0.0.1", p))
	if err != nil && errors.Is(err, syscall.ECONNREFUSED) {
		if c6, err6 := d.DialContext(ctx, "tcp", net.JoinHostPort("::1", p)); err6 == nil {
			return c6, nil
		}
	}
	return c, err
}

// splice copies from (down's side, read through fromDown) to up and from up
// to down, each until EOF, then ends writing on the destination
// (half-close). It returns when both directions are done; if one
// direction fails, both connections are closed so the other ends too.
func splice(down, up net.Conn, fromDown io.Reader) {
	var once sync.Once
	pipe := func(dst net.Conn, src io.Reader) {
		_, err := io.CopyBuffer(dst, src, make([]byte, 64<<10))
		cw, ok := dst.(interface{ CloseWrite() error })
		if err != nil && !errors.Is(err, net.ErrClosed) || !ok || cw.CloseWrite() != nil {
			once.Do(func() { down.Close(); up.Close() })
		}
	}
	var wg sync.WaitGroup
	wg.Go(func() { pipe(up, fromDown) })
	wg.Go(func() { pipe(down, up) })
	wg.Wait()
}

// tunnelDialCause shortens a dial error to its cause ("connection refused").
func tunnelDialCause(err error) error {
	var oe *net.OpError // every dial error is one; a timeout's is "i/o timeout"
	if errors.As(err, &oe) && oe.Err != nil {
		return oe.Err
	}
	return err
}
