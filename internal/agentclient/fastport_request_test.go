package agentclient

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"testing"
)

// TestPortRequest: a head written by the caller goes out as is over the
// kept connections of the fast pool (reused request after request, and
// again after the service closed one meanwhile); a HEAD answer has no
// body; only GET and HEAD are taken.
func TestPortRequest(t *testing.T) {
	port, conns, srv := fastServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Got", r.Method+" "+r.RequestURI+" "+r.Host+" "+r.Header.Get("X-Head"))
		io.WriteString(w, "body")
	})
	c, _, _ := fastClient(t)
	ctx := context.Background()
	do := func(method string) (*http.Response, string) {
		t.Helper()
		req := &http.Request{Method: method}
		resp, err := c.PortRequest(ctx, port, req, func(bw *bufio.Writer) error {
			_, err := bw.WriteString(method + " /p?q=1 HTTP/1.1\r\nHost: h.example\r\nX-Head: yes\r\n\r\n")
			return err
		})
		if err != nil {
			t.Fatalf("%s: %v", method, err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp, string(b)
	}
	for i := range 3 {
		resp, body := do("GET")
		if got := resp.Header.Get("X-Got"); got != "GET /p?q=1 h.example yes" || body != "body" {
			t.Fatalf("GET %d: %q %q", i, got, body)
		}
	}
	if resp, body := do("HEAD"); resp.Header.Get("X-Got") != "HEAD /p?q=1 h.example yes" || body != "" {
		t.Fatalf("HEAD: %v %q", resp.Header, body)
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("%d connections, want 1 kept", n)
	}
	srv.CloseClientConnections()
	if _, body := do("GET"); body != "body" {
		t.Errorf("after the service closed the kept connection: %q", body)
	}
	if _, err := c.PortRequest(ctx, port, &http.Request{Method: "POST"}, func(*bufio.Writer) error { return nil }); err == nil {
		t.Error("POST taken")
	}
	if _, err := c.PortRequest(ctx, 0, &http.Request{Method: "GET"}, func(*bufio.Writer) error { return nil }); err == nil {
		t.Error("port 0 taken")
	}
}
