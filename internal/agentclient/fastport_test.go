package agentclient

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sandboxd/sandboxd/api"
	"github.com/sandboxd/sandboxd/internal/errdefs"
)

// hostDialer reaches ports on this host's loopback (standing in for a
// sandbox's), counting its dials.
type hostDialer struct {
	dials  atomic.Int64
	closed atomic.Bool
}

func (d *hostDialer) DialPort(ctx context.Context, port int) (net.Conn, error) {
	d.dials.Add(1)
	var nd net.Dialer
	return nd.DialContext(ctx, "tcp", "127.0.0.1:"+strconv.Itoa(port))
}

func (d *hostDialer) Close() error { d.closed.Store(true); return nil }

// fastServer serves h on loopback and counts the connections it accepts.
func fastServer(t *testing.T, h http.HandlerFunc) (port int, conns *atomic.Int64, srv *httptest.Server) {
	t.Helper()
	conns = new(atomic.Int64)
	srv = httptest.NewUnstartedServer(h)
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().(*net.TCPAddr).Port, conns, srv
}

func fastClient(t *testing.T) (*Client, *hostDialer, http.RoundTripper) {
	t.Helper()
	c := New("/nonexistent/agent.sock") // no agent: every dial goes through d
	d := &hostDialer{}
	if !c.SetPortDialer(d) {
		t.Fatal("SetPortDialer")
	}
	t.Cleanup(c.Close)
	return c, d, c.PortTransport()
}

func fastGet(t *testing.T, rt http.RoundTripper, method, u string, body io.Reader) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest(method, u, body)
	resp, err := rt.RoundTrip(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatalf("%s %s: body: %v", method, u, err)
	}
	return resp, string(b)
}

func TestFastTransportReuse(t *testing.T) {
	port, conns, _ := fastServer(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/chunked":
			w.(http.Flusher).Flush() // no Content-Length: chunked
			io.WriteString(w, "chunk")
		case "/close":
			w.Header().Set("Connection", "close")
			io.WriteString(w, "bye")
		default:
			w.Header().Set("X-Method", r.Method)
			io.WriteString(w, "ok:"+r.Host+":"+r.Header.Get("X-Test"))
		}
	})
	c, _, rt := fastClient(t)
	base := "http://127.0.0.1:" + strconv.Itoa(port)
	for i := range 10 {
		req, _ := http.NewRequest("GET", base+"/", nil)
		req.Host = "preview.example"
		req.Header.Set("X-Test", strconv.Itoa(i))
		resp, err := rt.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if want := "ok:preview.example:" + strconv.Itoa(i); string(b) != want {
			t.Fatalf("got %q, want %q", b, want)
		}
	}
	if _, body := fastGet(t, rt, "GET", base+"/chunked", nil); body != "chunk" {
		t.Errorf("chunked: %q", body)
	}
	if resp, body := fastGet(t, rt, "HEAD", base+"/", nil); body != "" || resp.Header.Get("X-Method") != "HEAD" {
		t.Errorf("HEAD: %q %v", body, resp.Header)
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("%d connections for sequential requests, want 1 (kept alive)", n)
	}
	// Connection: close is honoured: the next request needs a new one.
	fastGet(t, rt, "GET", base+"/close", nil)
	fastGet(t, rt, "GET", base+"/", nil)
	if n := conns.Load(); n != 2 {
		t.Errorf("%d connections after Connection: close, want 2", n)
	}
	// A body that is not read to its end closes its connection.
	req, _ := http.NewRequest("GET", base+"/", nil)
	resp, err := rt.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	fastGet(t, rt, "GET", base+"/", nil)
	if n := conns.Load(); n != 3 {
		t.Errorf("%d connections after an unread body, want 3", n)
	}
	// Other requests go the standard way, and work.
	if _, body := fastGet(t, rt, "POST", base+"/", strings.NewReader("x")); !strings.HasPrefix(body, "ok:") {
		t.Errorf("POST: %q", body)
	}
	c.Close()
	ft := rt.(*fastTransport)
	ft.mu.Lock()
	idle := len(ft.idle)
	ft.mu.Unlock()
	if idle != 0 {
		t.Errorf("idle connections kept after Close")
	}
}

// TestFastTransportServerClosedIdle: a kept connection the service closed
// in the meantime (its keep-alive timeout) costs a retry, not an error.
func TestFastTransportServerClosedIdle(t *testing.T) {
	port, conns, srv := fastServer(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
	_, _, rt := fastClient(t)
	base := "http://127.0.0.1:" + strconv.Itoa(port)
	fastGet(t, rt, "GET", base+"/", nil)
	srv.CloseClientConnections()
	time.Sleep(50 * time.Millisecond)
	if _, body := fastGet(t, rt, "GET", base+"/", nil); body != "ok" {
		t.Errorf("after the server closed the kept connection: %q", body)
	}
	if n := conns.Load(); n != 2 {
		t.Errorf("%d connections, want 2", n)
	}
}

// TestFastTransportCancel: a request whose context ends while the
// service has not answered returns at once, and its connection is not
// kept.
func TestFastTransportCancel(t *testing.T) {
	release := make(chan struct{})
	port, _, _ := fastServer(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			select {
			case <-release:
			case <-r.Context().Done():
			}
		}
		io.WriteString(w, "ok")
	})
	defer close(release)
	_, _, rt := fastClient(t)
	base := "http://127.0.0.1:" + strconv.Itoa(port)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", base+"/slow", nil)
	t0 := time.Now()
	if _, err := rt.RoundTrip(req); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("RoundTrip: %v, want DeadlineExceeded", err)
	}
	if d := time.Since(t0); d > 5*time.Second {
		t.Errorf("cancel took %s", d)
	}
	if _, body := fastGet(t, rt, "GET", base+"/", nil); body != "ok" {
		t.Errorf("after a cancel: %q", body)
	}
}

// TestFastTransportNotListening: a refused connection is
// PORT_NOT_LISTENING.
func TestFastTransportNotListening(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	c := New("/nonexistent/agent.sock")
	defer c.Close()
	c.SetPortDialer(refusingDialer{})
	req, _ := http.NewRequest("GET", "http://127.0.0.1:"+strconv.Itoa(port)+"/", nil)
	_, err = c.PortTransport().RoundTrip(req)
	var ce *errdefs.CodedError
	if !errors.As(err, &ce) || ce.Code != api.CodePortNotListening {
		t.Errorf("RoundTrip: %v, want PORT_NOT_LISTENING", err)
	}
}

type refusingDialer struct{}

func (refusingDialer) DialPort(ctx context.Context, port int) (net.Conn, error) {
	var nd net.Dialer
	return nd.DialContext(ctx, "tcp", "127.0.0.1:"+strconv.Itoa(port))
}

func (refusingDialer) Close() error { return nil }

// TestFastTransportBoundedHead: a service cannot make the daemon buffer an
// endless response head, or loop on informational answers.
func TestFastTransportBoundedHead(t *testing.T) {
	for name, answer := range map[string]func(net.Conn){
		"endless header": func(c net.Conn) {
			io.WriteString(c, "HTTP/1.1 200 OK\r\nX-Long: ")
			chunk := []byte(strings.Repeat("a", 64<<10))
			for {
				if _, err := c.Write(chunk); err != nil {
					return
				}
			}
		},
		"endless 1xx": func(c net.Conn) {
			for {
				if _, err := io.WriteString(c, "HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"); err != nil {
					return
				}
			}
		},
	} {
		t.Run(name, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			go func() {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				defer c.Close()
				buf := make([]byte, 4096)
				c.Read(buf) // the request
				answer(c)
			}()
			_, _, rt := fastClient(t)
			req, _ := http.NewRequest("GET", "http://"+ln.Addr().String()+"/", nil)
			done := make(chan error, 1)
			go func() {
				resp, err := rt.RoundTrip(req)
				if err == nil {
					resp.Body.Close()
				}
				done <- err
			}()
			select {
			case err := <-done:
				if err == nil {
					t.Fatal("RoundTrip succeeded")
				}
				t.Log(err)
			case <-time.After(20 * time.Second):
				t.Fatal("RoundTrip still reading")
			}
		})
	}
}

// TestFastTransportBytesAfterAnswer: a service that sends more than its
// answer (bytes after a body, a body after a HEAD answer) loses that
// connection, so the stray bytes are never read as the next answer.
func TestFastTransportBytesAfterAnswer(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	var conns atomic.Int64
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns.Add(1)
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					req, err := http.ReadRequest(br)
					if err != nil {
						return
					}
					answer := "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nfine"
					switch {
					case req.URL.Path == "/extra":
						answer = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nJUNK"
					case req.Method == "HEAD":
						answer = "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nJUNK"
					}
					if _, err := io.WriteString(c, answer); err != nil {
						return
					}
				}
			}()
		}
	}()
	u := "http://" + ln.Addr().String()
	_, _, rt := fastClient(t)
	for i, step := range []struct{ method, path, want string }{
		{"GET", "/", "fine"},
		{"GET", "/extra", "ok"},
		{"GET", "/", "fine"},
		{"HEAD", "/", ""},
		{"GET", "/", "fine"},
	} {
		time.Sleep(10 * time.Millisecond) // the stray bytes are there
		if _, body := fastGet(t, rt, step.method, u+step.path, nil); body != step.want {
			t.Fatalf("step %d, %s %s: %q, want %q", i, step.method, step.path, body, step.want)
		}
	}
	if n := conns.Load(); n != 3 {
		t.Errorf("%d connections, want 3 (the first kept, the other two lost)", n)
	}
}
