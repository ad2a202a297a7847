package sandbox

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"reflect"
	"testing"
	"time"

	"github.com/sandboxd/sandboxd/api"
)

const processJSON = `{"id":"web","pid":12,"command":"sleep 9","status":"running","startTime":"2026-11-25T12:00:00Z","sessionId":"default"}`

const exitedJSON = `{"id":"web","pid":12,"command":"sleep 9","status":"killed","exitCode":143,"startTime":"2026-11-25T12:00:00Z","sessionId":"default"}`

// TestProcessRequests checks what each process call sends and that it
// decodes the answer.
func TestProcessRequests(t *testing.T) {
	web := func(c *Client) *Process { return c.Get("demo").Process("web") }
	tests := []requestCase{{
		name: "start with options",
		call: func(ctx context.Context, c *Client) error {
			p, err := c.Get("demo").StartProcess(ctx, "python3 -m http.server", &ProcessOptions{
				ID: "web", Env: map[string]string{"A": "1"}, Cwd: "/srv", Timeout: time.Minute, AutoCleanup: true,
			})
			if err == nil && p.ID() != "web" {
				t.Errorf("handle on %q, want web", p.ID())
			}
			return err
		},
		resp: response{status: 201, body: processJSON},
		want: request{method: "POST", path: "/v1/sandboxes/demo/processes",
			body: `{"command":"python3 -m http.server","processId":"web","cwd":"/srv","env":{"A":"1"},"timeoutMs":60000,"autoCleanup":true}`},
	}, {
		name: "list running",
		call: func(ctx context.Context, c *Client) error {
			list, err := c.Get("demo").ListProcesses(ctx, api.ProcessRunning)
			if err == nil && (len(list) != 1 || list[0].Pid != 12) {
				t.Errorf("list = %+v", list)
			}
			return err
		},
		resp: response{status: 200, body: `{"processes":[` + processJSON + `],"count":1}`},
		want: request{method: "GET", path: "/v1/sandboxes/demo/processes", query: "status=running"},
	}, {
		name: "list all",
		call: func(ctx context.Context, c *Client) error { _, err := c.Get("demo").ListProcesses(ctx, ""); return err },
		resp: response{status: 200, body: `{"processes":[],"count":0}`},
		want: request{method: "GET", path: "/v1/sandboxes/demo/processes"},
	}, {
		name: "info escapes the id",
		call: func(ctx context.Context, c *Client) error {
			_, err := c.Get("demo").Process("a b/c").Info(ctx)
			return err
		},
		resp: response{status: 200, body: processJSON},
		want: request{method: "GET", path: "/v1/sandboxes/demo/processes/a%20b%2Fc"},
	}, {
		name: "kill with a signal",
		call: func(ctx context.Context, c *Client) error {
			info, err := web(c).Kill(ctx, "SIGKILL")
			if err == nil && (info.ExitCode == nil || *info.ExitCode != 143) {
				t.Errorf("info = %+v", info)
			}
			return err
		},
		resp: response{status: 200, body: exitedJSON},
		want: request{method: "DELETE", path: "/v1/sandboxes/demo/processes/web", query: "signal=SIGKILL"},
	}, {
		name: "kill with the default signal",
		call: func(ctx context.Context, c *Client) error {
			_, err := c.Get("demo").KillProcess(ctx, "web", "")
			return err
		},
		resp: response{status: 200, body: exitedJSON},
		want: request{method: "DELETE", path: "/v1/sandboxes/demo/processes/web"},
	}, {
		name: "kill all",
		call: func(ctx context.Context, c *Client) error {
			n, err := c.Get("demo").KillAllProcesses(ctx)
			if err == nil && n != 2 {
				t.Errorf("killed %d, want 2", n)
			}
			return err
		},
		resp: response{status: 200, body: `{"killedCount":2}`},
		want: request{method: "DELETE", path: "/v1/sandboxes/demo/processes"},
	}, {
		name: "logs are decoded",
		call: func(ctx context.Context, c *Client) error {
			logs, err := web(c).Logs(ctx)
			want := &api.ProcessLogs{ProcessID: "web", Stdout: "a\x00\xff", Stderr: "é"}
			if err == nil && !reflect.DeepEqual(logs, want) {
				t.Errorf("logs = %+v, want %+v", logs, want)
			}
			return err
		},
		resp: response{status: 200, body: `{"processId":"web","stdout":"YQD/","stdoutEncoding":"base64","stderr":"é"}`},
		want: request{method: "GET", path: "/v1/sandboxes/demo/processes/web/logs"},
	}, {
		name: "wait for log",
		call: func(ctx context.Context, c *Client) error {
			res, err := web(c).WaitForLog(ctx, "listening on \\d+", &LogWaitOptions{Regex: true, Stream: "stderr", Timeout: 2 * time.Second})
			if err == nil && res.Line != "listening on 80" {
				t.Errorf("result = %+v", res)
			}
			return err
		},
		resp: response{status: 200, body: `{"ready":true,"line":"listening on 80"}`},
		want: request{method: "POST", path: "/v1/sandboxes/demo/processes/web/wait",
			body: `{"log":"listening on \\d+","regex":true,"stream":"stderr","timeoutMs":2000}`},
	}, {
		name: "wait for port",
		call: func(ctx context.Context, c *Client) error {
			return web(c).WaitForPort(ctx, 8080, &PortWaitOptions{Mode: "http", Path: "/health", Status: "200-299", Timeout: time.Second})
		},
		resp: response{status: 200, body: `{"ready":true}`},
		want: request{method: "POST", path: "/v1/sandboxes/demo/processes/web/wait",
			body: `{"port":8080,"portMode":"http","path":"/health","status":"200-299","timeoutMs":1000}`},
	}, {
		name: "wait for exit",
		call: func(ctx context.Context, c *Client) error {
			code, err := web(c).WaitForExit(ctx, 5*time.Second)
			if err == nil && code != 143 {
				t.Errorf("exit code %d, want 143", code)
			}
			return err
		},
		resp: response{status: 200, body: `{"ready":true,"exitCode":143,"status":"killed"}`},
		want: request{method: "POST", path: "/v1/sandboxes/demo/processes/web/wait", body: `{"exit":true,"timeoutMs":5000}`},
	}, {
		name: "stream logs resumes after an event",
		call: func(ctx context.Context, c *Client) error {
			st, err := web(c).StreamLogs(ctx, "17")
			if err != nil {
				return err
			}
			defer st.Close()
			return nil
		},
		resp: sseResponse(api.StreamEvent{Type: api.EventExit, ExitCode: new(0), Status: "completed"}),
		want: request{method: "GET", path: "/v1/sandboxes/demo/processes/web/logs/stream", lastEventID: "17"},
	}}
	checkRequests(t, tests)
}

func TestWaitTimeoutFromContext(t *testing.T) {
	c, f := newFake(t, response{status: 200, body: `{"ready":true}`})
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	if err := c.Get("demo").Process("web").WaitForPort(ctx, 80, nil); err != nil {
		t.Fatal(err)
	}
	var req api.WaitRequest
	if err := json.Unmarshal([]byte(f.seen()[0].body), &req); err != nil {
		t.Fatal(err)
	}
	if req.Port != 80 || req.TimeoutMs <= 50_000 || req.TimeoutMs > 60_000 {
		t.Errorf("request = %+v, want port 80 and about the context's minute", req)
	}
}

func TestWaitErrors(t *testing.T) {
	timeout := response{status: 408, body: `{"code":"TIMEOUT","message":"no match in 1000 ms","httpStatus":408}`}
	exited := response{status: 409, body: `{"code":"PROCESS_EXITED","message":"process web exited with 1","httpStatus":409,"details":{"exitCode":1}}`}
	t.Run("408 is ErrTimeout", func(t *testing.T) {
		c, _ := newFake(t, timeout)
		_, err := c.Get("demo").Process("web").WaitForLog(t.Context(), "ready", nil)
		if !errors.Is(err, ErrTimeout) {
			t.Errorf("err = %v, want ErrTimeout", err)
		}
		want := `wait for log "ready" of process web in sandbox demo: no match in 1000 ms (TIMEOUT)`
		if err.Error() != want {
			t.Errorf("err = %q, want %q", err, want)
		}
	})
	t.Run("409 carries the exit code, under the daemon's code", func(t *testing.T) {
		c, _ := newFake(t, exited)
		err := c.Get("demo").Process("web").WaitForPort(t.Context(), 80, nil)
		var e *Error
		if !errors.As(err, &e) || e.Code != "PROCESS_EXITED" || e.HTTPStatus != 409 {
			t.Fatalf("err = %v, want the daemon's 409", err)
		}
		if code, ok := e.ExitCode(); !ok || code != 1 {
			t.Errorf("ExitCode = %d, %v; want 1", code, ok)
		}
		if errors.Is(err, ErrProcessExists) || errors.Is(err, ErrTimeout) {
			t.Errorf("err %v matches an unrelated sentinel", err)
		}
	})
	t.Run("wait for exit takes a 409's exit code as the answer", func(t *testing.T) {
		c, _ := newFake(t, exited)
		code, err := c.Get("demo").Process("web").WaitForExit(t.Context(), 0)
		if err != nil || code != 1 {
			t.Errorf("WaitForExit = %d, %v; want 1", code, err)
		}
	})
	t.Run("wait for exit without an exit code", func(t *testing.T) {
		c, _ := newFake(t, response{status: 200, body: `{"ready":true}`})
		if _, err := c.Get("demo").Process("web").WaitForExit(t.Context(), 0); err == nil {
			t.Error("WaitForExit succeeded without an exit code")
		}
	})
}

func TestProcessErrors(t *testing.T) {
	t.Run("duplicate id", func(t *testing.T) {
		c, _ := newFake(t, response{status: 409, body: `{"code":"PROCESS_ALREADY_EXISTS","message":"process web exists","httpStatus":409}`})
		_, err := c.Get("demo").StartProcess(t.Context(), "x", &ProcessOptions{ID: "web"})
		if !errors.Is(err, ErrProcessExists) {
			t.Errorf("err = %v, want ErrProcessExists", err)
		}
	})
	t.Run("unknown process", func(t *testing.T) {
		c, _ := newFake(t, response{status: 404, body: `{"code":"PROCESS_NOT_FOUND","message":"no process nope","httpStatus":404}`})
		_, err := c.Get("demo").GetProcess(t.Context(), "nope")
		if !errors.Is(err, ErrProcessNotFound) || err.Error() != "get process nope in sandbox demo: no process nope (PROCESS_NOT_FOUND)" {
			t.Errorf("err = %v", err)
		}
	})
	t.Run("start is not retried, reads are", func(t *testing.T) {
		c, f := newFake(t, unavailable, response{status: 200, body: processJSON})
		if _, err := c.Get("demo").StartProcess(t.Context(), "x", nil); !errors.Is(err, ErrUnavailable) {
			t.Errorf("StartProcess err = %v, want ErrUnavailable", err)
		}
		c, f2 := newFake(t, unavailable, response{status: 200, body: processJSON})
		if _, err := c.Get("demo").GetProcess(t.Context(), "web"); err != nil {
			t.Errorf("GetProcess err = %v, want a retry to succeed", err)
		}
		if n, n2 := len(f.seen()), len(f2.seen()); n != 1 || n2 != 2 {
			t.Errorf("start sent %d requests (want 1), get %d (want 2)", n, n2)
		}
	})
	t.Run("ids that are not one path segment send nothing", func(t *testing.T) {
		c, f := newFake(t, response{status: 200, body: processJSON})
		sb := c.Get("demo")
		errs := []error{}
		_, err := sb.GetProcess(t.Context(), "..")
		errs = append(errs, err)
		_, err = sb.Process("").Kill(t.Context(), "")
		errs = append(errs, err)
		_, err = sb.StreamProcessLogs(t.Context(), ".", "")
		errs = append(errs, err)
		for i, err := range errs {
			if !errors.Is(err, ErrValidation) {
				t.Errorf("call %d: err = %v, want ErrValidation", i, err)
			}
		}
		if n := len(f.seen()); n != 0 {
			t.Errorf("sent %d requests", n)
		}
	})
}

func TestLogStream(t *testing.T) {
	exit := api.StreamEvent{Type: api.EventExit, ExitCode: new(143), Status: api.ProcessKilled}
	t.Run("events then exit", func(t *testing.T) {
		c, _ := newFake(t, sseResponse(chunk("stdout", "a"), binChunk("stderr", []byte{0xff}), exit))
		st, err := c.Get("demo").StreamProcessLogs(t.Context(), "web", "")
		if err != nil {
			t.Fatal(err)
		}
		var got []Event
		for st.Next() {
			got = append(got, st.Event())
		}
		want := []Event{
			{Type: "stdout", ID: "1", Data: []byte("a")},
			{Type: "stderr", ID: "2", Data: []byte{0xff}},
			{Type: "exit", ID: "3", ExitCode: 143, Status: "killed"},
		}
		if !reflect.DeepEqual(got, want) || st.Err() != nil {
			t.Errorf("events = %+v, %v\nwant %+v", got, st.Err(), want)
		}
	})
	t.Run("wait", func(t *testing.T) {
		c, _ := newFake(t, sseResponse(chunk("stdout", "a"), exit))
		st, err := c.Get("demo").Process("web").StreamLogs(t.Context(), "")
		if err != nil {
			t.Fatal(err)
		}
		ev, err := st.Wait()
		if err != nil || ev.ExitCode != 143 || ev.Status != api.ProcessKilled {
			t.Errorf("Wait = %+v, %v", ev, err)
		}
	})
	t.Run("a complete event does not end a log stream", func(t *testing.T) {
		c, _ := newFake(t, sseResponse(chunk("stdout", "a"), completeEv))
		st, err := c.Get("demo").Process("web").StreamLogs(t.Context(), "")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := st.Wait(); !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Errorf("Wait = %v, want ErrUnexpectedEOF", err)
		}
	})
}
