package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/sandboxd/sandboxd/api"
	"github.com/sandboxd/sandboxd/internal/cli"
	"github.com/sandboxd/sandboxd/sandbox"
)

// previewServer is a small service for the preview tests, Python standard
// library only (HTTP/1.1 with keep-alive): /echo returns a POST's body,
// /sse streams four events, each after the one before was acknowledged
// with a GET of /sse/next (or "timeout" after 30 s without), /redirect
// answers 302, /headers
// returns the request's headers as JSON, /zeros/N sends N zero bytes, POST
// /sha256 returns the SHA-256 of the body, /ws is a WebSocket echo (RFC
// 6455, enough of it for text and binary frames), anything else 200 "hello
// from PORT".
const previewServer = `
import base64, hashlib, json, struct, sys, threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

NEXT = threading.Semaphore(0)

class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a): pass
    def reply(self, code, body, ctype="text/plain", extra=()):
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in extra: self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)
    def do_POST(self):
        n = int(self.headers.get("Content-Length", "0"))
        if self.path == "/sha256":
            h = hashlib.sha256()
            while n > 0:
                chunk = self.rfile.read(min(n, 1 << 20))
                if not chunk: break
                h.update(chunk)
                n -= len(chunk)
            return self.reply(200, h.hexdigest().encode())
        body = self.rfile.read(n)
        self.reply(200, body, "application/octet-stream", [("X-Method", self.command)])
    do_PUT = do_POST
    def do_GET(self):
        if self.path == "/sse":
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Connection", "close")
            self.end_headers()
            for i in range(4):
                self.wfile.write(("event: tick\ndata: %d\n\n" % i).encode())
                self.wfile.flush()
                if i < 3 and not NEXT.acquire(timeout=30):
                    self.wfile.write(b"event: tick\ndata: timeout\n\n")
                    break
            self.close_connection = True
        elif self.path == "/sse/next":
            NEXT.release()
            self.reply(200, b"ok")
        elif self.path == "/redirect":
            self.reply(302, b"", extra=[("Location", "/target?x=1"), ("Set-Cookie", "a=b; Path=/")])
        elif self.path == "/absolute-redirect":
            self.reply(301, b"", extra=[("Location", "http://elsewhere.invalid/x")])
        elif self.path == "/headers":
            self.reply(200, json.dumps({k: self.headers.get_all(k) for k in self.headers.keys()}).encode(), "application/json")
        elif self.path.startswith("/zeros/"):
            n = int(self.path[len("/zeros/"):])
            self.send_response(200)
            self.send_header("Content-Length", str(n))
            self.end_headers()
            block = bytes(1 << 20)
            while n > 0:
                k = min(n, len(block))
                self.wfile.write(block[:k])
                n -= k
        elif self.path == "/ws":
            self.websocket()
        else:
            self.reply(200, b"hello from %d" % self.server.server_port)
    def websocket(self):
        key = self.headers["Sec-WebSocket-Key"]
        accept = base64.b64encode(hashlib.sha1((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()).decode()
        self.send_response(101)
        self.send_header("Upgrade", "websocket")
        self.send_header("Connection", "Upgrade")
        self.send_header("Sec-WebSocket-Accept", accept)
        self.end_headers()
        self.wfile.flush()
        self.close_connection = True
        r = self.rfile
        while True:
            h = r.read(2)
            if len(h) < 2: return
            op, n = h[0] & 0x0f, h[1] & 0x7f
            if n == 126: n = struct.unpack(">H", r.read(2))[0]
            elif n == 127: n = struct.unpack(">Q", r.read(8))[0]
            mask = r.read(4) if h[1] & 0x80 else b"\0\0\0\0"
            data = bytearray(r.read(n))
            for i in range(n): data[i] ^= mask[i % 4]
            if op == 9: op = 10
            head = bytes([0x80 | op])
            if n < 126: head += bytes([n])
            elif n < 65536: head += bytes([126]) + struct.pack(">H", n)
            else: head += bytes([127]) + struct.pack(">Q", n)
            self.wfile.write(head + bytes(data))
            if op == 8: return

ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
`

// startPreviewServer writes previewServer into sb and starts it on port.
func startPreviewServer(t *testing.T, sb *sandbox.Sandbox, port int) {
	t.Helper()
	ctx := ctxT(t, time.Minute)
	if _, err := sb.WriteFile(ctx, "/workspace/preview_server.py", []byte(previewServer), nil); err != nil {
		t.Fatal(err)
	}
	p, err := sb.StartProcess(ctx, "exec python3 /workspace/preview_server.py "+strconv.Itoa(port), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.WaitForPort(ctx, port, &sandbox.PortWaitOptions{Timeout: 30 * time.Second}); err != nil {
		t.Fatalf("server on %d: %v", port, err)
	}
}

// previewClient sends every request to the daemon's address, whatever
// the URL's host (so *.localhost needs no resolver), and follows no
// redirect.
func previewClient(d *Daemon) *http.Client {
	tr := &http.Transport{
		Proxy: nil,
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var dd net.Dialer
			return dd.DialContext(ctx, network, strings.TrimPrefix(d.URL, "http://"))
		},
		DisableCompression: true,
	}
	return &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// previewGet GETs u and returns the status and body.
func previewGet(t *testing.T, c *http.Client, u string) (int, string) {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctxT(t, time.Minute), http.MethodGet, u, nil)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// wantPreview checks that GET u answers status with the wire code (if
// code is set) or with body (if code is empty).
func wantPreview(t *testing.T, c *http.Client, u string, status int, code, body string) {
	t.Helper()
	got, b := previewGet(t, c, u)
	if got != status {
		t.Fatalf("GET %s: status %d (%s), want %d", u, got, b, status)
	}
	if code == "" {
		if b != body {
			t.Fatalf("GET %s: body %q, want %q", u, b, body)
		}
		return
	}
	var e api.Error
	if err := json.Unmarshal([]byte(b), &e); err != nil || e.Code != code {
		t.Fatalf("GET %s: body %s, want code %s", u, b, code)
	}
}

// withHost returns u with its host's first label replaced.
func withLabel(t *testing.T, u, label string) string {
	t.Helper()
	p, err := url.Parse(u)
	if err != nil {
		t.Fatal(err)
	}
	_, rest, _ := strings.Cut(p.Host, ".")
	p.Host = label + "." + rest
	return p.String()
}

// TestPreviewURL: a python http.server started as a background process
// is reached through its preview URL (no published port, no resolver);
// the port and token rules; API calls are never served on a preview host.
func TestPreviewURL(t *testing.T) {
	t.Parallel()
	d := StartDaemon(t)
	ctx := ctxT(t, 3*time.Minute)
	sb := d.Client.Get("pv-http")
	mustExec(t, sb, "mkdir -p /workspace/site")
	if _, err := sb.WriteFile(ctx, "/workspace/site/hello.txt", []byte("hello preview\n"), nil); err != nil {
		t.Fatal(err)
	}
	p, err := sb.StartProcess(ctx, "exec python3 -m http.server 8000 --bind 127.0.0.1", &sandbox.ProcessOptions{Cwd: "/workspace/site"})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.WaitForPort(ctx, 8000, &sandbox.PortWaitOptions{Mode: "http", Timeout: 30 * time.Second}); err != nil {
		t.Fatal(err)
	}
	exp, err := sb.ExposePort(ctx, 8000, &sandbox.ExposePortOptions{Name: "web"})
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`^http://8000-pv-http-([a-z0-9_]{16})\.localhost:\d+/$`)
	if m := re.FindStringSubmatch(exp.ExposedAt); m == nil || m[1] != exp.Token || exp.Port != 8000 || exp.Name != "web" {
		t.Fatalf("exposed = %+v", exp)
	}
	c := previewClient(d)
	wantPreview(t, c, exp.ExposedAt+"hello.txt", 200, "", "hello preview\n")
	// The SDK's own client for preview URLs, which Go cannot resolve.
	wantPreview(t, d.Client.PreviewHTTPClient(), exp.ExposedAt+"hello.txt", 200, "", "hello preview\n")
	// The host is case-insensitive and may carry the daemon's port or not.
	upper := strings.Replace(exp.ExposedAt, "pv-http", "PV-HTTP", 1)
	wantPreview(t, c, upper+"hello.txt", 200, "", "hello preview\n")
	noPort := regexp.MustCompile(`:\d+/$`).ReplaceAllString(exp.ExposedAt, "/")
	wantPreview(t, c, noPort+"hello.txt", 200, "", "hello preview\n")

	// Exposing again keeps the token (and the name); another token is a
	// conflict; bad ports and tokens are refused.
	again, err := sb.ExposePort(ctx, 8000, nil)
	if err != nil || again.Token != exp.Token || again.Name != "web" {
		t.Fatalf("re-expose = %+v, %v; want token %s", again, err, exp.Token)
	}
	if _, err := sb.ExposePort(ctx, 8000, &sandbox.ExposePortOptions{Token: "other"}); !errors.Is(err, sandbox.ErrPortAlreadyExposed) {
		t.Errorf("re-expose with another token: %v, want ErrPortAlreadyExposed", err)
	}
	if _, err := sb.ExposePort(ctx, 8000, &sandbox.ExposePortOptions{Token: exp.Token}); err != nil {
		t.Errorf("re-expose with its own token: %v", err)
	}
	for _, port := range []int{0, 80, 1023, 65536} {
		if _, err := sb.ExposePort(ctx, port, nil); !errors.Is(err, sandbox.ErrInvalidPort) {
			t.Errorf("expose %d: %v, want ErrInvalidPort", port, err)
		}
	}
	for _, tok := range []string{"UPPER", "has-dash", "seventeen_chars_x", "sp ace"} {
		if _, err := sb.ExposePort(ctx, 8001, &sandbox.ExposePortOptions{Token: tok}); !errors.Is(err, sandbox.ErrValidation) {
			t.Errorf("token %q: %v, want ErrValidation", tok, err)
		}
	}
	custom, err := sb.ExposePort(ctx, 8002, &sandbox.ExposePortOptions{Token: "my_token_1"})
	if err != nil || custom.Token != "my_token_1" || !strings.HasPrefix(custom.ExposedAt, "http://8002-pv-http-my_token_1.localhost:") {
		t.Fatalf("custom token: %+v, %v", custom, err)
	}
	// Nothing listens on 8002 yet: 502 with a clear message.
	status, body := previewGet(t, c, custom.ExposedAt)
	if status != http.StatusBadGateway || !strings.Contains(body, api.CodePortNotListening) || !strings.Contains(body, "nothing is listening on port 8002") {
		t.Errorf("nothing listening: %d %s", status, body)
	}
	ports, err := sb.GetExposedPorts(ctx)
	if err != nil || len(ports) != 2 || ports[0].Port != 8000 || ports[1].Port != 8002 || ports[0].ExposedAt != exp.ExposedAt {
		t.Errorf("ports = %+v, %v", ports, err)
	}

	// Wrong token: 404 INVALID_TOKEN; port not exposed: 404; a host under
	// the preview domain that is no preview URL: 404.
	wantPreview(t, c, withLabel(t, exp.ExposedAt, "8000-pv-http-wrongtoken"), 404, api.CodeInvalidToken, "")
	wantPreview(t, c, withLabel(t, exp.ExposedAt, "8000-pv-http-"+exp.Token[:15]), 404, api.CodeInvalidToken, "")
	wantPreview(t, c, withLabel(t, exp.ExposedAt, "8003-pv-http-"+exp.Token), 404, api.CodePortNotExposed, "")
	wantPreview(t, c, withLabel(t, exp.ExposedAt, "8000-nosuch-"+exp.Token), 404, api.CodePortNotExposed, "")
	wantPreview(t, c, withLabel(t, exp.ExposedAt, "notapreview"), 404, api.CodeNotFound, "")

	// An API call on a preview host, even with the API token, is preview
	// traffic: it goes to the sandbox's service, never to the API.
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, exp.ExposedAt+"v1/sandboxes", nil)
	req.Header.Set("Authorization", "Bearer "+d.Token)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 404 || strings.Contains(string(b), `"sandboxes"`) {
		t.Errorf("API path on a preview host: %d %s", resp.StatusCode, b)
	}
	if list, err := d.Client.List(ctx, sandbox.ListOptions{}); err != nil || len(list) != 1 {
		t.Errorf("the API itself still works: %v %v", list, err)
	}

	// Unexpose: 404 from then on; unexposing again succeeds.
	if err := sb.UnexposePort(ctx, 8000); err != nil {
		t.Fatal(err)
	}
	if err := sb.UnexposePort(ctx, 8000); err != nil {
		t.Errorf("second unexpose: %v", err)
	}
	wantPreview(t, c, exp.ExposedAt+"hello.txt", 404, api.CodePortNotExposed, "")
}

// TestPreviewProxy: bodies both ways, WebSocket, live SSE, redirects and
// forwarding headers through a preview URL.
func TestPreviewProxy(t *testing.T) {
	t.Parallel()
	d := StartDaemon(t)
	ctx := ctxT(t, 3*time.Minute)
	sb := d.Client.Get("pv-proxy")
	startPreviewServer(t, sb, 8080)
	exp, err := sb.ExposePort(ctx, 8080, nil)
	if err != nil {
		t.Fatal(err)
	}
	c := previewClient(d)

	t.Run("post echo", func(t *testing.T) {
		body := make([]byte, 3<<20+17)
		_, _ = rand.Read(body)
		for _, method := range []string{"POST", "PUT"} {
			req, _ := http.NewRequestWithContext(ctx, method, exp.ExposedAt+"echo", bytes.NewReader(body))
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil || resp.StatusCode != 200 || !bytes.Equal(got, body) || resp.Header.Get("X-Method") != method {
				t.Fatalf("%s echo: %d, %d bytes (want %d), %v, X-Method %q", method, resp.StatusCode, len(got), len(body), err, resp.Header.Get("X-Method"))
			}
		}
	})

	t.Run("websocket", func(t *testing.T) {
		wsURL := "ws" + strings.TrimPrefix(exp.ExposedAt, "http") + "ws"
		conn, _, err := websocket.Dial(ctx, wsURL, &websocket.DialOptions{HTTPClient: c})
		if err != nil {
			t.Fatal(err)
		}
		defer conn.CloseNow()
		conn.SetReadLimit(1 << 20)
		for i, msg := range [][]byte{[]byte("hello"), bytes.Repeat([]byte("x"), 70000), {0, 1, 2, 255}} {
			typ := websocket.MessageText
			if i == 2 {
				typ = websocket.MessageBinary
			}
			if err := conn.Write(ctx, typ, msg); err != nil {
				t.Fatal(err)
			}
			gotTyp, got, err := conn.Read(ctx)
			if err != nil || gotTyp != typ || !bytes.Equal(got, msg) {
				t.Fatalf("echo %d: %v %d bytes %v", i, gotTyp, len(got), err)
			}
		}
		if err := conn.Close(websocket.StatusNormalClosure, "bye"); err != nil {
			t.Errorf("close: %v", err)
		}
	})

	t.Run("sse live", func(t *testing.T) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, exp.ExposedAt+"sse", nil)
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if ct := resp.Header.Get("Content-Type"); resp.StatusCode != 200 || ct != "text/event-stream" {
			t.Fatalf("sse: %d %q", resp.StatusCode, ct)
		}
		// The server sends an event only once the client has the one
		// before (and says so at /sse/next): each must arrive while the
		// stream is open, as sent. Held back, the next is "timeout".
		n := 0
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			if !strings.HasPrefix(sc.Text(), "data: ") {
				continue
			}
			if want := "data: " + strconv.Itoa(n); sc.Text() != want {
				t.Fatalf("event %d: %q, want %q: buffered, not live", n, sc.Text(), want)
			}
			if n++; n < 4 {
				wantPreview(t, c, exp.ExposedAt+"sse/next", 200, "", "ok")
			}
		}
		if n != 4 {
			t.Fatalf("got %d events, want 4 (%v)", n, sc.Err())
		}
	})

	t.Run("redirects pass through", func(t *testing.T) {
		for path, want := range map[string]string{"redirect": "/target?x=1", "absolute-redirect": "http://elsewhere.invalid/x"} {
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, exp.ExposedAt+path, nil)
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode/100 != 3 || resp.Header.Get("Location") != want {
				t.Errorf("%s: %d Location %q, want %q", path, resp.StatusCode, resp.Header.Get("Location"), want)
			}
			if path == "redirect" && resp.Header.Get("Set-Cookie") != "a=b; Path=/" {
				t.Errorf("Set-Cookie %q", resp.Header.Get("Set-Cookie"))
			}
		}
	})

	t.Run("forwarding headers", func(t *testing.T) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, exp.ExposedAt+"headers", nil)
		req.Header.Set("X-Forwarded-For", "6.6.6.6")
		req.Header.Set("X-Forwarded-Host", "evil.example")
		req.Header.Set("X-Forwarded-Proto", "https")
		req.Header.Set("Forwarded", "for=6.6.6.6")
		req.Header.Set("X-Real-Ip", "6.6.6.6")
		req.Header.Set("X-Sandboxd-Sandbox", "other")
		req.Header.Set("Authorization", "Basic dXNlcjpwdw==") // the service's own auth passes
		req.Header.Set("X-Custom", "kept")
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var h map[string][]string
		err = json.NewDecoder(resp.Body).Decode(&h)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		u, _ := url.Parse(exp.ExposedAt)
		want := map[string]string{
			"X-Forwarded-For": "127.0.0.1", "X-Forwarded-Host": u.Host, "X-Forwarded-Proto": "http",
			"Host": u.Host, "Authorization": "Basic dXNlcjpwdw==", "X-Custom": "kept",
		}
		for k, v := range want {
			if got := h[k]; len(got) != 1 || got[0] != v {
				t.Errorf("%s: %q, want %q", k, got, v)
			}
		}
		for _, k := range []string{"Forwarded", "X-Real-Ip", "X-Sandboxd-Sandbox"} {
			if got, ok := h[k]; ok {
				t.Errorf("spoofed %s passed: %q", k, got)
			}
		}
	})
}

// agentHostPid returns the host pid of the agent (PID 1) of sb: it finds a
// marker process started in sb and walks up to its namespace's init.
func agentHostPid(t testing.TB, sb *sandbox.Sandbox, marker string) int {
	t.Helper()
	pid := hostPidOf(t, marker)
	for range 64 {
		status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
		if err != nil {
			t.Fatal(err)
		}
		var ns []string
		var ppid int
		for _, line := range strings.Split(string(status), "\n") {
			if v, ok := strings.CutPrefix(line, "NSpid:"); ok {
				ns = strings.Fields(v)
			}
			if v, ok := strings.CutPrefix(line, "PPid:"); ok {
				ppid, _ = strconv.Atoi(strings.TrimSpace(v))
			}
		}
		if len(ns) > 1 && ns[len(ns)-1] == "1" {
			return pid
		}
		pid = ppid
	}
	t.Fatalf("no init above the process %q of %s", marker, sb.ID())
	return 0
}

// hostPidOf returns the host pid of the one process whose command line
// contains marker, waiting for it to appear.
func hostPidOf(t testing.TB, marker string) int {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		dirs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
		for _, f := range dirs {
			b, err := os.ReadFile(f)
			if err == nil && bytes.Contains(b, []byte(marker)) && !bytes.Contains(b, []byte("test.run")) {
				pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(f)))
				return pid
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no process with %q in its command line", marker)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestPreviewLifecycle: a preview URL after a container restart (410 until
// exposed again, same token), across a daemon restart (still works), and
// after destroy (404, the sandbox is not recreated).
func TestPreviewLifecycle(t *testing.T) {
	t.Parallel()
	d := StartDaemon(t)
	ctx := ctxT(t, 4*time.Minute)
	sb := d.Client.Get("pv-life")
	startPreviewServer(t, sb, 8080)
	exp, err := sb.ExposePort(ctx, 8080, &sandbox.ExposePortOptions{Name: "app"})
	if err != nil {
		t.Fatal(err)
	}
	c := previewClient(d)
	wantPreview(t, c, exp.ExposedAt, 200, "", "hello from 8080")

	// The daemon restarts; the container runs on: same URL, same answer.
	d.Restart()
	c, sb = previewClient(d), d.Client.Get("pv-life")
	wantPreview(t, c, exp.ExposedAt, 200, "", "hello from 8080")
	if ports, err := sb.GetExposedPorts(ctx); err != nil || len(ports) != 1 || ports[0].Token != exp.Token || ports[0].Name != "app" {
		t.Fatalf("ports after daemon restart: %+v %v", ports, err)
	}

	// The container dies: 410, and preview traffic does not start it.
	marker := "pv-life-marker-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	if _, err := sb.StartProcess(ctx, "exec -a "+marker+" sleep 3600", nil); err != nil {
		t.Fatal(err)
	}
	agent := agentHostPid(t, sb, marker)
	if p, err := os.FindProcess(agent); err == nil {
		_ = p.Kill()
	}
	waitSandboxStatus(t, sb, api.StatusStopped)
	wantPreview(t, c, exp.ExposedAt, 410, api.CodeStalePreviewURL, "")
	if info, err := sb.Info(ctx); err != nil || info.Status != api.StatusStopped {
		t.Fatalf("preview traffic woke the sandbox: %+v %v", info, err)
	}
	// Started again (by an API call): still 410 until exposed again.
	startPreviewServer(t, sb, 8080)
	wantPreview(t, c, exp.ExposedAt, 410, api.CodeStalePreviewURL, "")
	again, err := sb.ExposePort(ctx, 8080, nil)
	if err != nil || again.Token != exp.Token || again.ExposedAt != exp.ExposedAt && !sameButPort(again.ExposedAt, exp.ExposedAt) {
		t.Fatalf("re-expose: %+v %v; want token %s", again, err, exp.Token)
	}
	wantPreview(t, c, exp.ExposedAt, 200, "", "hello from 8080")

	// Destroyed: 404, and the sandbox is not created again.
	if err := sb.Destroy(ctx); err != nil {
		t.Fatal(err)
	}
	wantPreview(t, c, exp.ExposedAt, 404, api.CodePortNotExposed, "")
	if _, err := sb.Info(ctx); !errors.Is(err, sandbox.ErrSandboxNotFound) {
		t.Fatalf("after destroy and a preview request: %v, want ErrSandboxNotFound", err)
	}
	// A new sandbox of the same ID does not inherit the old URL.
	if _, err := d.Client.Create(ctx, sb.ID(), nil); err == nil {
		wantPreview(t, c, exp.ExposedAt, 404, api.CodePortNotExposed, "")
	}
}

// sameButPort reports whether two URLs differ at most in the port (the
// daemon listens on a new port after a restart in these tests).
func sameButPort(a, b string) bool {
	re := regexp.MustCompile(`:\d+/`)
	return re.ReplaceAllString(a, "/") == re.ReplaceAllString(b, "/")
}

// waitSandboxStatus waits until sb reports status.
func waitSandboxStatus(t *testing.T, sb *sandbox.Sandbox, status string) {
	t.Helper()
	ctx := ctxT(t, 30*time.Second)
	for {
		info, err := sb.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if info.Status == status {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("status %s, want %s", info.Status, status)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// TestPreviewLargeBodies streams 1 GiB down and 1 GiB up through a preview
// URL; the daemon (in this process) stays within a few MiB.
//
// Not parallel: it measures this process's peak memory, which other tests'
// daemons (in this process too) would raise.
func TestPreviewLargeBodies(t *testing.T) {
	const size = int64(1 << 30)
	d := StartDaemon(t)
	ctx := ctxT(t, 10*time.Minute)
	sb := d.Client.Get("pv-big")
	startPreviewServer(t, sb, 8080)
	exp, err := sb.ExposePort(ctx, 8080, nil)
	if err != nil {
		t.Fatal(err)
	}
	c := previewClient(d)
	resetHWM(t)
	before := vmHWM(t, "/proc/self/status")

	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, exp.ExposedAt+"zeros/"+strconv.FormatInt(size, 10), nil)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	n, err := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil || n != size || resp.StatusCode != 200 {
		t.Fatalf("download: %d, %d bytes of %d, %v", resp.StatusCode, n, size, err)
	}

	h := sha256.New()
	req, _ = http.NewRequestWithContext(ctx, http.MethodPost, exp.ExposedAt+"sha256", io.TeeReader(io.LimitReader(newPattern(), size), h))
	req.ContentLength = size
	resp, err = c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if want := fmt.Sprintf("%x", h.Sum(nil)); resp.StatusCode != 200 || string(got) != want {
		t.Fatalf("upload: %d, sha256 inside %q, want %s", resp.StatusCode, got, want)
	}
	if grew := vmHWM(t, "/proc/self/status") - before; grew > 64<<10 {
		t.Errorf("this process (daemon and client) grew %d KiB streaming %d MiB both ways", grew, size>>20)
	}
}

// TestPreviewCLI: sandbox expose, ports and unexpose against a real
// daemon.
func TestPreviewCLI(t *testing.T) {
	t.Parallel()
	d := StartDaemon(t)
	sb := d.Client.Get("pv-cli")
	startPreviewServer(t, sb, 8080)
	run := func(args ...string) (string, string, int) {
		var out, errb bytes.Buffer
		args = append([]string{"--url", d.URL, "--token", d.Token}, args...)
		code := cli.Main(ctxT(t, time.Minute), args, strings.NewReader(""), &out, &errb)
		return out.String(), errb.String(), code
	}
	out, stderr, code := run("expose", "pv-cli", "8080", "--name", "web", "--preview-token", "cli_tok")
	u := strings.TrimSpace(out)
	if code != 0 || !strings.HasPrefix(u, "http://8080-pv-cli-cli_tok.localhost:") {
		t.Fatalf("expose: %q %q %d", out, stderr, code)
	}
	c := previewClient(d)
	wantPreview(t, c, u, 200, "", "hello from 8080")
	if out, _, code := run("ports", "pv-cli"); code != 0 || !regexp.MustCompile(`(?m)^8080\s+web\s+`+regexp.QuoteMeta(u)+`$`).MatchString(out) {
		t.Errorf("ports: %q %d", out, code)
	}
	if _, stderr, code := run("expose", "pv-cli", "80"); code != 1 || !strings.Contains(stderr, api.CodeInvalidPort) {
		t.Errorf("expose 80: %q %d", stderr, code)
	}
	if _, stderr, code := run("expose", "pv-cli", "8080", "--preview-token", "other"); code != 1 || !strings.Contains(stderr, api.CodePortAlreadyExposed) {
		t.Errorf("expose with another token: %q %d", stderr, code)
	}
	if _, _, code := run("expose", "pv-cli", "http"); code != 2 {
		t.Errorf("expose of a port that is no number: exit %d, want 2", code)
	}
	if _, stderr, code := run("unexpose", "pv-cli", "8080"); code != 0 {
		t.Fatalf("unexpose: %q %d", stderr, code)
	}
	wantPreview(t, c, u, 404, api.CodePortNotExposed, "")
	if out, _, code := run("ports", "pv-cli", "--json"); code != 0 || strings.TrimSpace(out) != "[]" {
		t.Errorf("ports --json after unexpose: %q %d", out, code)
	}
}

// TestPreviewSleep: an open preview connection is activity (the sandbox
// does not sleep under it); once asleep, preview traffic gets 410 and does
// not wake it.
func TestPreviewSleep(t *testing.T) {
	t.Parallel()
	d := StartDaemon(t)
	ctx := ctxT(t, 2*time.Minute)
	sb, err := d.Client.Create(ctx, "pv-sleep", &api.CreateSandboxRequest{SleepAfter: "2s"})
	if err != nil {
		t.Fatal(err)
	}
	startPreviewServer(t, sb, 8080)
	exp, err := sb.ExposePort(ctx, 8080, nil)
	if err != nil {
		t.Fatal(err)
	}
	c := previewClient(d)
	conn, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(exp.ExposedAt, "http")+"ws", &websocket.DialOptions{HTTPClient: c})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(5 * time.Second) // well past sleepAfter, with only the WebSocket open
	if err := conn.Write(ctx, websocket.MessageText, []byte("still here")); err != nil {
		t.Fatal(err)
	}
	if _, msg, err := conn.Read(ctx); err != nil || string(msg) != "still here" {
		t.Fatalf("echo after 5 s: %q %v", msg, err)
	}
	if info, err := sb.Info(ctx); err != nil || info.Status != api.StatusRunning {
		t.Fatalf("with a preview WebSocket open: %+v %v", info, err)
	}
	conn.Close(websocket.StatusNormalClosure, "")
	waitSandboxStatus(t, sb, api.StatusSleeping)
	wantPreview(t, c, exp.ExposedAt, 410, api.CodeStalePreviewURL, "")
	time.Sleep(500 * time.Millisecond)
	if info, err := sb.Info(ctx); err != nil || info.Status != api.StatusSleeping {
		t.Fatalf("preview traffic woke the sandbox: %+v %v", info, err)
	}
}
