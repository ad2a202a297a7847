package agentclient

import (
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
	"github.com/sandboxd/sandboxd/internal/testutil"
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

// portServer serves h on loopback and counts the connections it accepts
// (conns) and those that ended (closed).
func portServer(t *testing.T, h http.HandlerFunc) (port int, conns *atomic.Int64, srv *httptest.Server) {
	port, conns, _, srv = portServerClosed(t, h)
	return port, conns, srv
}

func portServerClosed(t *testing.T, h http.HandlerFunc) (port int, conns, closed *atomic.Int64, srv *httptest.Server) {
	t.Helper()
	conns, closed = new(atomic.Int64), new(atomic.Int64)
	srv = httptest.NewUnstartedServer(h)
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		switch s {
		case http.StateNew:
			conns.Add(1)
		case http.StateClosed, http.StateHijacked:
			closed.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().(*net.TCPAddr).Port, conns, closed, srv
}

func portClient(t *testing.T) (*Client, *hostDialer, http.RoundTripper) {
	t.Helper()
	c := New("/nonexistent/agent.sock") // no agent: every dial goes through d
	d := &hostDialer{}
	if !c.SetPortDialer(d) {
		t.Fatal("SetPortDialer")
	}
	t.Cleanup(c.Close)
	return c, d, c.PortTransport()
}

func portGet(t *testing.T, rt http.RoundTripper, method, u string, body io.Reader) (*http.Response, string) {
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

func TestPortTransportReuse(t *testing.T) {
	port, conns, closed, _ := portServerClosed(t, func(w http.ResponseWriter, r *http.Request) {
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
	c, _, rt := portClient(t)
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
	if _, body := portGet(t, rt, "GET", base+"/chunked", nil); body != "chunk" {
		t.Errorf("chunked: %q", body)
	}
	if resp, body := portGet(t, rt, "HEAD", base+"/", nil); body != "" || resp.Header.Get("X-Method") != "HEAD" {
		t.Errorf("HEAD: %q %v", body, resp.Header)
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("%d connections for sequential requests, want 1 (kept alive)", n)
	}
	// Connection: close is honoured: the next request needs a new one.
	portGet(t, rt, "GET", base+"/close", nil)
	portGet(t, rt, "GET", base+"/", nil)
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
	portGet(t, rt, "GET", base+"/", nil)
	if n := conns.Load(); n != 3 {
		t.Errorf("%d connections after an unread body, want 3", n)
	}
	if _, body := portGet(t, rt, "POST", base+"/", strings.NewReader("x")); !strings.HasPrefix(body, "ok:") {
		t.Errorf("POST: %q", body)
	}
	// Close drops the idle connections: the service sees them closed.
	c.Close()
	deadline := time.Now().Add(5 * time.Second)
	for closed.Load() != conns.Load() && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n, m := closed.Load(), conns.Load(); n != m {
		t.Errorf("%d of %d connections closed after Close", n, m)
	}
}

// TestPortTransportServerClosedIdle: a kept connection the service closed
// in the meantime (its keep-alive timeout) costs a retry, not an error.
func TestPortTransportServerClosedIdle(t *testing.T) {
	port, conns, srv := portServer(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
	_, _, rt := portClient(t)
	base := "http://127.0.0.1:" + strconv.Itoa(port)
	portGet(t, rt, "GET", base+"/", nil)
	srv.CloseClientConnections()
	time.Sleep(50 * time.Millisecond)
	if _, body := portGet(t, rt, "GET", base+"/", nil); body != "ok" {
		t.Errorf("after the server closed the kept connection: %q", body)
	}
	if n := conns.Load(); n != 2 {
		t.Errorf("%d connections, want 2", n)
	}
}

// TestPortTransportCancel: a request whose context ends while the
// service has not answered returns at once, and its connection is not
// kept.
func TestPortTransportCancel(t *testing.T) {
	release := make(chan struct{})
	port, _, _ := portServer(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			select {
			case <-release:
			case <-r.Context().Done():
			}
		}
		io.WriteString(w, "ok")
	})
	defer close(release)
	_, _, rt := portClient(t)
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
	if _, body := portGet(t, rt, "GET", base+"/", nil); body != "ok" {
		t.Errorf("after a cancel: %q", body)
	}
}

// TestPortTransportNotListening: a refused connection is
// PORT_NOT_LISTENING.
func TestPortTransportNotListening(t *testing.T) {
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

// TestPortTransportBoundedHead: a service cannot make the daemon buffer an
// endless response head, or loop on informational answers.
func TestPortTransportBoundedHead(t *testing.T) {
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
			_, _, rt := portClient(t)
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

// TestPortTransportBytesAfterAnswer: a service that sends more than its
// answer (bytes after a body, a body after a HEAD answer) loses that
// connection, so the stray bytes are never read as the next answer
// (http.Transport closes an idle connection that receives anything).
func TestPortTransportBytesAfterAnswer(t *testing.T) {
	addr, conns := testutil.StrayBytesService(t)
	u := "http://" + addr
	_, _, rt := portClient(t)
	for i, step := range []struct{ method, path, want string }{
		{"GET", "/", "fine"},
		{"GET", "/extra", "ok"},
		{"GET", "/", "fine"},
		{"HEAD", "/", ""},
		{"GET", "/", "fine"},
	} {
		time.Sleep(10 * time.Millisecond) // the stray bytes are there
		if _, body := portGet(t, rt, step.method, u+step.path, nil); body != step.want {
			t.Fatalf("step %d, %s %s: %q, want %q", i, step.method, step.path, body, step.want)
		}
	}
	if n := conns.Load(); n != 3 {
		t.Errorf("%d connections, want 3 (the first kept, the other two lost)", n)
	}
}
