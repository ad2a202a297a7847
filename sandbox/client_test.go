package sandbox

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sandboxd/sandboxd/api"
)

// request is what the fake daemon saw of one request.
type request struct {
	method, path, query, auth, body string
	lastEventID                     string // the Last-Event-ID header
	session, rng                    string // the X-Session-Id and Range headers
}

// fakeDaemon serves the responses in order (repeating the last one) and
// records the requests it gets.
type fakeDaemon struct {
	responses []response

	mu       sync.Mutex
	requests []request
}

type response struct {
	status int
	header http.Header
	body   string
}

func (f *fakeDaemon) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	f.mu.Lock()
	n := len(f.requests)
	f.requests = append(f.requests, request{r.Method, r.URL.EscapedPath(), r.URL.RawQuery, r.Header.Get("Authorization"), string(body),
		r.Header.Get("Last-Event-ID"), r.Header.Get("X-Session-Id"), r.Header.Get("Range")})
	f.mu.Unlock()
	resp := f.responses[min(n, len(f.responses)-1)]
	for k, v := range resp.header {
		w.Header()[k] = v
	}
	w.WriteHeader(resp.status)
	io.WriteString(w, resp.body)
}

func (f *fakeDaemon) seen() []request {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]request(nil), f.requests...)
}

// newFake starts a fake daemon answering with responses and returns a client
// for it that sends the token "tok".
func newFake(t *testing.T, responses ...response) (*Client, *fakeDaemon) {
	t.Helper()
	f := &fakeDaemon{responses: responses}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	c, err := NewClient(Options{URL: srv.URL + "/", Token: "tok", HTTPClient: srv.Client()})
	if err != nil {
		t.Fatal(err)
	}
	return c, f
}

const sandboxJSON = `{"id":"demo","status":"running","image":"default","labels":{"k":"v"}}`

func TestRequests(t *testing.T) {
	tests := []requestCase{{
		name: "create",
		call: func(ctx context.Context, c *Client) error {
			_, err := c.Create(ctx, "demo", &api.CreateSandboxRequest{Image: "py", Resources: &api.Resources{MemoryMB: 512}})
			return err
		},
		resp: response{status: 201, body: sandboxJSON},
		want: request{method: "PUT", path: "/v1/sandboxes/demo", body: `{"image":"py","resources":{"memoryMB":512}}`},
	}, {
		name: "create with defaults",
		call: func(ctx context.Context, c *Client) error { _, err := c.Create(ctx, "demo", nil); return err },
		resp: response{status: 200, body: sandboxJSON},
		want: request{method: "PUT", path: "/v1/sandboxes/demo", body: `{}`},
	}, {
		name: "info lowercases the id",
		call: func(ctx context.Context, c *Client) error { _, err := c.Get("DeMo").Info(ctx); return err },
		resp: response{status: 200, body: sandboxJSON},
		want: request{method: "GET", path: "/v1/sandboxes/demo"},
	}, {
		name: "id is one escaped path segment",
		call: func(ctx context.Context, c *Client) error { _, err := c.Get("a/b?c").Info(ctx); return err },
		resp: response{status: 200, body: sandboxJSON},
		want: request{method: "GET", path: "/v1/sandboxes/a%2Fb%3Fc"},
	}, {
		name: "update",
		call: func(ctx context.Context, c *Client) error {
			_, err := c.Get("demo").Update(ctx, api.UpdateSandboxRequest{KeepAlive: new(true)})
			return err
		},
		resp: response{status: 200, body: sandboxJSON},
		want: request{method: "PATCH", path: "/v1/sandboxes/demo", body: `{"keepAlive":true}`},
	}, {
		name: "destroy",
		call: func(ctx context.Context, c *Client) error { return c.Get("demo").Destroy(ctx) },
		resp: response{status: 204},
		want: request{method: "DELETE", path: "/v1/sandboxes/demo"},
	}, {
		name: "list",
		call: func(ctx context.Context, c *Client) error { _, err := c.List(ctx, ListOptions{}); return err },
		resp: response{status: 200, body: `{"sandboxes":[],"count":0}`},
		want: request{method: "GET", path: "/v1/sandboxes"},
	}, {
		name: "list by labels, sorted and escaped",
		call: func(ctx context.Context, c *Client) error {
			_, err := c.List(ctx, ListOptions{Labels: map[string]string{"team": "a&b", "env": "x=y z"}})
			return err
		},
		resp: response{status: 200, body: `{"sandboxes":[],"count":0}`},
		want: request{method: "GET", path: "/v1/sandboxes", query: "label=env%3Dx%3Dy+z&label=team%3Da%26b"},
	}, {
		name: "exec with options",
		call: func(ctx context.Context, c *Client) error {
			_, err := c.Get("demo").Exec(ctx, "cat", &ExecOptions{
				Env: map[string]string{"A": "1"}, Cwd: "/tmp", Timeout: 1500 * time.Microsecond,
				Stdin: new(""), SessionID: "s1",
			})
			return err
		},
		resp: response{status: 200, body: `{"success":true}`},
		want: request{method: "POST", path: "/v1/sandboxes/demo/exec",
			body: `{"command":"cat","sessionId":"s1","timeoutMs":2,"env":{"A":"1"},"cwd":"/tmp","stdin":""}`},
	}, {
		name: "exec without options",
		call: func(ctx context.Context, c *Client) error { _, err := c.Get("demo").Exec(ctx, "true", nil); return err },
		resp: response{status: 200, body: `{"success":true}`},
		want: request{method: "POST", path: "/v1/sandboxes/demo/exec", body: `{"command":"true"}`},
	}, {
		name: "health",
		call: func(ctx context.Context, c *Client) error { _, err := c.Health(ctx); return err },
		resp: response{status: 200, body: `{"status":"ok","version":"v1"}`},
		want: request{method: "GET", path: "/healthz"},
	}}
	checkRequests(t, tests)
}

func TestNoTokenSendsNoAuthorization(t *testing.T) {
	f := &fakeDaemon{responses: []response{{status: 200, body: sandboxJSON}}}
	srv := httptest.NewServer(f)
	defer srv.Close()
	c, err := NewClient(Options{URL: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Get("demo").Info(t.Context()); err != nil {
		t.Fatal(err)
	}
	if auth := f.seen()[0].auth; auth != "" {
		t.Errorf("Authorization = %q, want none", auth)
	}
}

func TestResponsesDecode(t *testing.T) {
	c, _ := newFake(t, response{status: 200, body: `{"sandboxes":[` + sandboxJSON + `],"count":1}`})
	list, err := c.List(t.Context(), ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || list[0].ID != "demo" || list[0].Labels["k"] != "v" {
		t.Errorf("list = %+v", list)
	}

	c, _ = newFake(t, response{status: 200, body: `{"success":false,"exitCode":3,"stdout":"a\n","stderr":"b"}`})
	res, err := c.Get("demo").Exec(t.Context(), "x", nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.ExitCode != 3 || res.Stdout != "a\n" || res.Stderr != "b" {
		t.Errorf("exec result = %+v", res)
	}
}

func TestDaemonErrorIsWrappedAndTyped(t *testing.T) {
	c, _ := newFake(t, response{status: 404, body: `{"code":"SANDBOX_NOT_FOUND","message":"sandbox nope not found","httpStatus":404}`})
	_, err := c.Get("nope").Info(t.Context())
	if !errors.Is(err, ErrSandboxNotFound) {
		t.Fatalf("err = %v, want ErrSandboxNotFound", err)
	}
	var e *Error
	if !errors.As(err, &e) || e.HTTPStatus != 404 || e.Message != "sandbox nope not found" {
		t.Errorf("errors.As gave %+v", e)
	}
	if want := "get sandbox nope: sandbox nope not found (SANDBOX_NOT_FOUND)"; err.Error() != want {
		t.Errorf("err = %q, want %q", err, want)
	}
}

func TestInvalidIDSendsNothing(t *testing.T) {
	for _, id := range []string{"", ".", ".."} {
		c, f := newFake(t, response{status: 200, body: sandboxJSON})
		_, err := c.Get(id).Info(t.Context())
		if !errors.Is(err, ErrValidation) {
			t.Errorf("Info(%q) err = %v, want ErrValidation", id, err)
		}
		if n := len(f.seen()); n != 0 {
			t.Errorf("Info(%q) sent %d requests", id, n)
		}
	}
}

func TestNetworkErrorIsWrapped(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	srv.Close()
	c, err := NewClient(Options{URL: srv.URL, Token: "s3cr3t"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Get("demo").Exec(t.Context(), "true", nil)
	if err == nil || !strings.HasPrefix(err.Error(), "exec sandbox demo: ") {
		t.Fatalf("err = %v, want it to start with the operation", err)
	}
	var e *Error
	if errors.As(err, &e) {
		t.Errorf("network error reported as daemon error %+v", e)
	}
	if strings.Contains(err.Error(), "s3cr3t") {
		t.Errorf("error leaks the token: %v", err)
	}
}

func TestNewClientURL(t *testing.T) {
	tests := []struct {
		url, wantBase string
		wantErr       bool
	}{
		{url: "", wantBase: DefaultURL},
		{url: "http://h:1/", wantBase: "http://h:1"},
		{url: "https://h/prefix/", wantBase: "https://h/prefix"},
		{url: "localhost:8787", wantErr: true},
		{url: "ftp://h", wantErr: true},
		{url: "http://", wantErr: true},
		{url: "http://h/%zz", wantErr: true},
	}
	for _, tc := range tests {
		c, err := NewClient(Options{URL: tc.url})
		switch {
		case tc.wantErr && err == nil:
			t.Errorf("NewClient(%q) succeeded, want an error", tc.url)
		case !tc.wantErr && err != nil:
			t.Errorf("NewClient(%q): %v", tc.url, err)
		case !tc.wantErr && c.baseURL != tc.wantBase:
			t.Errorf("NewClient(%q) base = %q, want %q", tc.url, c.baseURL, tc.wantBase)
		}
	}
}

func TestEnvOptions(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "token")
	if err := os.WriteFile(file, []byte("from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name      string
		env       map[string]string
		tokenFile string
		want      Options
	}{
		{"env wins over file", map[string]string{EnvURL: "http://h:1", EnvToken: "from-env"}, file,
			Options{URL: "http://h:1", Token: "from-env"}},
		{"file when env has no token", nil, file, Options{Token: "from-file"}},
		{"no token anywhere", nil, filepath.Join(dir, "missing"), Options{}},
		{"unreadable file is skipped", map[string]string{EnvURL: "http://h:2"}, dir, Options{URL: "http://h:2"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			getenv := func(k string) string { return tc.env[k] }
			if got := envOptions(getenv, tc.tokenFile); got != tc.want {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

// requestCase is one SDK call, the answer the fake daemon gives it, and the
// one request the call must send.
type requestCase struct {
	name string
	call func(ctx context.Context, c *Client) error
	resp response
	want request
}

// checkRequests runs each case against a fake daemon and checks that the
// call succeeded after sending exactly its request, with the token.
func checkRequests(t *testing.T, tests []requestCase) {
	t.Helper()
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, f := newFake(t, tc.resp)
			if err := tc.call(t.Context(), c); err != nil {
				t.Fatal(err)
			}
			tc.want.auth = "Bearer tok"
			if got := f.seen(); len(got) != 1 || got[0] != tc.want {
				t.Errorf("requests = %+v\nwant [%+v]", got, tc.want)
			}
		})
	}
}
