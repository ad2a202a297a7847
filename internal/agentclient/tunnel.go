package agentclient

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/sandboxd/sandboxd/api"
	"github.com/sandboxd/sandboxd/internal/agentapi"
	"github.com/sandboxd/sandboxd/internal/errdefs"
)

// DialPort opens a TCP connection to port on the sandbox's loopback
// through the agent: an HTTP upgrade on the agent's socket (GET
// /v1/tunnel?port=N, "Upgrade: tcp") after which the connection carries
// the TCP stream both ways, half-close included. The sandbox needs no
// published ports and no address reachable from the host.
//
// Nothing listening on the port gives an error wrapping an
// *errdefs.CodedError with code PORT_NOT_LISTENING; an agent that cannot
// be reached, one wrapping errdefs.ErrUnavailable.
func (c *Client) DialPort(ctx context.Context, port int) (net.Conn, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", c.socket)
	if err != nil {
		return nil, fmt.Errorf("%w: agent: %v", errdefs.ErrUnavailable, err)
	}
	// The handshake is bounded by ctx; the tunnel itself is not.
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	tc, err := tunnelHandshake(conn, port)
	if !stop() {
		err = fmt.Errorf("tunnel to port %d: %w", port, context.Cause(ctx))
	}
	if err != nil {
		conn.Close()
		return nil, err
	}
	_ = conn.SetDeadline(time.Time{})
	return tc, nil
}

func tunnelHandshake(conn net.Conn, port int) (net.Conn, error) {
	req := "GET /v1/tunnel?port=" + strconv.Itoa(port) + " HTTP/1.1\r\nHost: agent\r\nConnection: Upgrade\r\nUpgrade: " + agentapi.TunnelProtocol + "\r\n\r\n"
	if _, err := io.WriteString(conn, req); err != nil {
		return nil, fmt.Errorf("%w: tunnel to port %d: %v", errdefs.ErrUnavailable, port, err)
	}
	br := bufio.NewReaderSize(conn, 4<<10)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return nil, fmt.Errorf("%w: tunnel to port %d: %v", errdefs.ErrUnavailable, port, err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		defer resp.Body.Close()
		var e api.Error
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		if json.Unmarshal(b, &e) != nil || e.Code == "" {
			e = api.Error{Code: api.CodeBadGateway, Message: fmt.Sprintf("tunnel to port %d: agent answered %s", port, resp.Status)}
		}
		e.HTTPStatus = api.HTTPStatus(e.Code)
		return nil, errdefs.FromWire(e)
	}
	if br.Buffered() == 0 {
		return conn, nil
	}
	return &bufferedConn{Conn: conn, r: br}, nil
}

// bufferedConn is a connection whose first bytes were read into r.
type bufferedConn struct {
	net.Conn
	r *bufio.Reader
}

func (b *bufferedConn) Read(p []byte) (int, error) { return b.r.Read(p) }

// CloseWrite ends writing, keeping reading open.
func (b *bufferedConn) CloseWrite() error { return b.Conn.(*net.UnixConn).CloseWrite() }

// portTransports holds a client's HTTP transport to ports in its sandbox,
// made on first use.
type portTransports struct {
	mu     sync.Mutex
	tr     *http.Transport
	closed bool // Close was called: keep no idle connections

	// dialer, once set (SetPortDialer), makes the transport's
	// connections instead of agent tunnels; the client owns it.
	dialer atomic.Pointer[portDialerBox]
}

type portDialerBox struct{ d PortDialer }

// PortDialer connects to a port on the sandbox's loopback without the
// agent (netns.Dialer: a socket made in the sandbox's network namespace).
type PortDialer interface {
	DialPort(ctx context.Context, port int) (net.Conn, error)
	Close() error
}

// SetPortDialer makes d the way PortTransport reaches ports from now on,
// instead of agent tunnels; the client closes d when it is closed. It
// reports false, and closes d, if the client has a dialer already or is
// closed.
func (c *Client) SetPortDialer(d PortDialer) bool {
	c.ports.mu.Lock()
	defer c.ports.mu.Unlock()
	if c.ports.closed || !c.ports.dialer.CompareAndSwap(nil, &portDialerBox{d}) {
		d.Close()
		return false
	}
	return true
}

// HasPortDialer reports whether SetPortDialer was called, successfully or
// not, or the client is closed: whether a caller need not try again.
func (c *Client) HasPortDialer() bool { return c.ports.dialer.Load() != nil }

// NoPortDialer records that ports are reached through agent tunnels, for
// good (a dialer could not be made): HasPortDialer reports true.
func (c *Client) NoPortDialer() { c.ports.dialer.CompareAndSwap(nil, &portDialerBox{}) }

// dialPort connects to port through the client's PortDialer if it has one,
// else through an agent tunnel (DialPort). A refused connection is the
// agent's 502 PORT_NOT_LISTENING either way.
func (c *Client) dialPort(ctx context.Context, port int) (net.Conn, error) {
	b := c.ports.dialer.Load()
	if b == nil || b.d == nil {
		return c.DialPort(ctx, port)
	}
	conn, err := b.d.DialPort(ctx, port)
	switch {
	case err == nil:
		return conn, nil
	case errors.Is(err, syscall.ECONNREFUSED):
		return nil, &errdefs.CodedError{Code: api.CodePortNotListening,
			Message: fmt.Sprintf("nothing is listening on port %d inside the sandbox: %v", port, syscall.ECONNREFUSED)}
	case ctx.Err() != nil:
		return nil, err
	default:
		// The namespace could not be used (the sandbox's init is gone,
		// a thread could not enter it): the agent tells.
		return c.DialPort(ctx, port)
	}
}

// PortTransport returns an HTTP transport whose connections reach ports
// inside the sandbox: a request to http://127.0.0.1:N/... reaches port N
// on the sandbox's loopback, through the client's PortDialer if it has
// one (SetPortDialer), else through agent tunnels (DialPort). Idle
// connections are kept for reuse, per port; Close drops them. Upgrades
// (WebSocket) work as with any http.Transport. A response head is bounded
// (maxPortHead), so a service cannot make the daemon buffer without end.
func (c *Client) PortTransport() http.RoundTripper {
	c.ports.mu.Lock()
	defer c.ports.mu.Unlock()
	if c.ports.tr == nil {
		c.ports.tr = &http.Transport{
			DialContext: func(ctx context.Context, _, addr string) (net.Conn, error) {
				ap, err := netip.ParseAddrPort(addr)
				if err != nil {
					return nil, fmt.Errorf("port address %q: %w", addr, err)
				}
				return c.dialPort(ctx, int(ap.Port()))
			},
			MaxIdleConnsPerHost:    64,
			IdleConnTimeout:        90 * time.Second,
			DisableCompression:     true, // bodies pass through as the service sent them
			DisableKeepAlives:      c.ports.closed,
			MaxResponseHeaderBytes: maxPortHead,
			ReadBufferSize:         64 << 10,
			WriteBufferSize:        64 << 10,
		}
	}
	return c.ports.tr
}

// maxPortHead bounds the head of a service's response. 1xx answers count
// towards it, unless the caller reads them as they come (ReverseProxy
// does, and passes each on: each is bounded alone then).
const maxPortHead = 1 << 20

// close drops idle connections; a transport made afterwards (by a
// request still holding the client) keeps none.
func (p *portTransports) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	if p.tr != nil {
		p.tr.CloseIdleConnections()
	}
	if b := p.dialer.Swap(&portDialerBox{}); b != nil && b.d != nil {
		b.d.Close()
	}
}
