package cli

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sandboxd/sandboxd/api"
)

// fakeDaemon keeps sandboxes in memory and answers exec with canned output.
type fakeDaemon struct {
	mu        sync.Mutex
	sandboxes map[string]api.Sandbox
	lastExec  api.ExecRequest
}

func newFakeDaemon(t *testing.T) (*fakeDaemon, *httptest.Server) {
	f := &fakeDaemon{sandboxes: map[string]api.Sandbox{}}
	mux := http.NewServeMux()
	mux.HandleFunc("PUT /v1/sandboxes/{id}", f.create)
	mux.HandleFunc("GET /v1/sandboxes", f.list)
	mux.HandleFunc("GET /v1/sandboxes/{id}", f.info)
	mux.HandleFunc("DELETE /v1/sandboxes/{id}", f.destroy)
	mux.HandleFunc("POST /v1/sandboxes/{id}/exec", f.exec)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer tok" {
			writeError(w, api.CodeUnauthorized, "missing or wrong token", 401)
			return
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		mux.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return f, srv
}

func writeError(w http.ResponseWriter, code, msg string, status int) {
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(api.Error{Code: code, Message: msg, HTTPStatus: status})
}

func (f *fakeDaemon) create(w http.ResponseWriter, r *http.Request) {
	var req api.CreateSandboxRequest
	json.NewDecoder(r.Body).Decode(&req)
	now := time.Now()
	sb := api.Sandbox{
		ID: r.PathValue("id"), Status: api.StatusRunning, Image: req.Image, Labels: req.Labels, Env: req.Env,
		CreatedAt: now.Add(-150 * time.Minute), LastActiveAt: now.Add(-90 * time.Second),
	}
	if req.Resources != nil {
		sb.Resources = *req.Resources
	}
	f.sandboxes[sb.ID] = sb
	w.WriteHeader(http.StatusCreated)
	json.NewEncoder(w).Encode(sb)
}

func (f *fakeDaemon) list(w http.ResponseWriter, r *http.Request) {
	list := api.SandboxList{Sandboxes: []api.Sandbox{}}
	for _, id := range []string{"a", "b", "demo"} {
		sb, ok := f.sandboxes[id]
		if !ok {
			continue
		}
		match := true
		for _, l := range r.URL.Query()["label"] {
			k, v, _ := strings.Cut(l, "=")
			match = match && sb.Labels[k] == v
		}
		if match {
			list.Sandboxes = append(list.Sandboxes, sb)
		}
	}
	list.Count = len(list.Sandboxes)
	json.NewEncoder(w).Encode(list)
}

func (f *fakeDaemon) info(w http.ResponseWriter, r *http.Request) {
	sb, ok := f.sandboxes[r.PathValue("id")]
	if !ok {
		writeError(w, api.CodeSandboxNotFound, "sandbox "+r.PathValue("id")+" not found", 404)
		return
	}
	json.NewEncoder(w).Encode(sb)
}

func (f *fakeDaemon) destroy(w http.ResponseWriter, r *http.Request) {
	delete(f.sandboxes, r.PathValue("id"))
	w.WriteHeader(http.StatusNoContent)
}

// exec answers `exit N` with a terminated session and anything else with
// fixed output; its exit code comes from the env var CODE.
func (f *fakeDaemon) exec(w http.ResponseWriter, r *http.Request) {
	var req api.ExecRequest
	json.NewDecoder(r.Body).Decode(&req)
	f.lastExec = req
	if req.Command == "exit 3" {
		w.WriteHeader(410)
		json.NewEncoder(w).Encode(api.Error{Code: api.CodeSessionTerminated, Message: "shell exited with status 3",
			HTTPStatus: 410, Details: map[string]any{"exitCode": 3}})
		return
	}
	code := 0
	if req.Env["CODE"] == "7" {
		code = 7
	}
	json.NewEncoder(w).Encode(api.ExecResult{Success: code == 0, ExitCode: code, Stdout: "out\x00\n\n", Stderr: "err", Command: req.Command})
}

func TestCommands(t *testing.T) {
	f, srv := newFakeDaemon(t)
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte("tok\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		name       string
		args       []string          // after --url
		env        map[string]string // nil means SANDBOX_TOKEN=tok
		stdin      string
		wantStatus int
		wantStdout string
		stdoutPart bool   // wantStdout need only be part of stdout
		wantStderr string // a prefix
		wantExec   *api.ExecRequest
	}{{
		name:       "create",
		args:       []string{"create", "demo", "--image", "py", "--memory", "512", "--label", "team=ml", "--env", "A=1"},
		wantStdout: "demo\n",
	}, {
		name:       "create another",
		args:       []string{"create", "B"},
		wantStdout: "b\n",
	}, {
		name: "ls",
		args: []string{"ls"},
		wantStdout: "ID     STATUS    IMAGE   CREATED   LAST ACTIVE\n" +
			"b      running           2h ago    1m ago\n" +
			"demo   running   py      2h ago    1m ago\n",
	}, {
		name: "ls by label",
		args: []string{"ls", "--label", "team=ml"},
		wantStdout: "ID     STATUS    IMAGE   CREATED   LAST ACTIVE\n" +
			"demo   running   py      2h ago    1m ago\n",
	}, {
		name:       "ls as json, nothing found",
		args:       []string{"ls", "--json", "--label", "team=none"},
		wantStdout: "[]\n",
	}, {
		name: "exec quotes words and passes options",
		args: []string{"exec", "demo", "--env", "A=x,y", "--cwd", "/tmp", "--timeout", "2s", "--session", "s1", "--stdin",
			"--", "python3", "-c", "print('hi')"},
		stdin:      "in\n",
		wantStdout: "out\x00\n\n",
		wantStderr: "err",
		wantExec: &api.ExecRequest{Command: `python3 -c 'print('\''hi'\'')'`, SessionID: "s1", TimeoutMs: 2000,
			Env: map[string]string{"A": "x,y"}, Cwd: "/tmp", Stdin: new("in\n")},
	}, {
		name:       "exec passes one word as a command line and exits with its code",
		args:       []string{"exec", "demo", "-e", "CODE=7", "--", "echo $HOME | wc -c"},
		wantStatus: 7,
		wantStdout: "out\x00\n\n",
		wantStderr: "err",
		wantExec:   &api.ExecRequest{Command: "echo $HOME | wc -c", Env: map[string]string{"CODE": "7"}},
	}, {
		name:       "exec of a shell exit exits with the shell's status",
		args:       []string{"exec", "demo", "--", "exit 3"},
		wantStatus: 3,
		wantStderr: "sandbox: shell exited with status 3 (SESSION_TERMINATED)\n",
	}, {
		name:       "info",
		args:       []string{"info", "demo"},
		wantStdout: `"id": "demo"`,
		stdoutPart: true,
	}, {
		name:       "rm reports each failure and goes on",
		args:       []string{"rm", "demo", "..", "b"},
		wantStatus: 1,
		wantStdout: "demo\nb\n",
		wantStderr: `sandbox: invalid sandbox id ".." (VALIDATION_FAILED)` + "\n",
	}, {
		name:       "info of a destroyed sandbox",
		args:       []string{"info", "demo"},
		wantStatus: 1,
		wantStderr: "sandbox: sandbox demo not found (SANDBOX_NOT_FOUND)\n",
	}, {
		name:       "token from a named file",
		args:       []string{"--token-file", tokenFile, "ls", "--json"},
		env:        map[string]string{},
		wantStdout: "[]\n",
	}, {
		name:       "token flag beats env",
		args:       []string{"--token", "nope", "ls"},
		wantStatus: 1,
		wantStderr: "sandbox: missing or wrong token (UNAUTHORIZED)\n",
	}, {
		name:       "bad --env is a usage error",
		args:       []string{"exec", "demo", "--env", "NOVALUE", "--", "true"},
		wantStatus: 2,
		wantStderr: "sandbox: invalid --env \"NOVALUE\": want KEY=VALUE\nRun 'sandbox exec --help' for usage.\n",
	}, {
		name:       "missing command is a usage error",
		args:       []string{"exec", "demo"},
		wantStatus: 2,
		wantStderr: "sandbox: requires at least 2 arg(s)",
	}, {
		name:       "unknown flag is a usage error",
		args:       []string{"ls", "--bogus"},
		wantStatus: 2,
		wantStderr: "sandbox: unknown flag: --bogus",
	}}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			env := st.env
			if env == nil {
				env = map[string]string{"SANDBOX_TOKEN": "tok"}
			}
			var stdout, stderr bytes.Buffer
			a := &app{stdin: strings.NewReader(st.stdin), stdout: &stdout, stderr: &stderr, getenv: func(k string) string { return env[k] }}
			status := a.run(t.Context(), append([]string{"--url", srv.URL}, st.args...))
			if status != st.wantStatus {
				t.Errorf("exit status %d, want %d (stderr %q)", status, st.wantStatus, stderr.String())
			}
			if got := stdout.String(); got != st.wantStdout && !(st.stdoutPart && strings.Contains(got, st.wantStdout)) {
				t.Errorf("stdout = %q, want %q", got, st.wantStdout)
			}
			if got := stderr.String(); !strings.HasPrefix(got, st.wantStderr) || (st.wantStderr == "" && got != "") {
				t.Errorf("stderr = %q, want it to start with %q", got, st.wantStderr)
			}
			if st.wantExec != nil {
				f.mu.Lock()
				got, _ := json.Marshal(f.lastExec)
				f.mu.Unlock()
				if want, _ := json.Marshal(st.wantExec); string(got) != string(want) {
					t.Errorf("exec request = %s, want %s", got, want)
				}
			}
		})
	}
}

func TestAgo(t *testing.T) {
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		t    time.Time
		want string
	}{
		{time.Time{}, "-"},
		{now.Add(time.Second), "0s ago"},
		{now.Add(-59 * time.Second), "59s ago"},
		{now.Add(-61 * time.Minute), "1h ago"},
		{now.Add(-47 * time.Hour), "47h ago"},
		{now.Add(-72 * time.Hour), "3d ago"},
	}
	for _, tc := range tests {
		if got := ago(tc.t, now); got != tc.want {
			t.Errorf("ago(%v) = %q, want %q", tc.t, got, tc.want)
		}
	}
}
