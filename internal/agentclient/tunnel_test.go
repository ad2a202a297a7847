package agentclient

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sandboxd/sandboxd/api"
	"github.com/sandboxd/sandboxd/internal/agent"
	"github.com/sandboxd/sandboxd/internal/errdefs"
	"github.com/sandboxd/sandboxd/internal/testutil"
)

// realAgent runs the agent on a Unix socket in this process: its tunnels
// reach this host's loopback.
func realAgent(t *testing.T) *Client {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "agent.sock")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- agent.Run(ctx, agent.Config{Socket: sock}) }()
	t.Cleanup(func() { cancel(); <-done })
	c := New(sock)
	t.Cleanup(c.Close)
	for i := 0; c.CheckVersion(ctx) != nil; i++ {
		if i > 100 {
			t.Fatal("agent did not start")
		}
		time.Sleep(10 * time.Millisecond)
	}
	return c
}

// TestDialPortHalfClose: bytes go both ways, and each side's end of
// writing reaches the other while it can still answer.
func TestDialPortHalfClose(t *testing.T) {
	c := realAgent(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		defer conn.Close()
		b, _ := io.ReadAll(conn) // until the client's half-close
		fmt.Fprintf(conn, "got %d bytes", len(b))
	}()
	conn, err := c.DialPort(context.Background(), ln.Addr().(*net.TCPAddr).Port)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	payload := bytes.Repeat([]byte("abc"), 100000)
	if _, err := conn.Write(payload); err != nil {
		t.Fatal(err)
	}
	if err := conn.(interface{ CloseWrite() error }).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	got, err := io.ReadAll(conn) // until the server's close
	if err != nil || string(got) != "got 300000 bytes" {
		t.Fatalf("answer %q, %v", got, err)
	}
}

func TestDialPortErrors(t *testing.T) {
	c := realAgent(t)
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	_, err := c.DialPort(context.Background(), port)
	var ce *errdefs.CodedError
	if !errors.As(err, &ce) || ce.Code != api.CodePortNotListening {
		t.Errorf("nothing listening: %v, want PORT_NOT_LISTENING", err)
	}
	if _, err := c.DialPort(context.Background(), 70000); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("port 70000: %v, want ErrInvalidArgument", err)
	}
	// A plain request for a tunnel is refused with 426.
	req, _ := http.NewRequest("GET", "http://agent/v1/tunnel?port=1", nil)
	resp, err := c.hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUpgradeRequired {
		t.Errorf("no upgrade: %d, want 426", resp.StatusCode)
	}
	// An agent that is gone.
	gone := New(filepath.Join(t.TempDir(), "none.sock"))
	if _, err := gone.DialPort(context.Background(), 8080); !errors.Is(err, errdefs.ErrUnavailable) {
		t.Errorf("no agent: %v, want ErrUnavailable", err)
	}
}

// TestPortTransportReuses: requests through PortTransport reuse tunnels.
func TestPortTransportReuses(t *testing.T) {
	c := realAgent(t)
	var conns atomic.Int32
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "ok") }),
		ConnState: func(_ net.Conn, s http.ConnState) {
			if s == http.StateNew {
				conns.Add(1)
			}
		},
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	defer srv.Close()
	hc := &http.Client{Transport: c.PortTransport()}
	for range 5 {
		resp, err := hc.Get("http://" + ln.Addr().String() + "/")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(b) != "ok" {
			t.Fatalf("body %q", b)
		}
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("%d connections for 5 sequential requests, want 1", n)
	}
}

// TestDialPortIPv6Loopback: a server listening on ::1 alone (as one bound
// to "localhost" may be) is reached too.
func TestDialPortIPv6Loopback(t *testing.T) {
	ln, err := net.Listen("tcp", "[::1]:0")
	testutil.Requires(t, err == nil, fmt.Sprintf("no IPv6 loopback: %v", err))
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port
	if c4, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port)); err == nil {
		c4.Close()
		t.Skip("the port is taken on 127.0.0.1 too")
	}
	go func() {
		if conn, err := ln.Accept(); err == nil {
			_, _ = io.WriteString(conn, "v6")
			conn.Close()
		}
	}()
	c := realAgent(t)
	conn, err := c.DialPort(context.Background(), port)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if b, err := io.ReadAll(conn); err != nil || string(b) != "v6" {
		t.Errorf("read %q %v", b, err)
	}
}
