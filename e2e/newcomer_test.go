package e2e

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sandboxd/sandboxd/api"
	"github.com/sandboxd/sandboxd/sandbox"
)

// postJSON sends body to d's API at path and returns the status and the
// answer's body.
func postJSON(t *testing.T, d *Daemon, path, body string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctxT(t, time.Minute), http.MethodPost, d.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+d.Token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b
}

// A null in a call's env leaves the variable unset, as Cloudflare's SDK
// does, not set to the empty string: in exec, and in a new session's env.
func TestEnvNullIsUnset(t *testing.T) {
	t.Parallel()
	d := StartDaemon(t)
	const cmd = `printenv X || echo X not set; printenv Y`
	code, b := postJSON(t, d, "/v1/sandboxes/envnull/exec", `{"command":"`+cmd+`","env":{"X":null,"Y":"y"}}`)
	var res api.ExecResult
	if err := json.Unmarshal(b, &res); code != http.StatusOK || err != nil {
		t.Fatalf("exec: %d %s", code, b)
	}
	if res.Stdout != "X not set\ny\n" {
		t.Errorf("exec with X null: stdout %q, stderr %q; want X unset", res.Stdout, res.Stderr)
	}
	code, b = postJSON(t, d, "/v1/sandboxes/envnull/sessions", `{"id":"s","env":{"X":null,"Y":"y"}}`)
	if code != http.StatusCreated {
		t.Fatalf("create session: %d %s", code, b)
	}
	code, b = postJSON(t, d, "/v1/sandboxes/envnull/exec", `{"command":"`+cmd+`","sessionId":"s"}`)
	res = api.ExecResult{}
	if err := json.Unmarshal(b, &res); code != http.StatusOK || err != nil {
		t.Fatalf("exec in session: %d %s", code, b)
	}
	if res.Stdout != "X not set\ny\n" {
		t.Errorf("session with X null: stdout %q, stderr %q; want X unset", res.Stdout, res.Stderr)
	}
}

// A session's cwd that does not exist yet is made; one that is a file is
// refused.
func TestSessionCwdIsMade(t *testing.T) {
	t.Parallel()
	d := StartDaemon(t)
	ctx := ctxT(t, 2*time.Minute)
	sb := d.Client.Get("sesscwd")
	s, err := sb.CreateSession(ctx, api.CreateSessionRequest{ID: "app", Cwd: "/workspace/app/src"})
	if err != nil {
		t.Fatal(err)
	}
	res, err := s.Exec(ctx, "pwd; stat -c %U /workspace/app/src", nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.Stdout != "/workspace/app/src\nroot\n" {
		t.Errorf("session in a new directory: %q %q", res.Stdout, res.Stderr)
	}
	mustExec(t, sb, "echo x > /tmp/file")
	_, err = sb.CreateSession(ctx, api.CreateSessionRequest{ID: "bad", Cwd: "/tmp/file/sub"})
	if !errors.Is(err, sandbox.ErrValidation) {
		t.Errorf("session under a file: %v; want an invalid argument", err)
	}
}
