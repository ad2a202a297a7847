package agentclient

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sandboxd/sandboxd/internal/agentapi"
	"github.com/sandboxd/sandboxd/internal/errdefs"
)

// serve answers on a Unix socket with h, as an agent would.
func serve(t *testing.T, h http.HandlerFunc) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "agent.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return sock
}

func TestCheckVersionRefusesOtherProtocols(t *testing.T) {
	for _, proto := range []int{agentapi.ProtocolVersion - 1, agentapi.ProtocolVersion + 1} {
		sock := serve(t, func(w http.ResponseWriter, r *http.Request) {
			_ = json.NewEncoder(w).Encode(agentapi.VersionResponse{Protocol: proto, Version: "other"})
		})
		c := New(sock)
		err := c.CheckVersion(context.Background())
		if err == nil || !strings.Contains(err.Error(), "protocol") {
			t.Errorf("agent with protocol %d: %v", proto, err)
		}
		c.Close()
	}
	sock := serve(t, func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(agentapi.VersionResponse{Protocol: agentapi.ProtocolVersion})
	})
	if err := New(sock).CheckVersion(context.Background()); err != nil {
		t.Errorf("same protocol: %v", err)
	}
}

func TestUnreachableAgentIsUnavailable(t *testing.T) {
	c := New(filepath.Join(t.TempDir(), "nothing.sock"))
	if err := c.CheckVersion(context.Background()); !errors.Is(err, errdefs.ErrUnavailable) {
		t.Errorf("no agent: %v, want ErrUnavailable", err)
	}
}

func TestBrokenAnswerIsInterrupted(t *testing.T) {
	sock := serve(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "100")
		_, _ = w.Write([]byte(`{"exitCode":`))
		panic(http.ErrAbortHandler) // the agent dies mid-answer
	})
	_, err := New(sock).Exec(context.Background(), agentapi.ExecRequest{})
	if !errors.Is(err, errdefs.ErrInterrupted) {
		t.Errorf("cut answer: %v, want ErrInterrupted", err)
	}
}
