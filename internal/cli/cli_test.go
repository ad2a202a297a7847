package cli

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
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

// fakeDaemon keeps sandboxes, processes and sessions in memory and answers
// exec streams with canned output.
type fakeDaemon struct {
	mu        sync.Mutex
	sandboxes map[string]api.Sandbox
	lastExec  api.ExecRequest
	// liveSeen, if set, is closed by the test once it has seen the first
	// output of the command "live", whose stream waits for it.
	liveSeen chan struct{}

	processes map[string]api.Process
	lastStart api.StartProcessRequest
	lastKill  string // the signal query of the last kill
	sessions  map[string]api.Session
	files     memFS // the sandbox's files, for every sandbox
}

func newFakeDaemon(t *testing.T) (*fakeDaemon, *httptest.Server) {
	f := &fakeDaemon{sandboxes: map[string]api.Sandbox{}, processes: map[string]api.Process{},
		sessions: map[string]api.Session{api.DefaultSessionID: {ID: api.DefaultSessionID, Cwd: "/workspace", CreatedAt: time.Now().Add(-time.Hour)}}}
	mux := http.NewServeMux()
	mux.HandleFunc("PUT /v1/sandboxes/{id}", f.create)
	mux.HandleFunc("GET /v1/sandboxes", f.list)
	mux.HandleFunc("GET /v1/sandboxes/{id}", f.info)
	mux.HandleFunc("DELETE /v1/sandboxes/{id}", f.destroy)
	mux.HandleFunc("POST /v1/sandboxes/{id}/exec/stream", f.execStream)
	f.routeProcesses(mux)
	f.routeSessions(mux)
	f.routeFiles(mux)
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

// execStream streams fixed output, with exit code 7 if the env var CODE is
// 7. Some commands act otherwise: "exit 3" ends the stream with a
// terminated session, "exit 4" is refused the same way before the stream,
// "drop" breaks off, "live" waits for the test to see its first output.
func (f *fakeDaemon) execStream(w http.ResponseWriter, r *http.Request) {
	var req api.ExecRequest
	json.NewDecoder(r.Body).Decode(&req)
	f.lastExec = req
	if req.Command == "exit 4" {
		w.WriteHeader(410)
		json.NewEncoder(w).Encode(api.Error{Code: api.CodeSessionTerminated, Message: "shell exited with status 4",
			HTTPStatus: 410, Details: map[string]any{"exitCode": 4}})
		return
	}
	sse := newSSEWriter(w)
	sse.send(api.StreamEvent{Type: api.EventStart, Command: req.Command, Pid: 7})
	switch req.Command {
	case "exit 3":
		sse.send(api.StreamEvent{Type: api.EventError, Code: api.CodeSessionTerminated,
			Message: "shell exited with status 3", ExitCode: new(3)})
		return
	case "drop":
		sse.send(api.StreamEvent{Type: api.EventStdout, Data: "partial"})
		return
	case "live":
		sse.send(api.StreamEvent{Type: api.EventStdout, Data: "first\n"})
		select {
		case <-f.liveSeen:
			sse.send(api.StreamEvent{Type: api.EventStdout, Data: "second\n"})
			sse.send(api.StreamEvent{Type: api.EventComplete, ExitCode: new(5)})
		case <-time.After(5 * time.Second):
			sse.send(api.StreamEvent{Type: api.EventError, Code: api.CodeInternal, Message: "first output never seen"})
		}
		return
	}
	code := 0
	if req.Env["CODE"] == "7" {
		code = 7
	}
	sse.send(api.StreamEvent{Type: api.EventStdout, Data: base64.StdEncoding.EncodeToString([]byte("out\x00\n")), Encoding: api.EncodingBase64})
	sse.send(api.StreamEvent{Type: api.EventStderr, Data: "err"})
	sse.send(api.StreamEvent{Type: api.EventStdout, Data: "\n"})
	sse.send(api.StreamEvent{Type: api.EventComplete, ExitCode: &code, DurationMs: 3})
}

// sseWriter writes Server-Sent Events as the daemon does, each after a
// heartbeat, and flushes them.
type sseWriter struct {
	w  http.ResponseWriter
	id int
}

func newSSEWriter(w http.ResponseWriter) *sseWriter {
	w.Header().Set("Content-Type", "text/event-stream")
	w.WriteHeader(200)
	return &sseWriter{w: w}
}

func (s *sseWriter) send(ev api.StreamEvent) {
	s.id++
	data, _ := json.Marshal(ev)
	fmt.Fprintf(s.w, ": ping\n\nevent: %s\nid: %d\ndata: %s\n\n", ev.Type, s.id, data)
	s.w.(http.Flusher).Flush()
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
		check      func(t *testing.T, f *fakeDaemon) // called with f.mu held
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
		wantStdout: "ID     STATUS    IMAGE   CREATED   LAST ACTIVE   SLEEPS\n" +
			"b      running           2h ago    1m ago        -\n" +
			"demo   running   py      2h ago    1m ago        -\n",
	}, {
		name: "ls by label",
		args: []string{"ls", "--label", "team=ml"},
		wantStdout: "ID     STATUS    IMAGE   CREATED   LAST ACTIVE   SLEEPS\n" +
			"demo   running   py      2h ago    1m ago        -\n",
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
		name:       "exec refused because the shell exited exits with the shell's status",
		args:       []string{"exec", "demo", "--", "exit 4"},
		wantStatus: 4,
		wantStderr: "sandbox: shell exited with status 4 (SESSION_TERMINATED)\n",
	}, {
		name:       "exec stream that breaks off is an error, not an exit",
		args:       []string{"exec", "demo", "--", "drop"},
		wantStatus: 1,
		wantStdout: "partial",
		wantStderr: "sandbox: exec stream sandbox demo: stream ended before its complete event: unexpected EOF\n",
	}, {
		name:       "start",
		args:       []string{"start", "demo", "--id", "web", "--env", "A=1", "-w", "/srv", "--session", "s1", "--timeout", "1h", "--", "python3", "-m", "http.server"},
		wantStdout: "web\n",
		check: func(t *testing.T, f *fakeDaemon) {
			want := api.StartProcessRequest{Command: "python3 -m http.server", ProcessID: "web", SessionID: "s1", Cwd: "/srv",
				Env: map[string]string{"A": "1"}, TimeoutMs: 3600000}
			if got, _ := json.Marshal(f.lastStart); string(got) != mustJSON(want) {
				t.Errorf("start request = %s, want %s", got, mustJSON(want))
			}
		},
	}, {
		name:       "start with a generated id",
		args:       []string{"start", "demo", "--", "sleep 100"},
		wantStdout: "proc-2\n",
	}, {
		name:       "start with a taken id",
		args:       []string{"start", "demo", "--id", "web", "--", "true"},
		wantStatus: 1,
		wantStderr: "sandbox: process web already exists (PROCESS_ALREADY_EXISTS)\n",
	}, {
		name: "ps",
		args: []string{"ps", "demo"},
		wantStdout: "ID       PID   STATUS    EXIT   STARTED   COMMAND\n" +
			"proc-2   101   running   -      1m ago    sleep 100\n" +
			"web      100   running   -      1m ago    python3 -m http.server\n",
	}, {
		name:       "logs",
		args:       []string{"logs", "demo", "web"},
		wantStdout: "a\x00b\n",
		wantStderr: "e",
	}, {
		name:       "logs -f",
		args:       []string{"logs", "demo", "web", "-f"},
		wantStdout: "a\x00b\n",
		wantStderr: "e",
	}, {
		name:       "logs of an unknown process",
		args:       []string{"logs", "demo", "nope", "--follow"},
		wantStatus: 1,
		wantStderr: "sandbox: process nope not found (PROCESS_NOT_FOUND)\n",
	}, {
		name:       "kill with a signal, reporting each failure",
		args:       []string{"kill", "demo", "nope", "web", "--signal", "SIGKILL"},
		wantStatus: 1,
		wantStdout: "web\n",
		wantStderr: "sandbox: process nope not found (PROCESS_NOT_FOUND)\n",
		check: func(t *testing.T, f *fakeDaemon) {
			if f.lastKill != "SIGKILL" {
				t.Errorf("signal = %q, want SIGKILL", f.lastKill)
			}
		},
	}, {
		name:       "kill without a process is a usage error",
		args:       []string{"kill", "demo"},
		wantStatus: 2,
		wantStderr: "sandbox: name the processes to kill, or use --all\n",
	}, {
		name:       "kill all",
		args:       []string{"kill", "demo", "--all"},
		wantStdout: "1\n",
	}, {
		name:       "ps running as json, nothing found",
		args:       []string{"ps", "demo", "--status", "running", "--json"},
		wantStdout: "[]\n",
	}, {
		name: "ps shows exit codes",
		args: []string{"ps", "demo"},
		wantStdout: "ID       PID   STATUS   EXIT   STARTED   COMMAND\n" +
			"proc-2   101   killed   143    1m ago    sleep 100\n" +
			"web      100   killed   143    1m ago    python3 -m http.server\n",
	}, {
		name:       "start one whose log stream breaks off",
		args:       []string{"start", "demo", "--id", "broken", "--", "true"},
		wantStdout: "broken\n",
	}, {
		name:       "logs -f of a stream that breaks off is an error",
		args:       []string{"logs", "demo", "broken", "-f"},
		wantStatus: 1,
		wantStdout: "a\x00b\n",
		wantStderr: "esandbox: stream logs of process broken in sandbox demo: stream ended before its exit event: unexpected EOF\n"}, {
		name:       "session create",
		args:       []string{"session", "create", "demo", "--id", "s1", "--cwd", "/w", "--env", "A=1", "--timeout", "2s"},
		wantStdout: "s1\n",
		check: func(t *testing.T, f *fakeDaemon) {
			want := api.Session{ID: "s1", Cwd: "/w", Env: map[string]string{"A": "1"}, CommandTimeoutMs: 2000}
			got := f.sessions["s1"]
			got.CreatedAt = time.Time{}
			if mustJSON(got) != mustJSON(want) {
				t.Errorf("session = %s, want %s", mustJSON(got), mustJSON(want))
			}
		},
	}, {
		name:       "session create duplicate",
		args:       []string{"session", "create", "demo", "--id", "s1"},
		wantStatus: 1,
		wantStderr: "sandbox: session s1 already exists (SESSION_ALREADY_EXISTS)\n",
	}, {
		name: "session ls",
		args: []string{"session", "ls", "demo"},
		wantStdout: "ID        CWD          CREATED\n" +
			"default   /workspace   1h ago\n" +
			"s1        /w           2m ago\n",
	}, {
		name:       "session rm reports each failure and goes on",
		args:       []string{"session", "rm", "demo", "default", "s1"},
		wantStatus: 1,
		wantStdout: "s1\n",
		wantStderr: "sandbox: the default session cannot be deleted (VALIDATION_FAILED)\n",
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
		name:       "an unreadable token file named on the command line is an error",
		args:       []string{"--token-file", tokenFile + ".missing", "info", "demo"},
		env:        map[string]string{},
		wantStatus: 1,
		wantStderr: "sandbox: read token: open " + tokenFile + ".missing: no such file or directory\n",
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
			if st.check != nil {
				f.mu.Lock()
				st.check(t, f)
				f.mu.Unlock()
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

// mustJSON is v as JSON.
func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// TestExecStreamsLive checks that exec writes output as the command
// produces it: the fake daemon sends the rest of the output only once the
// first chunk has reached stdout.
func TestExecStreamsLive(t *testing.T) {
	f, srv := newFakeDaemon(t)
	f.liveSeen = make(chan struct{})
	stdout := &notifyWriter{notify: f.liveSeen}
	var stderr bytes.Buffer
	a := &app{stdin: strings.NewReader(""), stdout: stdout, stderr: &stderr, getenv: func(k string) string { return map[string]string{"SANDBOX_TOKEN": "tok"}[k] }}
	status := a.run(t.Context(), []string{"--url", srv.URL, "exec", "demo", "--", "live"})
	if status != 5 || stdout.buf.String() != "first\nsecond\n" || stderr.Len() != 0 {
		t.Errorf("exec = status %d, stdout %q, stderr %q; want 5, first and second line, nothing", status, stdout.buf.String(), stderr.String())
	}
}

// notifyWriter closes notify on its first write.
type notifyWriter struct {
	buf    bytes.Buffer
	notify chan struct{}
}

func (w *notifyWriter) Write(p []byte) (int, error) {
	if w.buf.Len() == 0 {
		close(w.notify)
	}
	return w.buf.Write(p)
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
