package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httputil"
	"strconv"
	"strings"
	"sync"

	"github.com/sandboxd/sandboxd/api"
	"github.com/sandboxd/sandboxd/internal/agentclient"
	"github.com/sandboxd/sandboxd/internal/errdefs"
)

// proxy forwards a request for sandbox id to its agent at agentPath (with
// the request's query), through net/http/httputil.ReverseProxy: the agent
// speaks the sandbox-scoped part of the public API. body, if not nil,
// replaces the request's body (the daemon decoded and checked it).
//
// Error answers of the agent pass through as they are (they are API
// errors already). If the agent cannot be reached, or the connection
// breaks, the manager decides what to report (CallFailed). An event stream
// that ends without its terminal event, because the agent or its sandbox
// went away, gets an error event appended, so a client never waits for, or
// imagines, a completion.
func (s *server) proxy(w http.ResponseWriter, r *http.Request, id, agentPath string, body []byte) {
	c, err := s.mgr.Agent(r.Context(), id)
	if err != nil {
		s.error(w, r, err)
		return
	}
	if body != nil {
		r.Body = io.NopCloser(bytes.NewReader(body))
		r.ContentLength = int64(len(body))
		r.Header.Set("Content-Length", strconv.Itoa(len(body)))
	}
	rp := &httputil.ReverseProxy{
		Transport:  c.Transport(),
		BufferPool: proxyBuffers,
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.Out.URL.Scheme = "http"
			pr.Out.URL.Host = "agent"
			pr.Out.URL.Path = agentPath
			pr.Out.URL.RawPath = ""
			pr.Out.Host = "agent"
			pr.Out.Header.Del("Authorization") // the agent needs no token, and gets none
		},
		ModifyResponse: func(resp *http.Response) error {
			if strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
				resp.Body = &terminalGuard{r: resp.Body, c: resp.Body, onFail: func(err error) error {
					return s.mgr.CallFailed(r.Context(), id, c, agentclient.Classify(r.Context(), err))
				}}
			}
			return nil
		},
		ErrorHandler: func(w http.ResponseWriter, req *http.Request, err error) {
			s.error(w, r, s.mgr.CallFailed(r.Context(), id, c, agentclient.Classify(req.Context(), err)))
		},
	}
	rp.ServeHTTP(w, r)
}

// terminalGuard passes an event stream through untouched (reads go
// straight into the caller's buffer: no copy), noting event names and ids
// from the starts of lines. If the stream ends (EOF or error) before a
// terminal event (complete, exit, error), it appends an error event saying
// why, then ends.
type terminalGuard struct {
	r        io.Reader
	c        io.Closer
	onFail   func(error) error
	lastID   int64
	terminal bool
	head     []byte // the start of the current line, enough to recognise it
	pending  []byte // bytes to hand out before reading on
	done     bool
}

// lineHead is how much of a line's start is kept: "event: complete" and
// "id: " with any id fit.
const lineHead = 64

func (g *terminalGuard) Read(p []byte) (int, error) {
	if len(g.pending) > 0 {
		n := copy(p, g.pending)
		g.pending = g.pending[n:]
		return n, nil
	}
	if g.done {
		return 0, io.EOF
	}
	n, err := g.r.Read(p)
	g.scan(p[:n])
	if err == nil {
		return n, nil
	}
	g.pending = g.finish(err)
	if n > 0 {
		return n, nil
	}
	if len(g.pending) == 0 {
		return 0, io.EOF
	}
	return g.Read(p)
}

// scan follows line boundaries in b, keeping each line's start for note.
func (g *terminalGuard) scan(b []byte) {
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		seg := b
		if i >= 0 {
			seg = b[:i]
		}
		if room := lineHead - len(g.head); room > 0 {
			g.head = append(g.head, seg[:min(room, len(seg))]...)
		}
		if i < 0 {
			return
		}
		g.note(g.head)
		g.head = g.head[:0]
		b = b[i+1:]
	}
}

// note records the event name and id of an event line.
func (g *terminalGuard) note(line []byte) {
	switch {
	case bytes.HasPrefix(line, []byte("event: ")):
		switch strings.TrimSpace(string(line[len("event: "):])) {
		case api.EventComplete, api.EventExit, api.EventError:
			g.terminal = true
		}
	case bytes.HasPrefix(line, []byte("id: ")):
		if n, err := strconv.ParseInt(strings.TrimSpace(string(line[len("id: "):])), 10, 64); err == nil {
			g.lastID = n
		}
	}
}

// finish ends the stream after err from the agent's side, returning the
// error event to append if no terminal event was seen.
func (g *terminalGuard) finish(err error) []byte {
	g.done = true
	if g.terminal {
		return nil
	}
	if err == nil || errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF
	}
	cause := g.onFail(err)
	ev := api.StreamEvent{Type: api.EventError, Code: errdefs.Code(cause), Message: cause.Error()}
	data, _ := json.Marshal(ev)
	// Two newlines first: end whatever line and event were cut off.
	return []byte("\n\nevent: error\nid: " + strconv.FormatInt(g.lastID+1, 10) + "\ndata: " + string(data) + "\n\n")
}

func (g *terminalGuard) Close() error { return g.c.Close() }

// proxyBuffers gives the proxy 256 KiB copy buffers (not its default 32
// KiB): a stream of big output events then costs a few syscalls per event.
var proxyBuffers = &bufferPool{p: sync.Pool{New: func() any { b := make([]byte, 256<<10); return &b }}}

type bufferPool struct{ p sync.Pool }

func (b *bufferPool) Get() []byte  { return *b.p.Get().(*[]byte) }
func (b *bufferPool) Put(x []byte) { b.p.Put(&x) }
