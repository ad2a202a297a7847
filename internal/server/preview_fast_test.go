package server_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"reflect"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sandboxd/sandboxd/internal/server"
)

// rawPreview sends the raw request head (without Host; "\r\n" between
// lines, none at the end) for preview host host to srv over a new
// connection and returns the response, its body read.
func rawPreview(t *testing.T, srv *httptest.Server, host, head string) (*http.Response, string) {
	t.Helper()
	c, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, head+"\r\nHost: "+host+"\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	method, _, _ := strings.Cut(head, " ")
	resp, err := http.ReadResponse(bufio.NewReader(c), &http.Request{Method: method})
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s: body: %v", head, err)
	}
	return resp, string(b)
}

// TestPreviewFastPathParity: what a simple GET or HEAD sends to the
// service and gets back through the fast path (no ReverseProxy) is what
// the ReverseProxy sends and gets back (the same request with "TE:
// trailers", which only the ReverseProxy takes), from trusted and
// untrusted peers: the same headers, spoofed proxy headers and the
// daemon's own stripped, hop-by-hop headers dropped both ways, trailers
// and streamed bodies passed on.
func TestPreviewFastPathParity(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := r.Header.Clone()
		h.Del("Te")
		h.Set("Host", r.Host)
		h.Set("X-Uri", r.RequestURI)
		w.Header().Set("Connection", "X-Hop")
		w.Header().Set("X-Hop", "dropped")
		w.Header().Set("Keep-Alive", "timeout=5")
		w.Header().Add("X-Multi", "a")
		w.Header().Add("X-Multi", "b")
		if r.URL.Query().Get("trailer") != "" {
			w.Header().Set("Trailer", "X-Sum")
		}
		if r.URL.Query().Get("stream") != "" {
			w.Header().Set("Content-Type", "text/event-stream")
			w.WriteHeader(200)
			for i := range 3 {
				io.WriteString(w, "data: "+strconv.Itoa(i)+"\n\n")
				w.(http.Flusher).Flush()
			}
		} else {
			b, _ := json.Marshal(h)
			if r.URL.Query().Get("trailer") == "" {
				w.Header().Set("Content-Length", strconv.Itoa(len(b)))
			}
			w.WriteHeader(201)
			w.Write(b)
		}
		if r.URL.Query().Get("trailer") != "" {
			w.Header().Set("X-Sum", "42")
			w.Header().Set(http.TrailerPrefix+"X-Late", "yes")
		}
	}))
	defer up.Close()
	port := up.Listener.Addr().(*net.TCPAddr).Port

	heads := []string{
		"GET /a/b?x=1&y=%20z HTTP/1.1",
		"GET /?trailer=1 HTTP/1.1",
		"GET /?stream=1 HTTP/1.1",
		"HEAD /h HTTP/1.1",
	}
	headers := "X-Forwarded-For: 6.6.6.6\r\nX-Forwarded-For: 7.7.7.7\r\nX-Forwarded-Proto: https\r\n" +
		"X-Forwarded-Host: spoof.example\r\nForwarded: for=6.6.6.6\r\nX-Real-Ip: 6.6.6.6\r\n" +
		"X-Sandboxd-Internal: 1\r\nConnection: keep-alive\r\nKeep-Alive: 300\r\n" +
		"Proxy-Authorization: Basic eA==\r\nUser-Agent: one\r\nUser-Agent: two\r\n" +
		"Cookie: a=1\r\nCookie: b=2\r\nX-Empty:\r\nX_Forwarded_For: 8.8.8.8\r\nX-Sandboxd_Id: x\r\nAccept:   text/html  "
	for _, tc := range []struct {
		name    string
		trusted []netip.Prefix
	}{{"untrusted", nil}, {"trusted", []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}} {
		t.Run(tc.name, func(t *testing.T) {
			srv := newPreviewServer(t, server.PreviewConfig{Domain: "preview.test", TrustedProxies: tc.trusted})
			p := expose(t, srv, "box", port, nil)
			host := strconv.Itoa(port) + "-box-" + p.Token + ".preview.test:1234"
			for _, h := range heads {
				fast, fastBody := rawPreview(t, srv, host, h+"\r\n"+headers)
				slow, slowBody := rawPreview(t, srv, host, h+"\r\n"+headers+"\r\nTE: trailers")
				if fast.StatusCode != slow.StatusCode || fastBody != slowBody {
					t.Errorf("%s: fast %d %q\nslow %d %q", h, fast.StatusCode, fastBody, slow.StatusCode, slowBody)
				}
				for _, r := range []*http.Response{fast, slow} {
					r.Header.Del("Date")
				}
				if !reflect.DeepEqual(fast.Header, slow.Header) || !reflect.DeepEqual(fast.Trailer, slow.Trailer) {
					t.Errorf("%s: fast %v %v\nslow %v %v", h, fast.Header, fast.Trailer, slow.Header, slow.Trailer)
				}
				if fast.Header.Get("X-Hop") != "" || fast.Header.Get("Keep-Alive") != "" || len(fast.Header["X-Multi"]) != 2 {
					t.Errorf("%s: response headers %v", h, fast.Header)
				}
				if strings.Contains(h, "trailer") && (fast.Trailer.Get("X-Sum") != "42" || fast.Trailer.Get("X-Late") != "yes") {
					t.Errorf("%s: trailers %v", h, fast.Trailer)
				}
				if strings.Contains(h, "stream") && fastBody != "data: 0\n\ndata: 1\n\ndata: 2\n\n" {
					t.Errorf("%s: body %q", h, fastBody)
				}
				if !strings.HasPrefix(h, "GET /a") {
					continue
				}
				var got http.Header
				if err := json.Unmarshal([]byte(fastBody), &got); err != nil {
					t.Fatalf("%s: %v", fastBody, err)
				}
				want := map[string]string{
					"Host": host, "X-Uri": "/a/b?x=1&y=%20z", "X-Sandboxd-Internal": "", "Keep-Alive": "",
					"Proxy-Authorization": "", "Connection": "", "User-Agent": "one", "Cookie": "a=1, b=2",
					"X-Empty": "", "Accept": "text/html",
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
			}
		})
	}
}

// BenchmarkPreviewProxy: a small GET through a preview URL (in-process
// daemon, agent tunnel and service) on the fast path and, with "TE:
// trailers" (which only the ReverseProxy takes), on the ReverseProxy;
// "cpu-us/op" is this process's CPU time per request.
//
//	go test -run '^$' -bench BenchmarkPreviewProxy -benchmem ./internal/server/
func BenchmarkPreviewProxy(b *testing.B) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		w.Header().Set("Content-Length", "2")
		io.WriteString(w, "ok")
	}))
	defer up.Close()
	port := up.Listener.Addr().(*net.TCPAddr).Port
	srv := newPreviewServer(b, server.PreviewConfig{Domain: "preview.test"})
	p := expose(b, srv, "box", port, nil)
	host := strconv.Itoa(port) + "-box-" + p.Token + ".preview.test"
	for _, bc := range []struct {
		name string
		hdr  http.Header
	}{{"fast", http.Header{}}, {"reverseproxy", http.Header{"Te": {"trailers"}}}} {
		b.Run(bc.name, func(b *testing.B) {
			c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 8}}
			defer c.CloseIdleConnections()
			req, _ := http.NewRequest("GET", srv.URL+"/x?a=1", nil)
			req.Host = host
			req.Header = bc.hdr
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
		})
	}
}

// processCPU is this process's CPU time (user and system) so far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkPreviewLoop: a small GET through a preview URL on the
// daemon's own connection loop, with a client and a service that only
// write fixed bytes and read what comes, so that what it counts
// (allocs/op, cpu-us/op) is nearly all the daemon's.
//
//	go test -run '^$' -bench BenchmarkPreviewLoop -benchmem ./internal/server/
func BenchmarkPreviewLoop(b *testing.B) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	const answer = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\nDate: Thu, 26 Nov 2026 02:00:00 GMT\r\n\r\nok"
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				buf := make([]byte, 4096)
				var last [4]byte // the last bytes read, across reads
				for {
					n, err := c.Read(buf)
					if err != nil {
						return
					}
					for _, b := range buf[:n] {
						last = [4]byte{last[1], last[2], last[3], b}
						if last == [4]byte{'\r', '\n', '\r', '\n'} {
							if _, err := io.WriteString(c, answer); err != nil {
								return
							}
						}
					}
				}
			}()
		}
	}()
	port := ln.Addr().(*net.TCPAddr).Port
	srv := newPreviewServer(b, server.PreviewConfig{Domain: "preview.test"})
	p := expose(b, srv, "box", port, nil)
	req := []byte("GET /x?a=1 HTTP/1.1\r\nHost: " + strconv.Itoa(port) + "-box-" + p.Token + ".preview.test\r\n" +
		"User-Agent: bench\r\nAccept-Encoding: gzip\r\n\r\n")
	c, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Minute)) // a stall fails
	buf := make([]byte, 4096)
	b.ReportAllocs()
	cpu0 := processCPU()
	for b.Loop() {
		if _, err := c.Write(req); err != nil {
			b.Fatal(err)
		}
		// The daemon's answer: its head, then the body "ok".
		n := 0
		for !bytes.HasSuffix(buf[:n], []byte("\r\n\r\nok")) {
			m, err := c.Read(buf[n:])
			if err != nil {
				b.Fatalf("after %q: %v", buf[:n], err)
			}
			if n += m; n == len(buf) {
				b.Fatalf("answer %q...", buf[:n])
			}
		}
		if !bytes.HasPrefix(buf[:n], []byte("HTTP/1.1 200 ")) {
			b.Fatalf("answer %q", buf[:n])
		}
	}
	b.ReportMetric(float64((processCPU()-cpu0).Microseconds())/float64(b.N), "cpu-us/op")
}
