package sandbox

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

const exposedJSON = `{"port":8080,"name":"web","token":"abc","exposedAt":"http://8080-demo-abc.localhost:8787/"}`

// TestPortRequests checks what each port call sends and that it decodes
// the answer.
func TestPortRequests(t *testing.T) {
	checkRequests(t, []requestCase{{
		name: "expose with options",
		call: func(ctx context.Context, c *Client) error {
			p, err := c.Get("demo").ExposePort(ctx, 8080, &ExposePortOptions{Name: "web", Token: "abc"})
			if err == nil && (p.Token != "abc" || p.ExposedAt != "http://8080-demo-abc.localhost:8787/") {
				t.Errorf("exposed = %+v", p)
			}
			return err
		},
		resp: response{status: 200, body: exposedJSON},
		want: request{method: "POST", path: "/v1/sandboxes/demo/ports", body: `{"port":8080,"name":"web","token":"abc"}`},
	}, {
		name: "expose plain",
		call: func(ctx context.Context, c *Client) error {
			_, err := c.Get("demo").ExposePort(ctx, 8080, nil)
			return err
		},
		resp: response{status: 200, body: exposedJSON},
		want: request{method: "POST", path: "/v1/sandboxes/demo/ports", body: `{"port":8080}`},
	}, {
		name: "list",
		call: func(ctx context.Context, c *Client) error {
			ports, err := c.Get("demo").GetExposedPorts(ctx)
			if err == nil && (len(ports) != 1 || ports[0].Port != 8080 || ports[0].Name != "web") {
				t.Errorf("ports = %+v", ports)
			}
			return err
		},
		resp: response{status: 200, body: `{"ports":[` + exposedJSON + `],"count":1}`},
		want: request{method: "GET", path: "/v1/sandboxes/demo/ports"},
	}, {
		name: "unexpose",
		call: func(ctx context.Context, c *Client) error { return c.Get("demo").UnexposePort(ctx, 8080) },
		resp: response{status: 204},
		want: request{method: "DELETE", path: "/v1/sandboxes/demo/ports/8080"},
	}})
}

// PreviewHTTPClient sends requests for localhost's subdomains to the
// daemon's host, keeping their Host header.
func TestPreviewHTTPClient(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "host "+r.Host)
	}))
	defer srv.Close()
	c, err := NewClient(Options{URL: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(srv.URL, "http://"))
	u := "http://8000-demo-tok.LocalHost:" + port + "/x"
	resp, err := c.PreviewHTTPClient().Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if string(b) != "host 8000-demo-tok.LocalHost:"+port {
		t.Errorf("answer %q", b)
	}
}
