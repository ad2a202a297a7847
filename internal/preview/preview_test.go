package preview_test

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"net/netip"
	"net/textproto"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/sandboxd/sandboxd/api"
	"github.com/sandboxd/sandboxd/internal/errdefs"
	"github.com/sandboxd/sandboxd/internal/manager"
	"github.com/sandboxd/sandboxd/internal/manager/managertest"
	"github.com/sandboxd/sandboxd/internal/preview"
	"github.com/sandboxd/sandboxd/internal/testutil"
)

// env is a preview proxy in front of a stand-in API, served on loopback,
// over a Manager whose sandboxes' agent runs in this process: a "port in
// the sandbox" is a port on this host's loopback.
type env struct {
	srv     *httptest.Server
	mgr     *manager.Manager
	targets *holdCounter
	proxy   *preview.Proxy
}

// holdCounter is the Manager, counting the holds open.
type holdCounter struct {
	preview.Targets
	open atomic.Int64
}

func (h *holdCounter) Hold(id string) func() {
	h.open.Add(1)
	release := h.Targets.Hold(id)
	var once sync.Once
	return func() { once.Do(func() { h.open.Add(-1); release() }) }
}

// writeError writes err as the API does: its wire code, with that code's
// status.
func writeError(w http.ResponseWriter, r *http.Request, err error) {
	code := errdefs.Code(err)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(api.HTTPStatus(code))
	_ = json.NewEncoder(w).Encode(api.Error{Code: code, Message: err.Error(), HTTPStatus: api.HTTPStatus(code)})
}

func newEnv(t testing.TB, trusted ...netip.Prefix) *env {
	t.Helper()
	m := managertest.New(t)
	e := &env{mgr: m.Manager, targets: &holdCounter{Targets: m.Manager}}
	e.proxy = preview.New(preview.Config{Domain: "preview.test", TrustedProxies: trusted, Targets: e.targets, Error: writeError})
	api := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusTeapot)
		io.WriteString(w, "the API")
	})
	e.srv = httptest.NewServer(e.proxy.Handler(api))
	t.Cleanup(e.srv.Close)
	return e
}

// expose exposes port of sandbox id and returns its preview host, with a
// listen port.
func (e *env) expose(t testing.TB, id string, port int) string {
	t.Helper()
	p, err := e.mgr.ExposePort(context.Background(), id, port, "", "")
	if err != nil {
		t.Fatal(err)
	}
	return strconv.Itoa(port) + "-" + id + "-" + p.Token + ".preview.test:1234"
}

// get sends method path to host through the proxy and returns the
// response, its body read.
func (e *env) get(t testing.TB, method, host, path string, hdr http.Header) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest(method, e.srv.URL+path, nil)
	req.Host = host
	for k, v := range hdr {
		req.Header[k] = v
	}
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: body: %v", method, path, err)
	}
	return resp, string(b)
}

// serve serves h on loopback and returns its port.
func serve(t testing.TB, h http.HandlerFunc) int {
	t.Helper()
	up := httptest.NewServer(h)
	t.Cleanup(up.Close)
	return up.Listener.Addr().(*net.TCPAddr).Port
}

// TestHeaders: what a request sends to the service and gets back, from
// trusted and untrusted peers: spoofed proxy headers, the daemon's own
// and names with '_' stripped, X-Forwarded-* set, hop-by-hop headers
// dropped both ways, repeated headers, trailers and streamed bodies
// passed on.
func TestHeaders(t *testing.T) {
	port := serve(t, func(w http.ResponseWriter, r *http.Request) {
		h := r.Header.Clone()
		h.Set("Host", r.Host)
		h.Set("X-Uri", r.RequestURI)
		w.Header().Set("Connection", "X-Hop")
		w.Header().Set("X-Hop", "dropped")
		w.Header().Set("Keep-Alive", "timeout=5")
		w.Header().Add("X-Multi", "a")
		w.Header().Add("X-Multi", "b")
		switch {
		case r.URL.Query().Get("trailer") != "":
			w.Header().Set("Trailer", "X-Sum")
			w.WriteHeader(201)
			io.WriteString(w, "body")
			w.Header().Set("X-Sum", "42")
			w.Header().Set(http.TrailerPrefix+"X-Late", "yes")
		case r.URL.Query().Get("stream") != "":
			w.Header().Set("Content-Type", "text/event-stream")
			for i := range 3 {
				io.WriteString(w, "data: "+strconv.Itoa(i)+"\n\n")
				w.(http.Flusher).Flush()
			}
		default:
			b, _ := json.Marshal(h)
			w.Header().Set("Content-Length", strconv.Itoa(len(b)))
			w.WriteHeader(201)
			w.Write(b)
		}
	})
	spoofed := http.Header{
		"X-Forwarded-For": {"6.6.6.6", "7.7.7.7"}, "X-Forwarded-Proto": {"https"}, "X-Forwarded-Host": {"spoof.example"},
		"Forwarded": {"for=6.6.6.6"}, "X-Real-Ip": {"6.6.6.6"}, "X-Sandboxd-Internal": {"1"},
		"Keep-Alive": {"300"}, "Proxy-Authorization": {"Basic eA=="}, "Cookie": {"a=1", "b=2"},
		"X-Empty": {""}, "X_forwarded_for": {"8.8.8.8"}, "X-Sandboxd_id": {"x"}, "Accept": {"text/html"},
	}
	for _, tc := range []struct {
		name    string
		trusted []netip.Prefix
	}{{"untrusted", nil}, {"trusted", []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, tc.trusted...)
			host := e.expose(t, "box", port)
			resp, body := e.get(t, "GET", host, "/a/b?x=1&y=%20z", spoofed)
			if resp.StatusCode != 201 {
				t.Fatalf("%d %s", resp.StatusCode, body)
			}
			if resp.Header.Get("X-Hop") != "" || resp.Header.Get("Keep-Alive") != "" || len(resp.Header["X-Multi"]) != 2 {
				t.Errorf("response headers %v", resp.Header)
			}
			var got http.Header
			if err := json.Unmarshal([]byte(body), &got); err != nil {
				t.Fatalf("%s: %v", body, err)
			}
			want := map[string]string{
				"Host": host, "X-Uri": "/a/b?x=1&y=%20z", "X-Sandboxd-Internal": "", "Keep-Alive": "",
				"Proxy-Authorization": "", "Connection": "", "Cookie": "a=1, b=2", "Accept": "text/html",
				"X-Forwarded-For": "127.0.0.1", "X-Forwarded-Proto": "http", "X-Forwarded-Host": host,
				"Forwarded": "", "X-Real-Ip": "", "X_forwarded_for": "", "X-Sandboxd_id": "",
			}
			if tc.trusted != nil {
				want["X-Forwarded-For"] = "6.6.6.6, 7.7.7.7, 127.0.0.1"
				want["X-Forwarded-Proto"] = "https"
				want["X-Forwarded-Host"] = "spoof.example"
				want["Forwarded"] = "for=6.6.6.6"
				want["X-Real-Ip"] = "6.6.6.6"
			}
			for k, v := range want {
				if g := strings.Join(got.Values(k), ", "); g != v {
					t.Errorf("%s = %q, want %q", k, g, v)
				}
			}
			if _, ok := got["X-Empty"]; !ok {
				t.Errorf("X-Empty dropped: %v", got)
			}

			resp, body = e.get(t, "GET", host, "/?trailer=1", nil)
			if resp.StatusCode != 201 || body != "body" || resp.Trailer.Get("X-Sum") != "42" || resp.Trailer.Get("X-Late") != "yes" {
				t.Errorf("trailers: %d %q %v", resp.StatusCode, body, resp.Trailer)
			}
			if _, body = e.get(t, "GET", host, "/?stream=1", nil); body != "data: 0\n\ndata: 1\n\ndata: 2\n\n" {
				t.Errorf("stream: %q", body)
			}
			if resp, body = e.get(t, "HEAD", host, "/h", nil); resp.StatusCode != 201 || body != "" || len(resp.Header["X-Multi"]) != 2 {
				t.Errorf("HEAD: %d %q %v", resp.StatusCode, body, resp.Header)
			}
		})
	}
}

// TestBytesAfterAnswer: a service that sends more than its answer (bytes
// after a body, a body after a HEAD answer) on a kept connection loses
// that connection: the next request, from anyone, gets its own answer,
// never the stray bytes (nor a 502).
func TestBytesAfterAnswer(t *testing.T) {
	addr, conns := testutil.StrayBytesService(t)
	e := newEnv(t)
	host := e.expose(t, "box", int(netip.MustParseAddrPort(addr).Port()))
	for i, step := range []struct{ method, path, want string }{
		{"GET", "/", "fine"},
		{"GET", "/extra", "ok"},
		{"GET", "/", "fine"},
		{"HEAD", "/", ""},
		{"GET", "/", "fine"},
		{"GET", "/", "fine"},
	} {
		time.Sleep(10 * time.Millisecond) // the stray bytes are there
		if resp, body := e.get(t, step.method, host, step.path, nil); resp.StatusCode != 200 || body != step.want {
			t.Fatalf("step %d, %s %s: %d %q, want 200 %q", i, step.method, step.path, resp.StatusCode, body, step.want)
		}
	}
	if n := conns.Load(); n != 3 {
		t.Errorf("%d connections to the service, want 3 (the first kept, the other two lost)", n)
	}
}

// TestEarlyHints: 1xx answers before the response (103 Early Hints) reach
// the client with their headers.
func TestEarlyHints(t *testing.T) {
	port := serve(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Link", "</style.css>; rel=preload; as=style")
		w.WriteHeader(http.StatusEarlyHints)
		w.Header().Del("Link")
		io.WriteString(w, "page")
	})
	e := newEnv(t)
	host := e.expose(t, "box", port)
	var hints []string
	trace := &httptrace.ClientTrace{Got1xxResponse: func(code int, h textproto.MIMEHeader) error {
		hints = append(hints, strconv.Itoa(code)+" "+h.Get("Link"))
		return nil
	}}
	req, _ := http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), trace), "GET", e.srv.URL+"/", nil)
	req.Host = host
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(b) != "page" || len(hints) != 1 || hints[0] != "103 </style.css>; rel=preload; as=style" {
		t.Errorf("%d %q, hints %q", resp.StatusCode, b, hints)
	}
}

// TestEventStreamLive: each event reaches the client when the service
// sends it (nothing buffered), and the sandbox is held for as long as the
// stream lasts.
func TestEventStreamLive(t *testing.T) {
	next := make(chan struct{})
	port := serve(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		for i := range 3 {
			if i > 0 {
				select {
				case <-next:
				case <-r.Context().Done():
					return
				}
			}
			io.WriteString(w, "data: "+strconv.Itoa(i)+"\n\n")
			w.(http.Flusher).Flush()
		}
	})
	e := newEnv(t)
	host := e.expose(t, "box", port)
	req, _ := http.NewRequest("GET", e.srv.URL+"/", nil)
	req.Host = host
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	for i := range 3 {
		if i > 0 {
			next <- struct{}{} // the service sends event i only now
		}
		done := make(chan string, 1)
		go func() {
			line, _ := br.ReadString('\n')
			br.ReadString('\n')
			done <- line
		}()
		select {
		case line := <-done:
			if line != "data: "+strconv.Itoa(i)+"\n" {
				t.Fatalf("event %d: %q", i, line)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("event %d held back", i)
		}
		if n := e.targets.open.Load(); i < 2 && n != 1 { // the service waits for next
			t.Errorf("%d holds during the stream, want 1", n)
		}
	}
	if rest, err := io.ReadAll(br); err != nil || len(rest) != 0 {
		t.Errorf("after the last event: %q %v", rest, err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for e.targets.open.Load() != 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := e.targets.open.Load(); n != 0 {
		t.Errorf("%d holds after the stream, want 0", n)
	}
}

// staleTargets reports every port as stale, as the Manager does for a
// sandbox that is not running in the container its port was exposed in.
type staleTargets struct{ preview.Targets }

func (s staleTargets) Preview(ctx context.Context, id string, port int) (manager.PreviewTarget, error) {
	pt, err := s.Targets.Preview(ctx, id, port)
	return manager.PreviewTarget{Port: pt.Port, Stale: true}, err
}

// TestErrors: what a request gets when it cannot reach a service, and
// that hosts outside the preview domain go to the API.
func TestErrors(t *testing.T) {
	e := newEnv(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().(*net.TCPAddr).Port
	ln.Close() // nothing listens on it now
	host := e.expose(t, "box", closed)
	bare := strings.TrimSuffix(host, ":1234")
	wrongToken := strconv.Itoa(closed) + "-box-nottheone.preview.test"
	unexposed := strconv.Itoa(closed+1) + "-box-x.preview.test"
	for _, tc := range []struct {
		host   string
		status int
		code   string
	}{
		{host, 502, api.CodePortNotListening},
		{wrongToken, 404, api.CodeInvalidToken},
		{unexposed, 404, api.CodePortNotExposed},
		{"8080-box.preview.test", 404, api.CodeNotFound},
		{"8080-Box_1-x.preview.test", 404, api.CodeNotFound},
		{"a." + host, 404, api.CodeNotFound},
		{"preview.test", 418, ""},
		{bare + ".elsewhere.example", 418, ""},
		{bare + ".elsewhere.example:1234", 418, ""},
	} {
		resp, body := e.get(t, "GET", tc.host, "/", nil)
		var ae api.Error
		_ = json.Unmarshal([]byte(body), &ae)
		if resp.StatusCode != tc.status || ae.Code != tc.code {
			t.Errorf("%s: %d %s, want %d %s", tc.host, resp.StatusCode, body, tc.status, tc.code)
		}
	}
	stale := preview.New(preview.Config{Domain: "preview.test", Targets: staleTargets{e.mgr}, Error: writeError})
	req := httptest.NewRequest("GET", "/", nil)
	req.Host = host
	w := httptest.NewRecorder()
	stale.Handler(nil).ServeHTTP(w, req)
	if w.Code != 410 || !strings.Contains(w.Body.String(), api.CodeStalePreviewURL) {
		t.Errorf("stale: %d %s", w.Code, w.Body)
	}
}

// TestURL: the preview URL the API prints follows the scheme and port the
// client used, and a trusted proxy's X-Forwarded-Proto and -Host.
func TestURL(t *testing.T) {
	p := preview.New(preview.Config{Domain: ".Preview.Test.", TrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}})
	fwd := http.Header{"X-Forwarded-Proto": {"https"}, "X-Forwarded-Host": {"api.example"}}
	for _, tc := range []struct {
		remote, host string
		hdr          http.Header
		want         string
	}{
		{"127.0.0.1:5", "127.0.0.1:8787", nil, "http://8080-box-tok.preview.test:8787/"},
		{"127.0.0.1:5", "localhost", fwd, "http://8080-box-tok.preview.test/"},
		{"10.1.2.3:5", "127.0.0.1:8787", fwd, "https://8080-box-tok.preview.test/"},
		{"[::ffff:10.1.2.3]:5", "x", http.Header{"X-Forwarded-Host": {"api.example:8443"}}, "http://8080-box-tok.preview.test:8443/"},
	} {
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr, r.Host, r.Header = tc.remote, tc.host, tc.hdr
		if r.Header == nil {
			r.Header = http.Header{}
		}
		if got := p.URL(r, 8080, "box", "tok"); got != tc.want {
			t.Errorf("%s %s %v: %s, want %s", tc.remote, tc.host, tc.hdr, got, tc.want)
		}
	}
}

// BenchmarkProxy: a small GET through a preview URL (in-process proxy,
// netns dialer and service) over kept connections; "cpu-us/op" is this
// process's CPU time per request.
//
//	go test -run '^$' -bench BenchmarkProxy -benchmem ./internal/preview/
func BenchmarkProxy(b *testing.B) {
	port := serve(b, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		w.Header().Set("Content-Length", "2")
		io.WriteString(w, "ok")
	})
	e := newEnv(b)
	host := e.expose(b, "box", port)
	c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 8}}
	defer c.CloseIdleConnections()
	req, _ := http.NewRequest("GET", e.srv.URL+"/x?a=1", nil)
	req.Host = host
	b.ReportAllocs()
	cpu0 := processCPU()
	for b.Loop() {
		resp, err := c.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			b.Fatal(resp.Status)
		}
	}
	b.ReportMetric(float64((processCPU()-cpu0).Microseconds())/float64(b.N), "cpu-us/op")
}

// processCPU is this process's CPU time (user and system) so far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
