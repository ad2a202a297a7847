package core_test

import (
	"net/http"
	"testing"

	"github.com/sandboxd/sandboxd/internal/agent/core"
)

func TestIsWebSocketUpgrade(t *testing.T) {
	for _, c := range []struct {
		conn, upgrade string
		want          bool
	}{
		{"Upgrade", "websocket", true},
		{"keep-alive, UPGRADE", "WebSocket", true},
		{"keep-alive", "websocket", false},
		{"upgrade", "h2c", false},
		{"", "", false},
	} {
		h := http.Header{}
		if c.conn != "" {
			h.Set("Connection", c.conn)
		}
		if c.upgrade != "" {
			h.Set("Upgrade", c.upgrade)
		}
		if got := core.IsWebSocketUpgrade(h); got != c.want {
			t.Errorf("Connection %q, Upgrade %q: %v, want %v", c.conn, c.upgrade, got, c.want)
		}
	}
}
