package server

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sandboxd/sandboxd/api"
	"github.com/sandboxd/sandboxd/internal/manager/managertest"
)

// TestFastPreviewRequest: the loop takes only heads its strict scan fully
// understands; everything else is left to net/http.
func TestFastPreviewRequest(t *testing.T) {
	s := newServer(Config{Preview: PreviewConfig{Domain: "preview.test"}})
	const host = "Host: 8080-box-tok.preview.test:9\r\n"
	ok := []string{
		"GET / HTTP/1.1\r\n" + host + "\r\n",
		"HEAD /a?b=c HTTP/1.1\r\n" + host + "Accept: */*\r\nConnection: Keep-Alive\r\nX-Empty:\r\n\r\n",
		"GET /x HTTP/1.1\r\nhost: 8080-box-tok.PREVIEW.test.\r\nUser-Agent: \t a\u00e9 \r\n\r\n",
		"GET /;x HTTP/1.1\r\n" + host + "\r\n",
	}
	bad := []string{
		"POST / HTTP/1.1\r\n" + host + "\r\n",
		"get / HTTP/1.1\r\n" + host + "\r\n",
		"GET / HTTP/1.0\r\n" + host + "\r\n",
		"GET http://x/ HTTP/1.1\r\n" + host + "\r\n",
		"GET * HTTP/1.1\r\n" + host + "\r\n",
		"GET /a b HTTP/1.1\r\n" + host + "\r\n",
		"GET /\x7f HTTP/1.1\r\n" + host + "\r\n",
		"GET /?a=%zz HTTP/1.1\r\n" + host + "\r\n",
		"GET / HTTP/1.1\r\n\r\n",
		"GET / HTTP/1.1\r\n" + host + host + "\r\n",
		"GET / HTTP/1.1\r\nHost: api.example\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: preview.test\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: 8080-box-tok.preview.test/x\r\n\r\n",
		"GET / HTTP/1.1\n" + host + "\r\n",
		"GET / HTTP/1.1\r\n" + host + "X-A: 1\n\r\n",
		"GET / HTTP/1.1\r\n" + host + "X-A: 1\r\n folded\r\n\r\n",
		"GET / HTTP/1.1\r\n" + host + "X A: 1\r\n\r\n",
		"GET / HTTP/1.1\r\n" + host + ": 1\r\n\r\n",
		"GET / HTTP/1.1\r\n" + host + "X-A: a\x00b\r\n\r\n",
		"GET / HTTP/1.1\r\n" + host + "X-A: a\rb\r\n\r\n",
		"GET / HTTP/1.1\r\n" + host + "Content-Length: 0\r\n\r\n",
		"GET / HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked\r\n\r\n",
		"GET / HTTP/1.1\r\n" + host + "Upgrade: websocket\r\n\r\n",
		"GET / HTTP/1.1\r\n" + host + "Expect: 100-continue\r\n\r\n",
		"GET / HTTP/1.1\r\n" + host + "TE: trailers\r\n\r\n",
		"GET / HTTP/1.1\r\n" + host + "Trailer: X\r\n\r\n",
		"GET / HTTP/1.1\r\n" + host + "Connection: close\r\n\r\n",
		"GET / HTTP/1.1\r\n" + host + "Connection: keep-alive, x-hop\r\n\r\n",
	}
	for _, h := range ok {
		req, label, _ := s.fastPreviewRequest([]byte(h), "127.0.0.1:1", context.Background())
		if req == nil || label != "8080-box-tok" {
			t.Errorf("%q: refused (label %q)", h, label)
		}
	}
	req, _, uri := s.fastPreviewRequest([]byte(ok[1]), "127.0.0.1:1", context.Background())
	if want, _ := previewFastURI(req); uri != want || uri != "/a?b=c" {
		t.Errorf("uri %q, previewFastURI %q", uri, want)
	}
	if req.Method != "HEAD" || req.URL.RawQuery != "b=c" || req.Host != "8080-box-tok.preview.test:9" ||
		req.Header.Get("Accept") != "*/*" || req.Header["Host"] != nil || req.RemoteAddr != "127.0.0.1:1" {
		t.Errorf("request %+v", req)
	}
	for _, h := range bad {
		if req, _, _ := s.fastPreviewRequest([]byte(h), "127.0.0.1:1", context.Background()); req != nil {
			t.Errorf("%q: taken", h)
		}
	}
}

// TestFastWriterParity: for the same handler calls, fastWriter sends what
// net/http's server sends: status, headers (Date aside), framing, body
// and trailers, for GET and HEAD.
func TestFastWriterParity(t *testing.T) {
	big := strings.Repeat("x", 5000)
	handlers := map[string]http.HandlerFunc{
		"nothing": func(w http.ResponseWriter, r *http.Request) {},
		"small":   func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "hello") },
		"json": func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(404)
			io.WriteString(w, `{"code":"NOT_FOUND"}`)
		},
		"length": func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", "2")
			io.WriteString(w, "ok")
		},
		"big": func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, big) },
		"newlines": func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("X-Lines", "a\r\nb\nc ")
			io.WriteString(w, "ok")
		},
		"bigCL": func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", "5000")
			io.WriteString(w, big)
		},
		"flushed": func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/event-stream")
			io.WriteString(w, "data: 1\n\n")
			http.NewResponseController(w).Flush()
			io.WriteString(w, "data: 2\n\n")
		},
		"trailers": func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Trailer", "X-Sum")
			w.WriteHeader(201)
			http.NewResponseController(w).Flush()
			io.WriteString(w, "body")
			w.Header().Set("X-Sum", "42")
			w.Header().Set(http.TrailerPrefix+"X-Late", "yes")
		},
		"noContent": func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", "3")
			w.WriteHeader(204)
		},
		"notModified": func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/plain")
			w.Header().Set("Etag", `"x"`)
			w.WriteHeader(304)
		},
		"ownDate": func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Date", "Mon, 01 Jan 2001 00:00:00 GMT")
			w.Header().Add("X-Multi", "a")
			w.Header().Add("X-Multi", "b\r\nInjected: 1")
		},
		"oddStatus": func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(599) },
		"smallTrailers": func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Trailer", "X-Sum")
			io.WriteString(w, "body")
			w.Header().Set("X-Sum", "42")
		},
		"overLength": func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", "2")
			io.WriteString(w, "ok")
			if _, err := io.WriteString(w, "more"); err != http.ErrContentLength && r.Method == "GET" {
				panic(fmt.Sprintf("write past Content-Length: %v", err))
			}
		},
		"lateHeader": func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(202)
			w.Header().Set("X-Late", "not sent")
			io.WriteString(w, "x")
		},
	}
	std := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		handlers[r.URL.Path[1:]](w, r)
	}))
	defer std.Close()
	for name, h := range handlers {
		for _, method := range []string{"GET", "HEAD"} {
			want := rawExchange(t, std.Listener.Addr().String(), method, "/"+name)
			var out bytes.Buffer
			var w fastWriter
			bw := bufio.NewWriter(&out)
			w.reset(bw, method == "HEAD")
			h(&w, httptest.NewRequest(method, "/"+name, nil))
			// finish fails when the connection must close after the
			// answer, as net/http closes it (a body longer than its
			// Content-Length).
			if err := w.finish(); (err != nil) != (name == "overLength" && method == "GET") {
				t.Errorf("%s %s: finish: %v", method, name, err)
			}
			got := readRaw(t, &out, method)
			if !reflect.DeepEqual(got, want) {
				t.Errorf("%s %s:\nfast %+v\nhttp %+v", method, name, got, want)
			}
		}
	}
}

// rawResponse is what a response sent, as compared by the parity tests.
type rawResponse struct {
	Status, Body     string
	Header, Trailer  http.Header
	ContentLength    int64
	TransferEncoding []string
	HasDate          bool
}

func readRaw(t *testing.T, r io.Reader, method string) rawResponse {
	t.Helper()
	resp, err := http.ReadResponse(bufio.NewReader(r), &http.Request{Method: method})
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	_, hasDate := resp.Header["Date"]
	if resp.Header.Get("Date") != "Mon, 01 Jan 2001 00:00:00 GMT" {
		resp.Header.Del("Date")
	}
	return rawResponse{resp.Status, string(b), resp.Header, resp.Trailer, resp.ContentLength, resp.TransferEncoding, hasDate}
}

func rawExchange(t *testing.T, addr, method, path string) rawResponse {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "%s %s HTTP/1.1\r\nHost: x\r\n\r\n", method, path)
	return readRaw(t, c, method)
}

// loopServer is a preview server on the handler's listener, and the port
// of a service on loopback that answers with the request's path, method
// and headers, or waits for its request's end at /hang.
type loopServer struct {
	l     *Listener
	addr  string
	host  string        // preview host of the service's port
	hung  chan struct{} // /hang: the service's request ended
	token string        // API token
	port  string        // the exposed port's token
}

func newLoopServer(t *testing.T) *loopServer {
	t.Helper()
	ls := &loopServer{hung: make(chan struct{}, 1), token: "test-token"}
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/hang" {
			select {
			case <-r.Context().Done():
				ls.hung <- struct{}{}
			case <-time.After(10 * time.Second): // the test fails, and does not hang
			}
			return
		}
		body, _ := io.ReadAll(r.Body)
		json.NewEncoder(w).Encode(map[string]string{"path": r.URL.Path, "method": r.Method, "body": string(body), "xff": r.Header.Get("X-Forwarded-For")})
	}))
	t.Cleanup(up.Close)
	env := managertest.New(t)
	h := New(Config{Manager: env.Manager, Token: ls.token, Metrics: env.Metrics, Preview: PreviewConfig{Domain: "preview.test"}})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ls.l = h.Listener(ln, &http.Server{ReadHeaderTimeout: 10 * time.Second})
	srv := &http.Server{Handler: h}
	go srv.Serve(ls.l)
	t.Cleanup(func() { srv.Close() })
	ls.addr = ln.Addr().String()
	port := up.Listener.Addr().(*net.TCPAddr).Port
	req, _ := http.NewRequest("POST", "http://"+ls.addr+"/v1/sandboxes/box/ports", strings.NewReader(`{"port":`+strconv.Itoa(port)+`}`))
	req.Header.Set("Authorization", "Bearer "+ls.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var p api.ExposedPort
	if err := json.NewDecoder(resp.Body).Decode(&p); err != nil || resp.StatusCode != 200 {
		t.Fatalf("expose: %d %v", resp.StatusCode, err)
	}
	ls.host = strconv.Itoa(port) + "-box-" + p.Token + ".preview.test"
	ls.port = p.Token
	return ls
}

// send writes raw requests on c and reads as many responses.
func exchange(t *testing.T, c net.Conn, br *bufio.Reader, raw string, methods ...string) []map[string]string {
	t.Helper()
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	var out []map[string]string
	for _, m := range methods {
		resp, err := http.ReadResponse(br, &http.Request{Method: m})
		if err != nil {
			t.Fatal(err)
		}
		var got map[string]string
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err := json.Unmarshal(b, &got); err != nil {
			got = map[string]string{"status": resp.Status, "raw": string(b)}
		}
		got["status"] = resp.Status
		out = append(out, got)
	}
	return out
}

// TestPreviewLoopConnection: on one connection, simple preview requests
// are served by the loop, pipelined ones in order; the first request
// with a body hands the connection to net/http, which serves it and the
// rest; API calls and split heads go to net/http from the start.
func TestPreviewLoopConnection(t *testing.T) {
	ls := newLoopServer(t)
	c, err := net.Dial("tcp", ls.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	br := bufio.NewReader(c)
	get := func(path string) string {
		return "GET " + path + " HTTP/1.1\r\nHost: " + ls.host + "\r\n\r\n"
	}
	got := exchange(t, c, br, get("/one"), "GET")
	if got[0]["path"] != "/one" || got[0]["xff"] != "127.0.0.1" || ls.l.served.Load() != 1 {
		t.Fatalf("first: %v (served %d)", got, ls.l.served.Load())
	}
	got = exchange(t, c, br, get("/two")+get("/three")+"HEAD /four HTTP/1.1\r\nHost: "+ls.host+"\r\n\r\n"+get("/five"), "GET", "GET", "HEAD", "GET")
	if got[0]["path"] != "/two" || got[1]["path"] != "/three" || got[2]["status"] != "200 OK" || got[3]["path"] != "/five" || ls.l.served.Load() != 5 {
		t.Fatalf("pipelined: %v (served %d)", got, ls.l.served.Load())
	}
	post := "POST /six HTTP/1.1\r\nHost: " + ls.host + "\r\nContent-Length: 4\r\n\r\nbody"
	got = exchange(t, c, br, post+get("/seven"), "POST", "GET")
	if got[0]["method"] != "POST" || got[0]["body"] != "body" || got[1]["path"] != "/seven" || ls.l.served.Load() != 5 {
		t.Fatalf("handed over: %v (served %d)", got, ls.l.served.Load())
	}

	// An API call: net/http's, with its authentication.
	c2, err := net.Dial("tcp", ls.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	got = exchange(t, c2, bufio.NewReader(c2), "GET /v1/sandboxes HTTP/1.1\r\nHost: "+ls.addr+"\r\n\r\n", "GET")
	if got[0]["status"] != "401 Unauthorized" {
		t.Fatalf("API call: %v", got)
	}

	// A head in two pieces: net/http reads it.
	c3, err := net.Dial("tcp", ls.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c3.Close()
	io.WriteString(c3, "GET /split HTTP/1.1\r\nHo")
	time.Sleep(20 * time.Millisecond)
	got = exchange(t, c3, bufio.NewReader(c3), "st: "+ls.host+"\r\n\r\n", "GET")
	if got[0]["path"] != "/split" || ls.l.served.Load() != 5 {
		t.Fatalf("split head: %v (served %d)", got, ls.l.served.Load())
	}

	// A wrong token, on the loop: the same error as net/http gives.
	bad := strings.Replace(ls.host, "-"+ls.port+".", "-wrongtoken.", 1)
	c4, err := net.Dial("tcp", ls.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c4.Close()
	got = exchange(t, c4, bufio.NewReader(c4), "GET / HTTP/1.1\r\nHost: "+bad+"\r\n\r\n", "GET")
	if !strings.HasPrefix(got[0]["status"], "404") || ls.l.served.Load() != 6 {
		t.Fatalf("bad host: %v (served %d)", got, ls.l.served.Load())
	}
}

// TestPreviewLoopClientGone: a client that goes away while the service
// is slow ends the service's request (as net/http's server does), and
// closing the listener ends connections waiting for their next request.
func TestPreviewLoopClientGone(t *testing.T) {
	ls := newLoopServer(t)
	c, err := net.Dial("tcp", ls.addr)
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(c, "GET /hang HTTP/1.1\r\nHost: "+ls.host+"\r\n\r\n")
	time.Sleep(2 * previewWatchAfter)
	c.Close()
	select {
	case <-ls.hung:
	case <-time.After(5 * time.Second):
		t.Fatal("the service's request did not end after the client left")
	}

	idle, err := net.Dial("tcp", ls.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	br := bufio.NewReader(idle)
	exchange(t, idle, br, "GET /x HTTP/1.1\r\nHost: "+ls.host+"\r\n\r\n", "GET")
	ls.l.Close()
	idle.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := br.ReadByte(); err != io.EOF {
		t.Fatalf("idle connection after Close: %v, want EOF", err)
	}
}

// TestPreviewLoopClose: Close ends a connection that has not sent its
// first head yet (not after the header timeout); a request being served
// when Close comes goes on, and still ends when its client leaves; and
// Shutdown waits for a request, then cancels it when its context ends.
func TestPreviewLoopClose(t *testing.T) {
	ls := newLoopServer(t)
	silent, err := net.Dial("tcp", ls.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	slow, err := net.Dial("tcp", ls.addr)
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(slow, "GET /hang HTTP/1.1\r\nHost: "+ls.host+"\r\n\r\n")
	time.Sleep(2 * previewWatchAfter) // the watch runs
	ls.l.Close()
	silent.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := silent.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("a connection without a request after Close: %v, want EOF", err)
	}
	select {
	case <-ls.hung:
		t.Fatal("Close ended a request being served")
	case <-time.After(100 * time.Millisecond):
	}
	slow.Close()
	select {
	case <-ls.hung:
	case <-time.After(5 * time.Second):
		t.Fatal("the client left after Close, and its service's request went on")
	}

	ls = newLoopServer(t)
	c, err := net.Dial("tcp", ls.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "GET /hang HTTP/1.1\r\nHost: "+ls.host+"\r\n\r\n")
	for ls.l.busy.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	if err := ls.l.Shutdown(ctx); err != context.DeadlineExceeded || time.Since(start) < 150*time.Millisecond {
		t.Fatalf("Shutdown with a request going on: %v after %v", err, time.Since(start))
	}
	select {
	case <-ls.hung:
	case <-time.After(5 * time.Second):
		t.Fatal("Shutdown's end did not end the request")
	}
}
