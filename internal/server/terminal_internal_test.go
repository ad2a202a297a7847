package server

import (
	"net/http"
	"testing"
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
		if got := isWebSocketUpgrade(h); got != c.want {
			t.Errorf("Connection %q, Upgrade %q: %v, want %v", c.conn, c.upgrade, got, c.want)
		}
	}
}
