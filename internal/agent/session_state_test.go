package agent_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/sandboxd/sandboxd/api"
	"github.com/sandboxd/sandboxd/internal/agent"
	"github.com/sandboxd/sandboxd/internal/agentapi"
	"github.com/sandboxd/sandboxd/internal/agentclient"
)

// runAgentWithState runs an agent keeping its state in stateDir until stop
// is called.
func runAgentWithState(t *testing.T, stateDir, workdir string) (c *agentclient.Client, stop func()) {
	t.Helper()
	return runAgent(t, func(cfg *agent.Config) { cfg.StateDir, cfg.Workdir = stateDir, workdir })
}

func stateCall(t *testing.T, c *agentclient.Client, method, path string, in, out any) int {
	t.Helper()
	var body bytes.Buffer
	if in != nil {
		_ = json.NewEncoder(&body).Encode(in)
	}
	req, _ := http.NewRequest(method, "http://agent"+path, &body)
	req.Header.Set("Content-Type", "application/json")
	resp, err := (&http.Client{Transport: c.Transport()}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if out != nil {
		_ = json.NewDecoder(resp.Body).Decode(out)
	}
	return resp.StatusCode
}

// TestSessionSettingsSurviveRestart: sessions come back after the agent
// restarts (as after its container slept or crashed) with their settings,
// each with a fresh shell; a deleted one stays deleted.
func TestSessionSettingsSurviveRestart(t *testing.T) {
	state, work := t.TempDir(), t.TempDir()
	sub := filepath.Join(work, "sub")
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	c, stop := runAgentWithState(t, state, work)
	if st := stateCall(t, c, "POST", "/v1/sessions", api.CreateSessionRequest{ID: "kept", Env: map[string]string{"A": "1"}, Cwd: sub, CommandTimeoutMs: 7000}, nil); st != http.StatusCreated {
		t.Fatalf("create: %d", st)
	}
	if st := stateCall(t, c, "POST", "/v1/sessions", api.CreateSessionRequest{ID: "gone"}, nil); st != http.StatusCreated {
		t.Fatalf("create: %d", st)
	}
	b := "2"
	if st := stateCall(t, c, "POST", "/v1/env", api.SetEnvRequest{SessionID: "kept", EnvVars: map[string]*string{"B": &b, "HOME": nil}}, nil); st != http.StatusOK {
		t.Fatalf("set env: %d", st)
	}
	if st := stateCall(t, c, "DELETE", "/v1/sessions/gone", nil, nil); st != http.StatusNoContent {
		t.Fatalf("delete: %d", st)
	}
	// The shell's own state (cd) is not a setting: it is lost.
	run(t, c, agentapi.ExecRequest{ExecRequest: api.ExecRequest{Command: "cd /; X=shell", SessionID: "kept"}})
	if fi, err := os.Stat(filepath.Join(state, "sessions.json")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("state file: %v %v", fi, err)
	}
	stop()

	c, _ = runAgentWithState(t, state, work)
	var list api.SessionList
	stateCall(t, c, "GET", "/v1/sessions", nil, &list)
	got := map[string]api.Session{}
	for _, s := range list.Sessions {
		got[s.ID] = s
	}
	if _, ok := got["gone"]; ok {
		t.Errorf("a deleted session came back: %+v", list)
	}
	k, ok := got["kept"]
	if !ok || k.Cwd != sub || k.CommandTimeoutMs != 7000 || k.Env["A"] != "1" || k.Env["B"] != "2" {
		t.Fatalf("kept session after restart: %+v (all: %+v)", k, list)
	}
	res := run(t, c, agentapi.ExecRequest{ExecRequest: api.ExecRequest{Command: `pwd; echo "$A$B${X:-fresh}${HOME:-unset}"`, SessionID: "kept"}})
	if res.Stdout != sub+"\n12freshunset\n" {
		t.Errorf("fresh shell with the kept settings: %q", res.Stdout)
	}
}
