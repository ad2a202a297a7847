package sandbox

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sandboxd/sandboxd/api"
)

// sseBody renders events as the body of an event stream, numbering their
// IDs from 1 and putting a heartbeat before each.
func sseBody(events ...api.StreamEvent) string {
	var b strings.Builder
	for i, ev := range events {
		data, _ := json.Marshal(ev)
		b.WriteString(": ping\n\n")
		writeSSE(&b, ev.Type, strconv.Itoa(i+1), string(data))
	}
	return b.String()
}

// sseResponse is a canned event-stream response.
func sseResponse(events ...api.StreamEvent) response {
	return response{status: 200, header: http.Header{"Content-Type": {"text/event-stream"}}, body: sseBody(events...)}
}

func chunk(typ, data string) api.StreamEvent { return api.StreamEvent{Type: typ, Data: data} }

func binChunk(typ string, data []byte) api.StreamEvent {
	return api.StreamEvent{Type: typ, Data: base64.StdEncoding.EncodeToString(data), Encoding: api.EncodingBase64}
}

var (
	startEv    = api.StreamEvent{Type: api.EventStart, Command: "make", Pid: 42, SessionID: "default"}
	completeEv = api.StreamEvent{Type: api.EventComplete, ExitCode: new(3), DurationMs: 1500}
)

func TestExecStreamEvents(t *testing.T) {
	c, f := newFake(t, sseResponse(startEv, chunk("stdout", "héllo\n"), binChunk("stdout", []byte{0, 0xff, '\n'}),
		chunk("stderr", "warn"), api.StreamEvent{Type: "progress"}, completeEv))
	st, err := c.Get("demo").ExecStream(t.Context(), "make", &ExecOptions{Cwd: "/src", Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	var got []Event
	for ev, err := range st.Events() {
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, ev)
	}
	want := []Event{
		{Type: "start", ID: "1", Command: "make", Pid: 42, SessionID: "default"},
		{Type: "stdout", ID: "2", Data: []byte("héllo\n")},
		{Type: "stdout", ID: "3", Data: []byte{0, 0xff, '\n'}},
		{Type: "stderr", ID: "4", Data: []byte("warn")},
		{Type: "progress", ID: "5"},
		{Type: "complete", ID: "6", ExitCode: 3, DurationMs: 1500},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("events:\n%+v\nwant\n%+v", got, want)
	}
	if err := st.Err(); err != nil {
		t.Errorf("Err = %v after a complete stream", err)
	}
	wantReq := request{method: "POST", path: "/v1/sandboxes/demo/exec/stream", auth: "Bearer tok",
		body: `{"command":"make","timeoutMs":1000,"cwd":"/src"}`}
	if reqs := f.seen(); len(reqs) != 1 || reqs[0] != wantReq {
		t.Errorf("requests = %+v, want [%+v]", reqs, wantReq)
	}
}

func TestExecStreamWait(t *testing.T) {
	c, _ := newFake(t, sseResponse(startEv, chunk("stdout", "a"), binChunk("stdout", []byte{0}),
		chunk("stderr", "e"), chunk("stdout", "\n"), completeEv))
	st, err := c.Get("demo").ExecStream(t.Context(), "ignored", nil)
	if err != nil {
		t.Fatal(err)
	}
	res, err := st.Wait()
	if err != nil {
		t.Fatal(err)
	}
	want := &api.ExecResult{ExitCode: 3, Stdout: "a\x00\n", Stderr: "e", Command: "make", DurationMs: 1500, SessionID: "default"}
	if !reflect.DeepEqual(res, want) {
		t.Errorf("Wait = %+v\nwant %+v", res, want)
	}
	if st.Next() {
		t.Error("Next after Wait returned true")
	}
}

func TestExecStreamEndsBadly(t *testing.T) {
	tests := []struct {
		name    string
		resp    response
		wantErr error  // matched with errors.Is
		wantMsg string // part of the error
	}{{
		name:    "eof without complete",
		resp:    sseResponse(startEv, chunk("stdout", "partial")),
		wantErr: io.ErrUnexpectedEOF,
		wantMsg: "exec stream sandbox demo: stream ended before its complete event",
	}, {
		name:    "eof inside an event",
		resp:    response{status: 200, header: http.Header{"Content-Type": {"text/event-stream"}}, body: "event: complete\ndata: {\"exitCode\":0}\n"},
		wantErr: io.ErrUnexpectedEOF,
	}, {
		name:    "error event",
		resp:    sseResponse(startEv, api.StreamEvent{Type: "error", Code: api.CodeSessionTerminated, Message: "shell exited", ExitCode: new(3)}),
		wantErr: ErrSessionTerminated,
		wantMsg: "shell exited (SESSION_TERMINATED)",
	}, {
		name:    "complete without exit code",
		resp:    sseResponse(api.StreamEvent{Type: api.EventComplete}),
		wantMsg: "has no exit code",
	}, {
		name:    "bad json",
		resp:    response{status: 200, header: http.Header{"Content-Type": {"text/event-stream"}}, body: "event: stdout\ndata: {\n\n"},
		wantMsg: "decode",
	}, {
		name:    "bad base64",
		resp:    sseResponse(api.StreamEvent{Type: "stdout", Data: "!!", Encoding: "base64"}),
		wantMsg: "illegal base64",
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, _ := newFake(t, tc.resp)
			st, err := c.Get("demo").ExecStream(t.Context(), "x", nil)
			if err != nil {
				t.Fatal(err)
			}
			res, err := st.Wait()
			if err == nil || (tc.wantErr != nil && !errors.Is(err, tc.wantErr)) || !strings.Contains(err.Error(), tc.wantMsg) {
				t.Errorf("Wait = %+v, %v; want error %v containing %q", res, err, tc.wantErr, tc.wantMsg)
			}
			if st.Err() != err {
				t.Errorf("Err = %v, Wait's error %v", st.Err(), err)
			}
		})
	}
}

func TestExecStreamErrorEventCarriesExitCode(t *testing.T) {
	c, _ := newFake(t, sseResponse(api.StreamEvent{Type: "error", Code: api.CodeSessionTerminated, Message: "m", ExitCode: new(3)}))
	_, err := c.Get("demo").Exec(t.Context(), "exit 3", &ExecOptions{OnStdout: func([]byte) {}})
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("err = %v, want an *Error", err)
	}
	if code, ok := e.ExitCode(); !ok || code != 3 {
		t.Errorf("ExitCode = %d, %v; want 3", code, ok)
	}
	if !strings.HasPrefix(err.Error(), "exec sandbox demo: ") {
		t.Errorf("err = %q, want Exec's prefix", err)
	}
}

func TestExecStreamRefused(t *testing.T) {
	tests := []struct {
		name      string
		resp      response
		wantErr   error
		wantCalls int
	}{
		{"daemon error", response{status: 404, body: `{"code":"SESSION_NOT_FOUND","message":"no session s","httpStatus":404}`}, ErrSessionNotFound, 1},
		{"503 is not retried", unavailable, ErrUnavailable, 1},
		{"not an event stream", response{status: 200, header: http.Header{"Content-Type": {"application/json"}}, body: `{}`}, nil, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, f := newFake(t, tc.resp)
			st, err := c.Get("demo").ExecStream(t.Context(), "x", nil)
			if err == nil || (tc.wantErr != nil && !errors.Is(err, tc.wantErr)) {
				t.Errorf("ExecStream = %v, %v; want error %v", st, err, tc.wantErr)
			}
			if n := len(f.seen()); n != tc.wantCalls {
				t.Errorf("daemon got %d calls, want %d", n, tc.wantCalls)
			}
		})
	}
}

// liveDaemon serves an exec stream whose events are written one by one: an
// event that follows a stdout or stderr event is sent only once the test has
// seen that one, and says so through next.
func liveDaemon(t *testing.T, next <-chan struct{}, events ...api.StreamEvent) *Client {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(200)
		for i, ev := range events {
			if i > 0 && (events[i-1].Type == api.EventStdout || events[i-1].Type == api.EventStderr) {
				select {
				case <-next:
				case <-r.Context().Done():
					return
				}
			}
			io.WriteString(w, sseBody(ev))
			w.(http.Flusher).Flush()
		}
	}))
	t.Cleanup(srv.Close)
	c, err := NewClient(Options{URL: srv.URL, HTTPClient: srv.Client()})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestExecWithCallbacksIsLive(t *testing.T) {
	next := make(chan struct{})
	c := liveDaemon(t, next, startEv, chunk("stdout", "one\n"), binChunk("stderr", []byte{0xfe}), chunk("stdout", "two"), completeEv)
	var out, errOut []string
	res, err := c.Get("demo").Exec(t.Context(), "make", &ExecOptions{
		// The daemon sends each event only once the one before was seen, so
		// the call would hang if callbacks ran after the command completed.
		OnStdout: func(b []byte) { out = append(out, string(b)); next <- struct{}{} },
		OnStderr: func(b []byte) { errOut = append(errOut, string(b)); next <- struct{}{} },
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"one\n", "two"}; !reflect.DeepEqual(out, want) {
		t.Errorf("OnStdout got %q, want %q", out, want)
	}
	if want := []string{"\xfe"}; !reflect.DeepEqual(errOut, want) {
		t.Errorf("OnStderr got %q, want %q", errOut, want)
	}
	want := &api.ExecResult{ExitCode: 3, Stdout: "one\ntwo", Stderr: "\xfe", Command: "make", DurationMs: 1500, SessionID: "default"}
	if !reflect.DeepEqual(res, want) {
		t.Errorf("result = %+v\nwant %+v", res, want)
	}
}

func TestExecStreamCloseAndCancel(t *testing.T) {
	t.Run("break closes the stream", func(t *testing.T) {
		c := liveDaemon(t, make(chan struct{}), startEv, completeEv)
		st, err := c.Get("demo").ExecStream(t.Context(), "x", nil)
		if err != nil {
			t.Fatal(err)
		}
		for range st.Events() {
			break
		}
		if st.Next() || st.Err() != nil {
			t.Errorf("after break: Next true or Err %v", st.Err())
		}
	})
	t.Run("Close from another goroutine ends Next", func(t *testing.T) {
		c := liveDaemon(t, make(chan struct{}), startEv, chunk("stdout", "x"), completeEv)
		st, err := c.Get("demo").ExecStream(t.Context(), "x", nil)
		if err != nil {
			t.Fatal(err)
		}
		for range 2 { // start and stdout; complete is held back
			if !st.Next() {
				t.Fatal(st.Err())
			}
		}
		time.AfterFunc(20*time.Millisecond, func() { st.Close() })
		if st.Next() || st.Err() != nil {
			t.Errorf("after Close: Next true or Err %v", st.Err())
		}
		if _, err := st.Wait(); err == nil {
			t.Error("Wait on a closed stream succeeded")
		}
	})
	t.Run("cancelled context", func(t *testing.T) {
		c := liveDaemon(t, make(chan struct{}), startEv, chunk("stdout", "x"), completeEv)
		ctx, cancel := context.WithCancel(t.Context())
		st, err := c.Get("demo").ExecStream(ctx, "x", nil)
		if err != nil {
			t.Fatal(err)
		}
		time.AfterFunc(20*time.Millisecond, cancel)
		if _, err := st.Wait(); !errors.Is(err, context.Canceled) {
			t.Errorf("Wait = %v, want context.Canceled", err)
		}
	})
}

func TestKeptOutput(t *testing.T) {
	var k keptOutput
	k.add(make([]byte, maxKept-1))
	k.add([]byte("ab"))
	if len(k.b) != maxKept || !k.truncated || k.b[maxKept-1] != 'a' {
		t.Errorf("kept %d bytes, truncated %v", len(k.b), k.truncated)
	}
	k.add([]byte("c"))
	if len(k.b) != maxKept {
		t.Errorf("kept %d bytes after the cap", len(k.b))
	}
}
