package server

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/textproto"
	"net/url"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http/httpguts"

	"github.com/sandboxd/sandboxd/internal/httphead"
)

// The preview connection loop. Preview traffic is mostly simple requests
// (GET or HEAD, no body) on kept connections, and for those net/http's
// server costs more than the proxying itself: per request a goroutine
// that watches the connection, read deadlines set and reset, a cancelable
// context and a response writer that sorts the headers it writes. So the
// daemon's listener (Handler.Listener) reads the head of each
// connection's first request itself: if it is a simple preview request,
// the connection is served here, request after request, by the same
// checks and the same proxying as net/http's path (s.preview, previewFast)
// through fastWriter, a lean http.ResponseWriter; anything else (an API
// call, a body, an upgrade, a head that does not fit or does not come in
// one piece, anything unusual) hands the connection, with what was read
// of it, to net/http, which then serves the rest of it.
//
// Only heads that the strict scan below fully understands are served
// here; net/http's own parser judges every other. A request whose
// client goes away while the service takes long to answer is noticed by
// a watch on the connection that starts after previewWatchAfter, not at
// once (net/http's cost).

// previewHeadMax is the read buffer of a connection: the longest head
// served here. Longer ones go to net/http (which allows MaxHeaderBytes).
const previewHeadMax = 4 << 10

// previewWatchAfter is how long a request may wait for its service before
// its connection is watched for the client going away.
const previewWatchAfter = 50 * time.Millisecond

// Handler is the daemon's HTTP handler: the API and preview URLs.
type Handler struct {
	http.Handler
	s  *server
	rp *httputil.ReverseProxy // the preview proxy, for what is not simple
}

// Listener returns a listener for srv, an http.Server whose handler is h:
// it accepts from ln, serves simple preview requests itself and returns
// the other connections from Accept, with what was read of them. It keeps
// srv's ReadHeaderTimeout for a connection's first request and its
// IdleTimeout between requests (each ReadTimeout if unset, as net/http
// does). Closing it closes ln and the connections waiting here for a
// request; Shutdown also waits for the requests being served.
func (h *Handler) Listener(ln net.Listener, srv *http.Server) *Listener {
	l := &Listener{
		Listener: ln, h: h,
		headerTimeout: cmp.Or(srv.ReadHeaderTimeout, srv.ReadTimeout),
		idleTimeout:   cmp.Or(srv.IdleTimeout, srv.ReadTimeout),
		conns:         make(chan net.Conn), done: make(chan struct{}), failed: make(chan struct{}),
		active: map[*previewConn]struct{}{},
	}
	go l.acceptLoop()
	return l
}

// Listener is the daemon's listener: see Handler.Listener.
type Listener struct {
	net.Listener
	h             *Handler
	headerTimeout time.Duration
	idleTimeout   time.Duration
	conns         chan net.Conn // for net/http
	done          chan struct{} // closed by Close
	closeOnce     sync.Once
	failed        chan struct{} // closed when ln fails; err says why
	err           error

	mu     sync.Mutex
	active map[*previewConn]struct{} // connections not (yet) handed on

	busy   atomic.Int64 // requests being served here
	served atomic.Int64 // requests served here (for tests)
}

func (l *Listener) Accept() (net.Conn, error) {
	select {
	case <-l.done:
		return nil, net.ErrClosed
	default:
	}
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	case <-l.failed:
		return nil, l.err
	}
}

// Close closes ln and ends the connections that wait here for a request;
// one being served ends after its answer.
func (l *Listener) Close() error {
	err := net.ErrClosed
	l.closeOnce.Do(func() {
		close(l.done)
		err = l.Listener.Close()
		l.mu.Lock()
		for pc := range l.active {
			// Wakes a wait for the next request; a request's watch
			// of its client goes on (watchClient).
			_ = pc.c.SetReadDeadline(time.Now())
		}
		l.mu.Unlock()
	})
	return err
}

// Shutdown closes l and waits for the requests it is serving to end, or
// for ctx to end: then it ends them (their services' requests are
// cancelled) and returns ctx's error.
func (l *Listener) Shutdown(ctx context.Context) error {
	l.Close()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for l.busy.Load() > 0 {
		select {
		case <-tick.C:
		case <-ctx.Done():
			l.mu.Lock()
			for pc := range l.active {
				pc.cancel()
				pc.c.Close()
			}
			l.mu.Unlock()
			return ctx.Err()
		}
	}
	return nil
}

func (l *Listener) closing() bool {
	select {
	case <-l.done:
		return true
	default:
		return false
	}
}

// acceptLoop accepts connections until ln fails, backing off on errors
// that may pass (too many open files), as net/http does.
func (l *Listener) acceptLoop() {
	var delay time.Duration
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			if l.closing() {
				return
			}
			var te interface{ Temporary() bool }
			if errors.As(err, &te) && te.Temporary() {
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				select {
				case <-time.After(delay):
					continue
				case <-l.done:
					return
				}
			}
			l.err = err
			close(l.failed)
			return
		}
		delay = 0
		go l.serve(c)
	}
}

// serve serves c's simple preview requests, then hands it to net/http
// unless it has been closed.
func (l *Listener) serve(c net.Conn) {
	pc := &previewConn{l: l, c: c, br: bufio.NewReaderSize(c, previewHeadMax)}
	pc.ctx, pc.cancel = context.WithCancel(context.Background())
	if !pc.register() {
		pc.close()
		return
	}
	if !pc.loop() {
		return
	}
	select {
	case <-l.done:
		c.Close()
		return
	default:
	}
	select {
	case l.conns <- &handoffConn{Conn: c, br: pc.br}:
	case <-l.done:
		c.Close()
	}
}

// previewConn is a connection served by the preview loop.
type previewConn struct {
	l      *Listener
	c      net.Conn
	br     *bufio.Reader
	bw     *bufio.Writer
	w      fastWriter
	remote string
	// ctx is the requests' context: it ends with the connection. (Not
	// one per request: what the proxying hangs on it, it takes off.)
	ctx      context.Context
	cancel   context.CancelFunc
	watch    *time.Timer   // starts watchClient during a slow request
	gone     chan struct{} // watchClient has returned (one value a watch)
	stopping atomic.Bool   // serveOne is ending the watch
}

// loop serves the connection's requests while they are simple preview
// requests. It returns true to hand the connection to net/http (the next
// request's bytes still in br), false once it has closed it.
func (pc *previewConn) loop() bool {
	l := pc.l
	// The first request's head must come within the server's
	// ReadHeaderTimeout, as net/http has it; later ones within its
	// IdleTimeout, if any.
	if l.headerTimeout > 0 {
		_ = pc.c.SetReadDeadline(time.Now().Add(l.headerTimeout))
	}
	for first := true; ; first = false {
		if !first && l.idleTimeout > 0 {
			_ = pc.c.SetReadDeadline(time.Now().Add(l.idleTimeout))
		}
		if _, err := pc.br.Peek(1); err != nil || l.closing() {
			pc.close()
			return false
		}
		if first {
			pc.setup()
		}
		head := pc.head()
		var req *http.Request
		var label, uri string
		if head != nil {
			req, label, uri = l.h.s.fastPreviewRequest(head, pc.remote, pc.ctx)
		}
		if req == nil {
			_ = pc.c.SetReadDeadline(time.Time{}) // net/http sets its own
			pc.forget()
			return true
		}
		if l.headerTimeout > 0 || l.idleTimeout > 0 {
			_ = pc.c.SetReadDeadline(time.Time{})
		}
		_, _ = pc.br.Discard(len(head))
		l.served.Add(1)
		l.busy.Add(1)
		keep := pc.serveOne(req, label, uri)
		l.busy.Add(-1)
		if !keep || l.closing() {
			pc.close()
			return false
		}
	}
}

// setup makes what serving requests takes: once per connection (an API
// connection, handed on after its first request, pays it too).
func (pc *previewConn) setup() {
	pc.bw = bufio.NewWriterSize(pc.c, 4<<10)
	pc.remote = pc.c.RemoteAddr().String()
	pc.gone = make(chan struct{}, 1)
	pc.watch = time.AfterFunc(time.Hour, pc.watchClient)
	pc.watch.Stop()
}

// register counts the connection among the listener's (Close ends them);
// false if the listener is closing.
func (pc *previewConn) register() bool {
	l := pc.l
	l.mu.Lock()
	l.active[pc] = struct{}{}
	l.mu.Unlock()
	return !l.closing()
}

// forget takes a connection out of the listener's: it is closed, or goes
// to net/http.
func (pc *previewConn) forget() {
	if pc.watch != nil {
		pc.watch.Stop()
	}
	pc.cancel()
	pc.l.mu.Lock()
	delete(pc.l.active, pc)
	pc.l.mu.Unlock()
}

func (pc *previewConn) close() {
	pc.forget()
	pc.c.Close()
}

// head returns the head of the next request (through its blank line) if
// it is all in the buffer already, else nil.
func (pc *previewConn) head() []byte {
	buf, _ := pc.br.Peek(pc.br.Buffered())
	if i := bytes.Index(buf, []byte("\r\n\r\n")); i >= 0 {
		return buf[:i+4]
	}
	return nil
}

// serveOne answers req; it reports whether the connection may serve
// another request.
func (pc *previewConn) serveOne(req *http.Request, label, uri string) (keep bool) {
	w := &pc.w
	w.reset(pc.bw, req.Method == http.MethodHead)
	watching := pc.br.Buffered() == 0 // else the client has sent more: it is there
	if watching {
		pc.watch.Reset(previewWatchAfter)
	}
	defer func() {
		if watching && !pc.watch.Stop() {
			// The watch started: end it, and clear the deadline
			// error it leaves in br.
			pc.stopping.Store(true)
			_ = pc.c.SetReadDeadline(time.Now())
			<-pc.gone
			pc.stopping.Store(false)
			_ = pc.c.SetReadDeadline(time.Time{})
			_, _ = pc.br.Read(nil)
			if pc.ctx.Err() != nil {
				keep = false // the client went away
			}
		}
		if p := recover(); p != nil {
			keep = false
			if p != http.ErrAbortHandler {
				buf := make([]byte, 64<<10)
				buf = buf[:runtime.Stack(buf, false)]
				pc.l.h.s.log.Error("panic serving preview request", "remote", pc.remote, "panic", p, "stack", string(buf))
			}
		}
	}()
	pc.l.h.s.preview(w, req, label, pc.l.h.rp, uri)
	return w.finish() == nil
}

// watchClient waits for the client to send more or go away while a
// request is slow; gone, it ends the connection's context, which stops
// the request (as net/http's background read does).
func (pc *previewConn) watchClient() {
	defer func() { pc.gone <- struct{}{} }()
	for {
		_, err := pc.br.Peek(1)
		switch {
		case err == nil: // the client sent more: it is there
			return
		case !errors.Is(err, os.ErrDeadlineExceeded):
			pc.cancel()
			return
		}
		// A deadline: serveOne's, to end the watch (it sets stopping
		// first), or the listener's Close, after which the request
		// and its watch go on. Cleared before stopping is looked at,
		// so that serveOne's, set after, is not lost.
		_, _ = pc.br.Read(nil)
		_ = pc.c.SetReadDeadline(time.Time{})
		if pc.stopping.Load() {
			return
		}
	}
}

// handoffConn is a connection handed to net/http: what the loop read of
// it and did not serve comes first.
type handoffConn struct {
	net.Conn
	br *bufio.Reader
}

func (c *handoffConn) Read(p []byte) (int, error) {
	if c.br != nil {
		if c.br.Buffered() > 0 {
			return c.br.Read(p)
		}
		c.br = nil
	}
	return c.Conn.Read(p)
}

// CloseWrite is the connection's own, for net/http's orderly closes.
func (c *handoffConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// ReadFrom keeps the connection's own (sendfile, splice) for net/http's
// copies to it.
func (c *handoffConn) ReadFrom(r io.Reader) (int64, error) {
	if rf, ok := c.Conn.(io.ReaderFrom); ok {
		return rf.ReadFrom(r)
	}
	return io.Copy(struct{ io.Writer }{c.Conn}, r)
}

// fastPreviewRequest returns the request of head, and its preview label,
// if head is a simple preview request: a GET or HEAD over HTTP/1.1 to
// an origin-form target, with one Host (a preview host), no body, no
// upgrade, expectation or trailers, no Connection but keep-alive, every
// header line well formed (no folding, no control bytes), and what
// previewFastURI takes; uri is what previewFastURI gives. Else it returns
// nil, for net/http to judge.
func (s *server) fastPreviewRequest(head []byte, remote string, ctx context.Context) (req *http.Request, label, uri string) {
	// One string of the head, that every part of the request is cut
	// from.
	line, rest, ok := cutLine(string(head))
	if !ok {
		return nil, "", ""
	}
	method, line, _ := strings.Cut(line, " ")
	target, proto, _ := strings.Cut(line, " ")
	if proto != "HTTP/1.1" || len(target) == 0 || target[0] != '/' || !plainASCII(target) {
		return nil, "", ""
	}
	var m string
	switch method {
	case http.MethodGet:
		m = http.MethodGet
	case http.MethodHead:
		m = http.MethodHead
	default:
		return nil, "", ""
	}
	// The header lines, up to the blank line.
	lines := ""
	if !strings.HasPrefix(rest, "\r\n") {
		i := strings.Index(rest, "\r\n\r\n")
		if i < 0 {
			return nil, "", ""
		}
		lines = rest[:i+2]
	}
	// net/http's own checks of names (tokens: no folding, no spaces)
	// and values (no control bytes but tabs).
	h, ok := httphead.Parse(lines)
	if !ok {
		return nil, "", ""
	}
	hosts := h["Host"]
	if len(hosts) != 1 || !httpguts.ValidHostHeader(hosts[0]) {
		return nil, "", ""
	}
	host := hosts[0]
	delete(h, "Host")
	for _, k := range []string{"Content-Length", "Transfer-Encoding", "Upgrade", "Expect", "Te", "Trailer"} {
		if _, ok := h[k]; ok {
			return nil, "", ""
		}
	}
	for _, v := range h["Connection"] {
		if !strings.EqualFold(v, "keep-alive") {
			return nil, "", ""
		}
	}
	if label, ok = s.previewLabel(host); !ok {
		return nil, "", ""
	}
	u, err := url.ParseRequestURI(target)
	if err != nil {
		return nil, "", ""
	}
	req = (&http.Request{
		Method: m, URL: u, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: h, Body: http.NoBody, Host: host, RemoteAddr: remote, RequestURI: target,
	}).WithContext(ctx)
	if uri, ok = previewFastURI(req); !ok {
		return nil, "", ""
	}
	return req, label, uri
}

// cutLine cuts the line (without its CRLF) off the start of s.
func cutLine(s string) (line, rest string, ok bool) {
	i := strings.IndexByte(s, '\n')
	if i < 1 || s[i-1] != '\r' {
		return "", "", false
	}
	return s[:i-1], s[i+1:], true
}

// fastWriter is the loop's http.ResponseWriter: HTTP/1.1 framing as
// net/http's server writes it for the same handler calls. A body of
// unknown length is held up to 2 KiB: one that ends within it is sent
// with its Content-Length, a longer one (or a flushed one) chunked.
type fastWriter struct {
	bw     *bufio.Writer
	header http.Header
	head   bool // a HEAD request: no body goes out
	status int  // 0 until WriteHeader
	sent   bool // the head is written
	chunk  bool
	held   []byte
	cl     int64 // the Content-Length set at WriteHeader, or -1
	n      int64 // body bytes written (or tried, as net/http counts)
	err    error
	// At WriteHeader, as net/http takes them then: the headers written
	// out (hdr) and what sendHead needs to know of them.
	hdr                               []byte
	hasType, hasCE, trailers, hasDate bool
}

const fastHoldMax = 2 << 10

func (w *fastWriter) reset(bw *bufio.Writer, head bool) {
	h, held, hdr := w.header, w.held[:0], w.hdr[:0]
	if h == nil {
		h = make(http.Header, 8)
	}
	clear(h)
	*w = fastWriter{bw: bw, header: h, head: head, held: held, hdr: hdr, cl: -1}
}

func (w *fastWriter) Header() http.Header { return w.header }

func (w *fastWriter) WriteHeader(code int) {
	if code < 100 || code > 999 {
		panic(fmt.Sprintf("invalid WriteHeader code %v", code))
	}
	if w.status != 0 || code < 200 {
		return // informational answers are not passed on
	}
	w.status = code
	h := w.header
	// As net/http: a Content-Length set now is kept to; a bad one is
	// dropped.
	if v := h.Get("Content-Length"); v != "" {
		if n, err := strconv.ParseInt(textproto.TrimString(v), 10, 64); err == nil && n >= 0 {
			w.cl = n
		} else {
			h.Del("Content-Length")
		}
	}
	_, w.hasType = h["Content-Type"]
	w.hasCE = h.Get("Content-Encoding") != ""
	_, w.trailers = h["Trailer"]
	_, w.hasDate = h["Date"]
	skip := func(k string) bool {
		switch k {
		case "Transfer-Encoding": // the framing is this writer's
			return true
		case "Content-Length":
			return !bodyAllowed(code)
		case "Content-Type":
			return code == http.StatusNotModified
		}
		return strings.HasPrefix(k, http.TrailerPrefix) || !httpguts.ValidHeaderFieldName(k)
	}
	b := w.hdr[:0]
	for k, vv := range h {
		if skip(k) {
			continue
		}
		for _, v := range vv {
			if strings.ContainsAny(v, "\r\n") { // as net/http writes it
				v = headerNewlineToSpace.Replace(v)
			}
			b = append(b, k...)
			b = append(b, ": "...)
			b = append(b, textproto.TrimString(v)...)
			b = append(b, "\r\n"...)
		}
	}
	w.hdr = b
}

func (w *fastWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	if w.err != nil {
		return 0, w.err
	}
	if !bodyAllowed(w.status) {
		return 0, http.ErrBodyNotAllowed
	}
	w.n += int64(len(p))
	if w.cl >= 0 && w.n > w.cl {
		return 0, http.ErrContentLength
	}
	if !w.sent {
		// Held, for a HEAD answer too: its Content-Length and
		// Content-Type are the GET's.
		if len(w.held)+len(p) <= fastHoldMax {
			w.held = append(w.held, p...)
			return len(p), nil
		}
		w.sendHead(false, p)
	}
	if w.head {
		return len(p), nil
	}
	w.writeBody(p)
	if w.err != nil {
		return 0, w.err
	}
	return len(p), nil
}

// FlushError sends what is written so far (http.ResponseController).
func (w *fastWriter) FlushError() error {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	if !w.sent {
		w.sendHead(false, nil)
	}
	if w.err == nil {
		w.err = w.bw.Flush()
	}
	return w.err
}

// finish ends the response once the handler has returned.
func (w *fastWriter) finish() error {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	if !w.sent {
		w.sendHead(true, nil)
	}
	if w.chunk && w.err == nil {
		w.bw.WriteString("0\r\n")
		w.writeTrailers()
		w.bw.WriteString("\r\n")
	}
	if w.err == nil {
		w.err = w.bw.Flush()
	}
	if w.err == nil && w.cl >= 0 && w.n != w.cl && !w.head && bodyAllowed(w.status) {
		// A body not of the length it said: the connection must end.
		w.err = fmt.Errorf("response body: %d bytes for a Content-Length of %d", w.n, w.cl)
	}
	return w.err
}

// sendHead writes the status line, the headers as WriteHeader found
// them, the framing, then the held body; p is the body write that made it
// send (for sniffing), final says the handler has returned (the held body
// is the whole body).
func (w *fastWriter) sendHead(final bool, p []byte) {
	w.sent = true
	code := w.status
	var setCL, setType string
	var chunk bool
	if bodyAllowed(code) {
		sniff := w.held
		if len(sniff) == 0 {
			sniff = p
		}
		if !w.hasType && !w.hasCE && len(sniff) > 0 {
			setType = http.DetectContentType(sniff)
		}
		switch {
		case w.cl >= 0:
		case w.trailers: // trailers need a chunked body
			chunk = !w.head
		case final && (!w.head || len(w.held) > 0):
			setCL = strconv.Itoa(len(w.held))
		case !w.head:
			chunk = true
		}
	}
	bw := w.bw
	bw.WriteString("HTTP/1.1 ")
	if text := http.StatusText(code); text != "" {
		bw.WriteString(strconv.Itoa(code))
		bw.WriteByte(' ')
		bw.WriteString(text)
		bw.WriteString("\r\n")
	} else {
		fmt.Fprintf(bw, "%03d status code %d\r\n", code, code)
	}
	bw.Write(w.hdr)
	if setType != "" {
		writeHeaderLine(bw, "Content-Type", setType)
	}
	if setCL != "" {
		writeHeaderLine(bw, "Content-Length", setCL)
	}
	if chunk {
		bw.WriteString("Transfer-Encoding: chunked\r\n")
	}
	if !w.hasDate {
		bw.WriteString("Date: ")
		bw.Write(httpDate())
		bw.WriteString("\r\n")
	}
	bw.WriteString("\r\n")
	w.chunk = chunk
	if len(w.held) > 0 && !w.head {
		w.writeBody(w.held)
	}
	w.held = w.held[:0]
}

func (w *fastWriter) writeBody(p []byte) {
	if len(p) == 0 || w.err != nil {
		return
	}
	if w.chunk {
		w.bw.WriteString(strconv.FormatInt(int64(len(p)), 16))
		w.bw.WriteString("\r\n")
		w.bw.Write(p)
		_, w.err = w.bw.WriteString("\r\n")
		return
	}
	_, w.err = w.bw.Write(p)
}

// writeTrailers writes the trailers of a chunked body: the headers the
// Trailer header announced, and those named with http.TrailerPrefix.
func (w *fastWriter) writeTrailers() {
	h := w.header
	for _, v := range h["Trailer"] {
		for k := range strings.SplitSeq(v, ",") {
			k = http.CanonicalHeaderKey(textproto.TrimString(k))
			for _, tv := range h[k] {
				if httpguts.ValidHeaderFieldName(k) {
					writeHeaderLine(w.bw, k, headerNewlineToSpace.Replace(tv))
				}
			}
		}
	}
	for k, vv := range h {
		if name, ok := strings.CutPrefix(k, http.TrailerPrefix); ok && httpguts.ValidHeaderFieldName(name) {
			for _, v := range vv {
				writeHeaderLine(w.bw, name, headerNewlineToSpace.Replace(v))
			}
		}
	}
}

var headerNewlineToSpace = strings.NewReplacer("\n", " ", "\r", " ")

func bodyAllowed(code int) bool {
	return !(code >= 100 && code <= 199 || code == http.StatusNoContent || code == http.StatusNotModified)
}

// httpDate is the time now in http.TimeFormat, made once a second.
func httpDate() []byte {
	now := time.Now().Unix()
	if d := cachedDate.Load(); d != nil && d.sec == now {
		return d.b
	}
	d := &dateCache{sec: now, b: time.Unix(now, 0).UTC().AppendFormat(nil, http.TimeFormat)}
	cachedDate.Store(d)
	return d.b
}

type dateCache struct {
	sec int64
	b   []byte
}

var cachedDate atomic.Pointer[dateCache]
