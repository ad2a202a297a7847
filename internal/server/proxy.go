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
	"github.com/sandboxd/sandboxd/internal/chunkio"
	"github.com/sandboxd/sandboxd/internal/errdefs"
)

// proxy forwards a request for sandbox id to its agent at agentPath (with
// the request's query), through net/http/httputil.ReverseProxy: the agent
// speaks the sandbox-scoped part of the public API. body, if not nil,
// replaces the request's body (the daemon decoded and checked it). It
// returns the status of the agent's answer, or 0 if there was none.
//
// Error answers of the agent pass through as they are (they are API
// errors already). If the agent cannot be reached, or the connection
// breaks, the manager decides what to report (CallFailed). An event stream
// that ends without its terminal event, because the agent or its sandbox
// went away, gets an error event appended, so a client never waits for, or
// imagines, a completion.
func (s *server) proxy(w http.ResponseWriter, r *http.Request, id, agentPath string, body []byte) (status int) {
	// Held (never put to sleep) from before the agent is found until the
	// answer, or the stream, ends.
	defer s.mgr.Hold(id)()
	c, err := s.mgr.Agent(r.Context(), id)
	if err != nil {
		s.error(w, r, err)
		return 0
	}
	if body != nil {
		r.Body = io.NopCloser(bytes.NewReader(body))
		r.ContentLength = int64(len(body)) // the transport writes Content-Length from it
	}
	bufs := &responseBuffers{}
	rp := &httputil.ReverseProxy{
		Transport:  bigUploads{c.Transport()},
		BufferPool: bufs,
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.Out.URL.Scheme = "http"
			pr.Out.URL.Host = "agent"
			pr.Out.URL.Path = agentPath
			pr.Out.URL.RawPath = ""
			pr.Out.Host = "agent"
			pr.Out.Header.Del("Authorization") // the agent needs no token, and gets none
		},
		ModifyResponse: func(resp *http.Response) error {
			status = resp.StatusCode
			bufs.big = resp.ContentLength < 0 || resp.ContentLength > smallBuffer // before the proxy asks for one
			s.observe(r, resp)
			// A 101 (the terminal's WebSocket) is never guarded: the
			// proxy needs its body as it is (an io.ReadWriteCloser) to
			// copy the upgraded connection both ways.
			if resp.StatusCode != http.StatusSwitchingProtocols && strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
				resp.Body = &terminalGuard{r: resp.Body, code: agentPath == codeStreamPath, onFail: func(err error) error {
					return s.mgr.CallFailed(r.Context(), id, c, agentclient.Classify(r.Context(), err))
				}}
			}
			return nil
		},
		ErrorHandler: func(w http.ResponseWriter, req *http.Request, err error) {
			s.observe(r, nil)
			s.error(w, r, s.mgr.CallFailed(r.Context(), id, c, agentclient.Classify(req.Context(), err)))
		},
	}
	// Full duplex: the agent may answer, and stream, before the transport
	// has read the client's body to its end (it reads once more for
	// EOF). By default the server would close that body as the answer's
	// header goes out, failing the transport's read: it then closes the
	// agent connection mid-answer ("use of closed network connection").
	_ = http.NewResponseController(w).EnableFullDuplex()
	rp.ServeHTTP(w, r)
	return status
}

// terminalGuard passes an event stream through untouched (reads go
// straight into the caller's buffer: no copy), noting event names and ids
// from the starts of lines. If the stream ends (EOF or error) before a
// terminal event (complete, exit, error), it appends an error event saying
// why, then ends.
//
// On a code stream (code is set) an error event is a run's exception and
// the stream goes on to complete: only complete ends it, or an error event
// that the agent's answer ended cleanly after (a call that failed, with a
// code).
type terminalGuard struct {
	r         io.ReadCloser
	onFail    func(error) error
	code      bool // a code interpreter stream
	lastID    int64
	terminal  bool
	lastError bool   // code streams: the last event so far is an error
	head      []byte // the start of the current line, enough to recognise it
	pending   []byte // bytes to hand out before reading on
	done      bool
}

// codeStreamPath is the agent's route of code interpreter streams.
const codeStreamPath = "/v1/code/run/stream"

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
	if err != nil {
		g.pending = g.finish(err)
		if n == 0 {
			return g.Read(p) // the pending error event, or io.EOF
		}
	}
	return n, nil
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
		name := strings.TrimSpace(string(line[len("event: "):]))
		if g.code {
			g.terminal = g.terminal || name == api.EventComplete
			g.lastError = name == api.EventError
			return
		}
		switch name {
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
	if g.terminal || (g.code && g.lastError && errors.Is(err, io.EOF)) {
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

func (g *terminalGuard) Close() error { return g.r.Close() }

// responseBuffers is the proxy's BufferPool for one response: big
// buffers (1 MiB, not the proxy's default 32 KiB) for event streams and
// big bodies, so that a stream of big output events or a file download
// costs a few system calls per MiB, and small ones for the rest, so that
// many small calls at once do not hold a MiB each.
type responseBuffers struct{ big bool }

func (b *responseBuffers) Get() []byte {
	if b.big {
		return *bigBuffers.Get().(*[]byte)
	}
	return *smallBuffers.Get().(*[]byte)
}

func (b *responseBuffers) Put(x []byte) {
	if len(x) == bigBuffer {
		bigBuffers.Put(&x)
	} else {
		smallBuffers.Put(&x)
	}
}

const (
	bigBuffer   = 1 << 20
	smallBuffer = 32 << 10
)

var (
	bigBuffers   = sync.Pool{New: func() any { b := make([]byte, bigBuffer); return &b }}
	smallBuffers = sync.Pool{New: func() any { b := make([]byte, smallBuffer); return &b }}
)

// bigUploads is the proxy's transport: it gives the body of an upload of
// unknown length (chunked) a WriteTo. The transport copies a request body
// with WriteTo if it has one, else in pieces of 32 KiB, each a chunk and a
// flush; bigChunkBody sends chunks of bigBuffer, each as full as the
// client's chunks allow, so that the agent gets few big reads (and its
// file few big writes). (It cannot be done on the incoming request: the
// proxy hides the body's methods behind a wrapper of its own.)
type bigUploads struct{ http.RoundTripper }

func (t bigUploads) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.ContentLength < 0 && req.Body != nil && req.Body != http.NoBody {
		r := *req // a shallow copy, as Request.WithContext makes
		r.Body = bigChunkBody{req.Body}
		req = &r
	}
	return t.RoundTripper.RoundTrip(req)
}

// bigChunkBody is a request body that copies itself in chunks of bigBuffer.
type bigChunkBody struct{ io.ReadCloser }

func (b bigChunkBody) WriteTo(w io.Writer) (int64, error) {
	buf := bigBuffers.Get().(*[]byte)
	defer bigBuffers.Put(buf)
	return chunkio.CopyChunks(w, b.ReadCloser, *buf)
}
