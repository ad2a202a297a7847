package sandbox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"testing"
	"time"

	"github.com/sandboxd/sandboxd/api"
)

// watchDaemon serves a file watch: the events in script, then, unless end
// is set, nothing until the client goes away, which it reports on gone.
type watchDaemon struct {
	script []string // raw SSE text, written and flushed one by one
	end    bool
	gone   chan struct{}
	reqs   chan *http.Request
}

func newWatchDaemon(t *testing.T, end bool, script ...string) (*Client, *watchDaemon) {
	t.Helper()
	d := &watchDaemon{script: script, end: end, gone: make(chan struct{}), reqs: make(chan *http.Request, 1)}
	srv := httptest.NewServer(d)
	t.Cleanup(srv.Close)
	c, err := NewClient(Options{URL: srv.URL, HTTPClient: srv.Client()})
	if err != nil {
		t.Fatal(err)
	}
	return c, d
}

func (d *watchDaemon) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	d.reqs <- r
	w.Header().Set("Content-Type", "text/event-stream")
	w.WriteHeader(200)
	for _, s := range d.script {
		io.WriteString(w, s)
		w.(http.Flusher).Flush()
	}
	if d.end {
		return
	}
	<-r.Context().Done()
	close(d.gone)
}

func watchEv(id int, ev api.WatchEvent) string {
	ev.Type = "event"
	b, _ := json.Marshal(ev)
	return fmt.Sprintf("event: event\nid: %d\ndata: %s\n\n", id, b)
}

const watching = "event: watching\ndata: {\"type\":\"watching\",\"path\":\"/w\"}\n\n"

func TestWatchEvents(t *testing.T) {
	evs := []api.WatchEvent{
		{EventType: "create", Path: "/w/a.go"},
		{EventType: "modify", Path: "/w/a.go"},
		{EventType: "move", Path: "/w/b.go", OldPath: "/w/a.go"},
		{EventType: "create", Path: "/w/d", IsDirectory: true},
		{EventType: "overflow"},
	}
	script := []string{": ping\n\n", watching, watchEv(1, evs[0]), ": ping\n\n", watchEv(2, evs[1]),
		"event: progress\ndata: {}\n\n", watchEv(3, evs[2]), watchEv(4, evs[3]), watchEv(5, evs[4])}
	c, d := newWatchDaemon(t, false, script...)
	st, err := c.Get("demo").GetSession("s1").Watch(t.Context(), "/w",
		&WatchOptions{Recursive: true, Include: []string{"*.go", "*.md"}, Exclude: []string{"vendor"}})
	if err != nil {
		t.Fatal(err)
	}
	r := <-d.reqs
	if r.Method != "GET" || r.URL.Path != "/v1/sandboxes/demo/files/watch" ||
		r.URL.RawQuery != "exclude=vendor&include=%2A.go&include=%2A.md&path=%2Fw&recursive=true" ||
		r.Header.Get("X-Session-Id") != "s1" || r.Header.Get("Accept") != "text/event-stream" {
		t.Errorf("request %s %s?%s, headers %v", r.Method, r.URL.Path, r.URL.RawQuery, r.Header)
	}
	var got []api.WatchEvent
	for ev, err := range st.Events() {
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, ev)
		if len(got) == len(evs) {
			break
		}
	}
	for i := range evs {
		evs[i].Type = "event"
	}
	if !reflect.DeepEqual(got, evs) {
		t.Errorf("events:\n%+v\nwant\n%+v", got, evs)
	}
	select {
	case <-d.gone:
	case <-time.After(5 * time.Second):
		t.Fatal("breaking out of the loop did not close the watch")
	}
	if st.Next() || st.Err() != nil {
		t.Errorf("after the loop: Next true or Err %v", st.Err())
	}
}

// TestWatchEnds checks how a watch ends: quietly when closed or when its
// context ends, with an error when the daemon ends it.
func TestWatchEnds(t *testing.T) {
	ev := watchEv(1, api.WatchEvent{EventType: "create", Path: "/w/a"})
	t.Run("closed while waiting", func(t *testing.T) {
		c, d := newWatchDaemon(t, false, watching, ev)
		st, err := c.Get("demo").Watch(t.Context(), "/w", nil)
		if err != nil {
			t.Fatal(err)
		}
		if r := <-d.reqs; r.URL.RawQuery != "path=%2Fw" || r.Header.Get("X-Session-Id") != "" {
			t.Errorf("query %q, session %q", r.URL.RawQuery, r.Header.Get("X-Session-Id"))
		}
		if !st.Next() || st.Event().Path != "/w/a" {
			t.Fatalf("first event %+v, err %v", st.Event(), st.Err())
		}
		time.AfterFunc(50*time.Millisecond, func() { st.Close() })
		if st.Next() {
			t.Errorf("Next after Close returned %+v", st.Event())
		}
		if err := st.Err(); err != nil {
			t.Errorf("Err = %v after Close", err)
		}
		<-d.gone
	})
	t.Run("context ends", func(t *testing.T) {
		c, d := newWatchDaemon(t, false, watching, ev)
		ctx, cancel := context.WithCancel(t.Context())
		st, err := c.Get("demo").Watch(ctx, "/w", nil)
		if err != nil {
			t.Fatal(err)
		}
		<-d.reqs
		time.AfterFunc(50*time.Millisecond, cancel)
		n := 0
		for _, err := range st.Events() {
			if err != nil {
				t.Errorf("error %v when the context ended", err)
			}
			n++
		}
		if n != 1 || st.Err() != nil {
			t.Errorf("%d events, Err %v; want 1, nil", n, st.Err())
		}
		<-d.gone
	})
	t.Run("daemon ends it", func(t *testing.T) {
		c, _ := newWatchDaemon(t, true, watching, ev)
		st, err := c.Get("demo").Watch(t.Context(), "/w", nil)
		if err != nil {
			t.Fatal(err)
		}
		var errs []error
		for _, err := range st.Events() {
			errs = append(errs, err)
		}
		if len(errs) != 2 || errs[0] != nil || !errors.Is(errs[1], io.ErrUnexpectedEOF) {
			t.Errorf("errors %v, want nil then an unexpected EOF", errs)
		}
	})
	t.Run("error event", func(t *testing.T) {
		c, _ := newWatchDaemon(t, false, watching, ev,
			"event: error\ndata: {\"type\":\"error\",\"code\":\"INTERNAL_ERROR\",\"message\":\"inotify failed\"}\n\n")
		st, err := c.Get("demo").Watch(t.Context(), "/w", nil)
		if err != nil {
			t.Fatal(err)
		}
		for st.Next() {
		}
		var e *Error
		if !errors.As(st.Err(), &e) || e.Code != api.CodeInternal || e.Message != "inotify failed" {
			t.Errorf("Err = %v, want the error event's", st.Err())
		}
	})
}

func TestWatchOpenErrors(t *testing.T) {
	t.Run("not found", func(t *testing.T) {
		c, _ := newFake(t, wireError(404, api.CodeFileNotFound, "no such directory"))
		_, err := c.Get("demo").Watch(t.Context(), "/nope", nil)
		if !errors.Is(err, ErrFileNotFound) || err.Error() != "watch /nope in sandbox demo: no such directory (FILE_NOT_FOUND)" {
			t.Errorf("err = %v, want ErrFileNotFound", err)
		}
	})
	t.Run("retried while unavailable", func(t *testing.T) {
		c, f := newFake(t, unavailable, response{status: 200, header: http.Header{"Content-Type": {"text/event-stream"}}, body: watching})
		st, err := c.Get("demo").Watch(t.Context(), "/w", nil)
		if err != nil {
			t.Fatal(err)
		}
		st.Close()
		if n := len(f.seen()); n != 2 {
			t.Errorf("daemon got %d calls, want 2", n)
		}
	})
	t.Run("error event first", func(t *testing.T) {
		c, _ := newWatchDaemon(t, true,
			"event: error\ndata: {\"type\":\"error\",\"code\":\"PERMISSION_DENIED\",\"message\":\"denied\"}\n\n")
		if _, err := c.Get("demo").Watch(t.Context(), "/w", nil); !errors.Is(err, ErrPermissionDenied) {
			t.Errorf("err = %v, want ErrPermissionDenied", err)
		}
	})
	t.Run("ended before watching", func(t *testing.T) {
		c, _ := newWatchDaemon(t, true, ": ping\n\n")
		if _, err := c.Get("demo").Watch(t.Context(), "/w", nil); !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Errorf("err = %v, want an unexpected EOF", err)
		}
	})
	t.Run("context ends before watching", func(t *testing.T) {
		c, _ := newWatchDaemon(t, false, ": ping\n\n")
		ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
		defer cancel()
		if _, err := c.Get("demo").Watch(ctx, "/w", nil); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("err = %v, want the deadline", err)
		}
	})
	t.Run("no watching event", func(t *testing.T) {
		c, _ := newWatchDaemon(t, false, watchEv(1, api.WatchEvent{EventType: "delete", Path: "/w/x"}))
		st, err := c.Get("demo").Watch(t.Context(), "/w", nil)
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		if !st.Next() || st.Event().EventType != "delete" {
			t.Errorf("first event %+v, err %v; want the delete", st.Event(), st.Err())
		}
	})
}
