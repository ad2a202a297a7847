package e2e

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"maps"
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
	return sendJSON(t, d, http.MethodPost, path, body)
}

// sendJSON sends body to d's API with method at path and returns the
// status and the answer's body.
func sendJSON(t testing.TB, d *Daemon, method, path, body string) (int, []byte) {
	t.Helper()
	return sendJSONCtx(ctxT(t, time.Minute), t, d, method, path, body)
}

// sendJSONCtx is sendJSON within ctx.
func sendJSONCtx(ctx context.Context, t testing.TB, d *Daemon, method, path, body string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, method, d.URL+path, strings.NewReader(body))
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
	// A session that cannot be made (its ID is taken) leaves no
	// directory behind.
	if _, err := sb.CreateSession(ctx, api.CreateSessionRequest{ID: "app", Cwd: "/workspace/other"}); !errors.Is(err, sandbox.ErrSessionExists) {
		t.Errorf("a second session app: %v; want ErrSessionExists", err)
	}
	if res := mustExec(t, sb, "test -e /workspace/other && echo left"); res.Stdout != "" {
		t.Error("a refused session left its new directory")
	}
	mustExec(t, sb, "echo x > /tmp/file")
	_, err = sb.CreateSession(ctx, api.CreateSessionRequest{ID: "bad", Cwd: "/tmp/file/sub"})
	if !errors.Is(err, sandbox.ErrValidation) {
		t.Errorf("session under a file: %v; want an invalid argument", err)
	}
}

// WriteFile and ReadFile take Cloudflare's encodings: base64 content is
// written as the bytes it encodes, and read back as base64 text.
func TestFileBase64Encoding(t *testing.T) {
	t.Parallel()
	d := StartDaemon(t)
	ctx := ctxT(t, 2*time.Minute)
	sb := d.Client.Get("b64")
	png := []byte{0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n', 0, 0xff}
	b64 := base64.StdEncoding.EncodeToString(png)
	if _, err := sb.WriteFile(ctx, "/workspace/img.png", []byte(b64), &sandbox.WriteOptions{Encoding: sandbox.EncodingBase64}); err != nil {
		t.Fatal(err)
	}
	if res := mustExec(t, sb, "od -An -tx1 /workspace/img.png | tr -d ' \\n'"); res.Stdout != hex.EncodeToString(png) {
		t.Errorf("file written from base64: %q, want %x", res.Stdout, png)
	}
	f, err := sb.ReadFile(ctx, "/workspace/img.png", &sandbox.ReadOptions{Encoding: sandbox.EncodingBase64})
	if err != nil {
		t.Fatal(err)
	}
	if f.Encoding != sandbox.EncodingBase64 || f.Content != b64 || !bytes.Equal(f.Data, png) {
		t.Errorf("read as base64: encoding %q, content %q, data %x", f.Encoding, f.Content, f.Data)
	}
	text, err := sb.ReadFile(ctx, "/workspace/img.png", nil)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(text.Data, png) {
		t.Errorf("read without an encoding: data %x", text.Data)
	}
	_, err = sb.WriteFile(ctx, "/workspace/bad", []byte("not base64!"), &sandbox.WriteOptions{Encoding: sandbox.EncodingBase64})
	if !errors.Is(err, sandbox.ErrValidation) {
		t.Errorf("invalid base64: %v; want a validation error", err)
	}
}

// A create of an existing sandbox applies the options it can take and
// refuses, naming them, those it cannot, changing nothing then.
func TestCreateExistingOptions(t *testing.T) {
	t.Parallel()
	d := StartDaemon(t)
	ctx := ctxT(t, 2*time.Minute)
	if _, err := d.Client.Create(ctx, "opts", &api.CreateSandboxRequest{Labels: map[string]string{"a": "1"}, SleepAfter: "5m"}); err != nil {
		t.Fatal(err)
	}
	sb, err := d.Client.Create(ctx, "opts", &api.CreateSandboxRequest{
		Labels: map[string]string{"b": "2"}, SleepAfter: "7m", KeepAlive: true, Env: api.Env{"ADDED": "yes"},
		Image: "default", Resources: &api.Resources{MemoryMB: 1024},
	})
	if err != nil {
		t.Fatalf("create again with options it can take: %v", err)
	}
	info, err := sb.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !maps.Equal(info.Labels, map[string]string{"b": "2"}) || info.SleepAfter != "7m" || !info.KeepAlive {
		t.Errorf("after a create with new labels, sleepAfter, keepAlive: %+v", info)
	}
	if res := mustExec(t, sb, "echo $ADDED"); res.Stdout != "yes\n" {
		t.Errorf("env given to the existing sandbox: %q", res.Stdout)
	}
	for _, req := range []*api.CreateSandboxRequest{
		{Network: api.NetworkBridge, Labels: map[string]string{"c": "3"}},
		{Resources: &api.Resources{MemoryMB: 2048}},
		{Image: "other"},
		{Cwd: "/tmp"},
	} {
		_, err := d.Client.Create(ctx, "opts", req)
		if !errors.Is(err, sandbox.ErrOptionsConflict) {
			t.Errorf("create again with %+v: %v; want SANDBOX_OPTIONS_CONFLICT", req, err)
		}
	}
	// Options bad in themselves: 400, and nothing of the rest applied.
	if _, err := d.Client.Create(ctx, "opts", &api.CreateSandboxRequest{Labels: map[string]string{"d": "4"}, Env: api.Env{"BAD=NAME": "x"}}); !errors.Is(err, sandbox.ErrValidation) {
		t.Errorf("create again with a bad env name: %v; want a validation error", err)
	}
	if info, err := sb.Info(ctx); err != nil || !maps.Equal(info.Labels, map[string]string{"b": "2"}) {
		t.Errorf("a refused create changed the sandbox: %+v, %v", info, err)
	}
	code, b := sendJSON(t, d, http.MethodPut, "/v1/sandboxes/opts", `{"network":"bridge"}`)
	var e api.Error
	if err := json.Unmarshal(b, &e); code != http.StatusConflict || err != nil || e.Code != api.CodeOptionsConflict || !strings.Contains(e.Message, "network") {
		t.Errorf("PUT with another network: %d %s; want 409 %s naming network", code, b, api.CodeOptionsConflict)
	}
}

// The image has the `python` and `pip` commands that code written for
// Cloudflare's image calls, and pip may install (PEP 668 lifted).
func TestImagePythonCommands(t *testing.T) {
	t.Parallel()
	d := StartDaemon(t)
	sb := d.Client.Get("pycmds")
	res := mustExec(t, sb, `python -c 'print(6 * 7)' && pip --version >/dev/null && pip config list`)
	if res.ExitCode != 0 || !strings.HasPrefix(res.Stdout, "42\n") || !strings.Contains(res.Stdout, "break-system-packages") {
		t.Errorf("python and pip: exit %d, %q %q", res.ExitCode, res.Stdout, res.Stderr)
	}
}

// Stdin that is not UTF-8 reaches the command byte for byte (the SDK sends
// it base64-encoded, stdinEncoding "base64").
func TestExecBinaryStdin(t *testing.T) {
	t.Parallel()
	d := StartDaemon(t)
	ctx := ctxT(t, 2*time.Minute)
	sb := d.Client.Get("stdinbin")
	in := "\xff\x00\xfeok"
	res, err := sb.Exec(ctx, "od -An -tx1 | tr -d ' \\n'", &sandbox.ExecOptions{Stdin: &in})
	if err != nil {
		t.Fatal(err)
	}
	if res.Stdout != "ff00fe6f6b" {
		t.Errorf("binary stdin: %q %q", res.Stdout, res.Stderr)
	}
	if code, b := postJSON(t, d, "/v1/sandboxes/stdinbin/exec", `{"command":"cat","stdin":"x","stdinEncoding":"rot13"}`); code != http.StatusBadRequest {
		t.Errorf("unknown stdinEncoding: %d %s", code, b)
	}
}
