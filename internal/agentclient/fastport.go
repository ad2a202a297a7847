package agentclient

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// fastTransport is PortTransport's round tripper. Simple requests (GET or
// HEAD, no body, no upgrade; most preview traffic) go over its own pool of
// keep-alive connections, written and read on the caller's goroutine:
// http.Transport spends two goroutines per connection and hands every
// request and response between them, which costs more CPU than the rest
// of the proxying. Everything else goes to the standard transport std.
type fastTransport struct {
	c   *Client
	std *http.Transport

	mu     sync.Mutex
	idle   map[int][]*fastConn // by port; the newest last
	closed bool
	reaper chan struct{} // closed by close: stops the idle reaper
}

// fastMaxIdle bounds the idle connections kept per port.
const fastMaxIdle = 64

// fastIdleTimeout is how long an idle connection is kept.
const fastIdleTimeout = 90 * time.Second

// fastMaxHead bounds a response's head (status line, headers and any 1xx
// before it): a service must not make the daemon buffer without end.
const fastMaxHead = 1 << 20

// fastMax1xx bounds the informational answers before the response.
const fastMax1xx = 5

type fastConn struct {
	nc     net.Conn
	lr     *limitReader // nc, as br reads it
	br     *bufio.Reader
	bw     *bufio.Writer
	port   int
	idleAt time.Time
}

func (t *fastTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if !fastSimple(req) {
		return t.std.RoundTrip(req)
	}
	_, p, err := net.SplitHostPort(req.URL.Host)
	if err != nil {
		return t.std.RoundTrip(req)
	}
	port, err := strconv.Atoi(p)
	if err != nil || port < 1 || port > 65535 {
		return t.std.RoundTrip(req)
	}
	return t.roundTrip(req.Context(), port, req, func(w *bufio.Writer) error { return req.Write(w) })
}

// PortRequest sends req, a GET or HEAD without a body, to port on the
// sandbox's loopback over a kept fast connection (as PortTransport does
// for simple requests) and returns the response, whose body must be read
// to its end or closed. writeHead writes the request's head (request
// line, headers, blank line; HTTP/1.1 and nothing that ends the
// connection) in place of req.Write: a caller that has the head's parts
// at hand skips building an outgoing request. req gives the method (a
// HEAD answer has no body) and becomes the response's Request; a
// req.Close request's connection is not kept.
func (c *Client) PortRequest(ctx context.Context, port int, req *http.Request, writeHead func(*bufio.Writer) error) (*http.Response, error) {
	if req.Method != http.MethodGet && req.Method != http.MethodHead {
		return nil, fmt.Errorf("fast port request: method %s", req.Method)
	}
	if port < 1 || port > 65535 {
		return nil, fmt.Errorf("fast port request: port %d", port)
	}
	return c.PortTransport().(*fastTransport).roundTrip(ctx, port, req, writeHead)
}

// roundTrip sends a simple request, whose head write writes, over a kept
// or new fast connection to port.
func (t *fastTransport) roundTrip(ctx context.Context, port int, req *http.Request, write func(*bufio.Writer) error) (*http.Response, error) {
	for {
		pc, reused := t.get(port)
		if pc == nil {
			nc, err := t.c.dialPort(ctx, port)
			if err != nil {
				return nil, err
			}
			lr := &limitReader{r: nc, n: math.MaxInt64}
			pc = &fastConn{nc: nc, lr: lr, br: bufio.NewReaderSize(lr, 16<<10), bw: bufio.NewWriterSize(nc, 4<<10), port: port}
		}
		resp, retry, err := t.exchange(ctx, pc, req, write, reused)
		if err == nil {
			return resp, nil
		}
		if !retry {
			return nil, err
		}
		// A kept connection the service had closed: again, on another.
	}
}

// fastSimple reports whether req can go over a fast connection: a GET or
// HEAD with no body, no upgrade and no expectations, to http://.
func fastSimple(req *http.Request) bool {
	if req.Method != http.MethodGet && req.Method != http.MethodHead {
		return false
	}
	if req.URL.Scheme != "http" || (req.Body != nil && req.Body != http.NoBody) || req.ContentLength != 0 {
		return false
	}
	if len(req.TransferEncoding) > 0 || req.Header.Get("Upgrade") != "" || req.Header.Get("Expect") != "" {
		return false
	}
	for _, v := range req.Header["Connection"] {
		if strings.Contains(strings.ToLower(v), "upgrade") {
			return false
		}
	}
	return true
}

// exchange sends req on pc and reads the response head. retry is set if
// pc was a kept connection that turned out closed before any answer (the
// request, a GET or HEAD, may be sent again).
func (t *fastTransport) exchange(ctx context.Context, pc *fastConn, req *http.Request, write func(*bufio.Writer) error, reused bool) (resp *http.Response, retry bool, err error) {
	stop := context.AfterFunc(ctx, func() { pc.nc.Close() })
	fail := func(err error, retry bool) (*http.Response, bool, error) {
		stop()
		pc.nc.Close()
		if ctx.Err() != nil {
			return nil, false, ctx.Err()
		}
		return nil, retry && reused, err
	}
	if err := write(pc.bw); err != nil {
		return fail(err, closedConn(err))
	}
	if err := pc.bw.Flush(); err != nil {
		return fail(err, closedConn(err))
	}
	if _, err := pc.br.Peek(1); err != nil {
		return fail(fmt.Errorf("read response: %w", err), closedConn(err))
	}
	pc.lr.n = fastMaxHead - int64(pc.br.Buffered())
	for n1xx := 0; ; n1xx++ {
		var fast bool
		if resp, fast = readResponseFast(pc.br, req); !fast {
			resp, err = http.ReadResponse(pc.br, req)
		}
		if err != nil {
			if pc.lr.n <= 0 {
				err = fmt.Errorf("response head over %d bytes", fastMaxHead)
			}
			return fail(fmt.Errorf("read response: %w", err), false)
		}
		if resp.StatusCode >= 200 || resp.StatusCode == http.StatusSwitchingProtocols {
			break
		}
		// 1xx (103 Early Hints): informational, dropped as
		// http.Transport does without a trace hook.
		if n1xx == fastMax1xx {
			return fail(fmt.Errorf("read response: over %d informational answers", fastMax1xx), false)
		}
	}
	pc.lr.n = math.MaxInt64 // the body is not bounded
	if resp.StatusCode == http.StatusSwitchingProtocols {
		resp.Body.Close()
		return fail(errors.New("unasked protocol switch"), false)
	}
	keep := !resp.Close && !req.Close
	if resp.Body == http.NoBody {
		t.release(pc, stop, keep)
		return resp, false, nil
	}
	resp.Body = &fastBody{t: t, pc: pc, body: resp.Body, stop: stop, keep: keep}
	return resp, false, nil
}

// closedConn reports whether err says the connection was closed by its
// other end (a kept connection the service had timed out).
func closedConn(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// release ends an exchange on pc: pc goes back to the pool if keep, else
// it is closed.
func (t *fastTransport) release(pc *fastConn, stop func() bool, keep bool) {
	if !stop() { // the request's context ended: pc is closed, or soon
		keep = false
	}
	if keep && pc.br.Buffered() == 0 {
		t.put(pc)
		return
	}
	pc.nc.Close()
}

// fastBody is a response body on a fast connection: read to its end, the
// connection is kept for another request; closed before, it is closed.
type fastBody struct {
	t    *fastTransport
	pc   *fastConn
	body io.ReadCloser
	stop func() bool
	keep bool
	done atomic.Bool // released
}

func (b *fastBody) Read(p []byte) (int, error) {
	n, err := b.body.Read(p)
	if err == io.EOF {
		b.release(b.keep)
	} else if err != nil {
		b.release(false)
	}
	return n, err
}

// release ends the exchange once: the first call decides whether the
// connection is kept.
func (b *fastBody) release(keep bool) {
	if b.done.CompareAndSwap(false, true) {
		b.t.release(b.pc, b.stop, keep)
	}
}

func (b *fastBody) Close() error {
	b.release(false)
	return nil
}

// get returns a kept connection to port, or nil.
func (t *fastTransport) get(port int) (*fastConn, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	cs := t.idle[port]
	for len(cs) > 0 {
		pc := cs[len(cs)-1]
		cs[len(cs)-1] = nil
		cs = cs[:len(cs)-1]
		t.idle[port] = cs
		if time.Since(pc.idleAt) < fastIdleTimeout {
			return pc, true
		}
		pc.nc.Close()
	}
	return nil, false
}

// put keeps pc for another request, unless the pool is full or closed.
func (t *fastTransport) put(pc *fastConn) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed || len(t.idle[pc.port]) >= fastMaxIdle {
		pc.nc.Close()
		return
	}
	if t.idle == nil {
		t.idle = make(map[int][]*fastConn)
	}
	if t.reaper == nil {
		t.reaper = make(chan struct{})
		go t.reap(t.reaper)
	}
	pc.idleAt = time.Now()
	t.idle[pc.port] = append(t.idle[pc.port], pc)
}

// reap closes connections idle for fastIdleTimeout, until stop is closed.
func (t *fastTransport) reap(stop <-chan struct{}) {
	tick := time.NewTicker(fastIdleTimeout / 3)
	defer tick.Stop()
	for {
		select {
		case <-stop:
			return
		case <-tick.C:
		}
		t.mu.Lock()
		for port, cs := range t.idle {
			keep := cs[:0]
			for _, pc := range cs {
				if time.Since(pc.idleAt) < fastIdleTimeout {
					keep = append(keep, pc)
				} else {
					pc.nc.Close()
				}
			}
			clear(cs[len(keep):])
			t.idle[port] = keep
		}
		t.mu.Unlock()
	}
}

// close drops the idle connections and keeps none from now on.
func (t *fastTransport) close() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.closed = true
	for _, cs := range t.idle {
		for _, pc := range cs {
			pc.nc.Close()
		}
	}
	t.idle = nil
	if t.reaper != nil {
		close(t.reaper)
		t.reaper = nil
	}
}

// limitReader reads from r until n bytes have been read, then fails (the
// limit is set for a response's head, and lifted for its body).
type limitReader struct {
	r io.Reader
	n int64
}

var errHeadTooLong = errors.New("response head too long")

func (l *limitReader) Read(p []byte) (int, error) {
	if l.n <= 0 {
		return 0, errHeadTooLong
	}
	if int64(len(p)) > l.n {
		p = p[:l.n]
	}
	n, err := l.r.Read(p)
	l.n -= int64(n)
	return n, err
}
