package server_test

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"strings"
	"testing"

	"github.com/sandboxd/sandboxd/api"
	"github.com/sandboxd/sandboxd/internal/manager/managertest"
	"github.com/sandboxd/sandboxd/internal/preview"
	"github.com/sandboxd/sandboxd/internal/server"
)

// newPreviewServer is newServer with a preview configuration. Its
// sandboxes' agent runs in this process, so a "port in the sandbox" is a
// port on this host's loopback.
func newPreviewServer(t testing.TB, cfg server.Config) *httptest.Server {
	t.Helper()
	env := managertest.New(t)
	cfg.Manager, cfg.Token, cfg.Metrics = env.Manager, token, env.Metrics
	srv := httptest.NewServer(server.New(cfg))
	t.Cleanup(srv.Close)
	return srv
}

// headerEcho serves the request's headers (and Host) as JSON on loopback.
func headerEcho(t *testing.T) int {
	t.Helper()
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := r.Header.Clone()
		h.Set("Host", r.Host)
		_ = json.NewEncoder(w).Encode(h)
	}))
	t.Cleanup(up.Close)
	return up.Listener.Addr().(*net.TCPAddr).Port
}

func expose(t testing.TB, srv *httptest.Server, id string, port int, hdr http.Header) api.ExposedPort {
	t.Helper()
	body := `{"port":` + strconv.Itoa(port) + `}`
	req, _ := http.NewRequest("POST", srv.URL+"/v1/sandboxes/"+id+"/ports", strings.NewReader(body))
	for k, v := range hdr {
		req.Header[k] = v
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var p api.ExposedPort
	if err := json.NewDecoder(resp.Body).Decode(&p); err != nil || resp.StatusCode != 200 {
		t.Fatalf("expose: %d %v", resp.StatusCode, err)
	}
	return p
}

// previewDo sends a request with the preview URL's host to srv.
func previewDo(t *testing.T, srv *httptest.Server, u string, hdr http.Header) (*http.Response, []byte) {
	t.Helper()
	pu, _ := http.NewRequest("GET", u, nil)
	req, _ := http.NewRequest("GET", srv.URL+pu.URL.Path, nil)
	req.Host = pu.URL.Host
	for k, v := range hdr {
		req.Header[k] = v
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

func TestPreviewForwardedHeaders(t *testing.T) {
	spoofed := http.Header{
		"X-Forwarded-For": {"6.6.6.6"}, "X-Forwarded-Proto": {"https"}, "X-Forwarded-Host": {"preview.example.com"},
		"Forwarded": {"for=6.6.6.6"}, "X-Sandboxd-Internal": {"1"},
	}
	for _, tc := range []struct {
		name    string
		trusted []netip.Prefix
		want    map[string]string // "" means absent
		url     string            // prefix of exposedAt
	}{{
		name: "untrusted peer",
		want: map[string]string{"X-Forwarded-For": "127.0.0.1", "X-Forwarded-Proto": "http", "Forwarded": "", "X-Sandboxd-Internal": ""},
		url:  "http://",
	}, {
		name:    "trusted proxy",
		trusted: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")},
		want: map[string]string{"X-Forwarded-For": "6.6.6.6, 127.0.0.1", "X-Forwarded-Proto": "https",
			"X-Forwarded-Host": "preview.example.com", "Forwarded": "for=6.6.6.6", "X-Sandboxd-Internal": ""},
		url: "https://",
	}} {
		t.Run(tc.name, func(t *testing.T) {
			srv := newPreviewServer(t, server.Config{Preview: preview.Config{Domain: "preview.test", TrustedProxies: tc.trusted}})
			port := headerEcho(t)
			p := expose(t, srv, "box", port, spoofed)
			if !strings.HasPrefix(p.ExposedAt, tc.url+strconv.Itoa(port)+"-box-"+p.Token+".preview.test") {
				t.Errorf("exposedAt %s", p.ExposedAt)
			}
			resp, b := previewDo(t, srv, "http://"+strconv.Itoa(port)+"-box-"+p.Token+".preview.test:1234/x", spoofed)
			var got http.Header
			if err := json.Unmarshal(b, &got); err != nil || resp.StatusCode != 200 {
				t.Fatalf("%d %s", resp.StatusCode, b)
			}
			if h := got.Get("Host"); h != strconv.Itoa(port)+"-box-"+p.Token+".preview.test:1234" {
				t.Errorf("Host %q", h)
			}
			for k, v := range tc.want {
				if g := strings.Join(got.Values(k), ", "); g != v {
					t.Errorf("%s = %q, want %q", k, g, v)
				}
			}
		})
	}
}

func TestPreviewErrors(t *testing.T) {
	srv := newPreviewServer(t, server.Config{Preview: preview.Config{Domain: "preview.test"}, ReservedPorts: []int{8787}})
	if code, e, _ := call(t, srv, "POST", "/v1/sandboxes/box/ports", token, `{"port":8787}`); code != 400 || e.Code != api.CodeInvalidPort {
		t.Errorf("reserved port: %d %s", code, e.Code)
	}
	if code, e, _ := call(t, srv, "DELETE", "/v1/sandboxes/box/ports/http", token, ""); code != 400 || e.Code != api.CodeInvalidPort {
		t.Errorf("unexpose port http: %d %s", code, e.Code)
	}
	// Nothing listens on a port that was just closed.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	p := expose(t, srv, "box", port, nil)
	resp, b := previewDo(t, srv, p.ExposedAt, nil)
	var e api.Error
	if json.Unmarshal(b, &e); resp.StatusCode != 502 || e.Code != api.CodePortNotListening {
		t.Errorf("nothing listening: %d %s", resp.StatusCode, b)
	}
	// The preview domain itself and other hosts are the API's.
	if code, _, _ := call(t, srv, "GET", "/v1/sandboxes", token, ""); code != 200 {
		t.Errorf("API: %d", code)
	}
	req, _ := http.NewRequest("GET", srv.URL+"/healthz", nil)
	req.Host = "preview.test"
	if resp, err := srv.Client().Do(req); err != nil || resp.StatusCode != 200 {
		t.Errorf("healthz on the bare preview domain: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
}

// TestPreviewHostVariants: a preview host is recognised whatever its case,
// with a trailing dot and with any port; everything on it is the
// service's (API paths too); look-alike hosts are neither proxied nor
// served as the API without its token.
func TestPreviewHostVariants(t *testing.T) {
	srv := newPreviewServer(t, server.Config{Preview: preview.Config{Domain: "preview.test"}})
	port := headerEcho(t)
	p := expose(t, srv, "my-box-1", port, nil)
	host := strconv.Itoa(port) + "-my-box-1-" + p.Token + ".preview.test"
	for _, h := range []string{host, strings.ToUpper(host), host + ".", host + ".:9999", host + ":1"} {
		resp, b := previewDo(t, srv, "http://"+h+"/v1/sandboxes", http.Header{"Authorization": {"Bearer " + token}})
		var got http.Header
		if err := json.Unmarshal(b, &got); err != nil || resp.StatusCode != 200 || got.Get("Host") != h {
			t.Errorf("Host %s: %d %s (want the service's echo)", h, resp.StatusCode, b)
		}
	}
	for _, tc := range []struct {
		host   string
		status int
	}{
		{"a." + host, 404}, // a deeper subdomain: no preview URL, not the API
		{host[:len(host)-len(".preview.test")] + "x.preview.test", 404}, // another token
		{strconv.Itoa(port) + "-" + strings.Repeat("a", 64) + "-" + p.Token + ".preview.test", 404},
		{host + ".evil.example", 401}, // not under the preview domain: the API, which wants its token
		{"preview.test.", 401},
	} {
		resp, b := previewDo(t, srv, "http://"+tc.host+"/v1/sandboxes", nil)
		if resp.StatusCode != tc.status {
			t.Errorf("Host %s: %d %s, want %d", tc.host, resp.StatusCode, b, tc.status)
		}
	}
}
