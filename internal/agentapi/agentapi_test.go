package agentapi

import (
	"net/http"
	"reflect"
	"testing"
)

func TestLimitsArgs(t *testing.T) {
	if got := (Limits{}).Args(); len(got) != 0 {
		t.Errorf("zero limits give flags %q", got)
	}
	got := Limits{Processes: 2, Contexts: 5}.Args()
	if want := []string{"--max-processes=2", "--max-contexts=5"}; !reflect.DeepEqual(got, want) {
		t.Errorf("Args = %q, want %q", got, want)
	}
	if d := (Limits{Sessions: 1}).WithDefaults(); d.Sessions != 1 || d.Processes != DefaultMaxProcesses || d.Contexts != DefaultMaxContexts {
		t.Errorf("WithDefaults = %+v", d)
	}
	if err := (Limits{Sessions: -1}).Validate(); err == nil {
		t.Error("Validate accepts a negative limit")
	}
}

func TestIsUpgrade(t *testing.T) {
	for _, c := range []struct {
		conn, upgrade, protocol string
		want                    bool
	}{
		{"Upgrade", "websocket", "websocket", true},
		{"keep-alive, UPGRADE", "WebSocket", "websocket", true},
		{"keep-alive", "websocket", "websocket", false},
		{"upgrade", "h2c", "websocket", false},
		{"", "", "websocket", false},
		{"Upgrade", "tcp", TunnelProtocol, true},
		{"Upgrade", "websocket", TunnelProtocol, false},
	} {
		h := http.Header{}
		if c.conn != "" {
			h.Set("Connection", c.conn)
		}
		if c.upgrade != "" {
			h.Set("Upgrade", c.upgrade)
		}
		if got := IsUpgrade(h, c.protocol); got != c.want {
			t.Errorf("Connection %q, Upgrade %q, asking %q: %v, want %v", c.conn, c.upgrade, c.protocol, got, c.want)
		}
	}
}
