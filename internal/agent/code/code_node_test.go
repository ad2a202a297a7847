package code

import (
	"context"
	"log/slog"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sandboxd/sandboxd/api"
	"github.com/sandboxd/sandboxd/internal/agent/core"
	"github.com/sandboxd/sandboxd/internal/testutil"
)

// nodeAgent returns an agent able to start Node executors, or skips the
// test where node is not installed.
func nodeAgent(t *testing.T) *Interpreter {
	t.Helper()
	_, err := exec.LookPath("node")
	testutil.Requires(t, err == nil, "node is not installed")
	a := New(core.NewReaper(testutil.Cgroups(t)), "", t.TempDir(), 0, slog.New(slog.DiscardHandler))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); a.reaper.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return a
}

// runNode runs code in e and returns its events as "type:text|name|value".
func runNode(t *testing.T, e *executor, code string) []string {
	t.Helper()
	var mu sync.Mutex
	var evs []string
	out, err := e.run(context.Background(), map[string]string{"code": code, "language": api.LanguageJavaScript}, time.Minute, func(ev api.CodeEvent) {
		mu.Lock()
		defer mu.Unlock()
		evs = append(evs, ev.Type+":"+ev.Text+"|"+ev.Name+"|"+ev.Value)
	})
	if err != nil || out.timedOut || out.reset {
		t.Fatalf("run %q: %+v %v", code, out, err)
	}
	mu.Lock()
	defer mu.Unlock()
	return evs
}

// TestNodeExecutorWithoutInternals runs the JavaScript executor with and
// without --expose-internals: without, plain code still runs and a
// top-level await fails with a SyntaxError that says why.
func TestNodeExecutorWithoutInternals(t *testing.T) {
	a := nodeAgent(t)
	for _, c := range []struct {
		flags     []string
		wantAwait string
	}{
		{nodeFlags, "result:42||"},
		{nil, "SyntaxError|"},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		e, err := a.startNode(ctx, c.flags)
		cancel()
		if err != nil {
			t.Fatalf("flags %q: %v", c.flags, err)
		}
		if err := e.send(map[string]any{"init": map[string]any{"cwd": t.TempDir()}}); err != nil {
			t.Fatal(err)
		}
		if evs := runNode(t, e, "let x = 20; x + 1"); len(evs) != 1 || evs[0] != "result:21||" {
			t.Errorf("flags %q: plain code: %q", c.flags, evs)
		}
		evs := runNode(t, e, "const v = await Promise.resolve(41); v + 1")
		if len(evs) != 1 || !strings.Contains(evs[0], c.wantAwait) {
			t.Errorf("flags %q: top-level await: %q, want %q", c.flags, evs, c.wantAwait)
		}
		if c.flags == nil && (len(evs) != 1 || !strings.Contains(evs[0], "internal/repl/await")) {
			t.Errorf("the failure does not say what is missing: %q", evs)
		}
		// A static import: rewritten where node exposes its parser, a
		// SyntaxError saying what to use where it does not.
		evs = runNode(t, e, "import { join } from 'node:path';\njoin('a', 'b')")
		switch {
		case c.flags != nil && (len(evs) != 1 || evs[0] != "result:a/b||"):
			t.Errorf("flags %q: static import: %q", c.flags, evs)
		case c.flags == nil && (len(evs) != 1 || !strings.Contains(evs[0], "SyntaxError|") || !strings.Contains(evs[0], "require() or await import()")):
			t.Errorf("no internals: static import: %q, want a SyntaxError naming require() and await import()", evs)
		}
		// Not an event of a run: the executor's own "initialized" is
		// dropped, not passed on.
		for _, ev := range evs {
			if strings.HasPrefix(ev, "initialized") {
				t.Errorf("flags %q: event %q", c.flags, ev)
			}
		}
		e.kill()
	}
}
