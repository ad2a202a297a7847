// Package e2e drives a real sandboxd (in-process, on loopback, with real
// SQLite, runc containers, the real agent and the default image) through
// the public Go SDK. It needs root, runc and the default image (make image);
// elsewhere it skips, except under CI where it fails.
package e2e

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sandboxd/sandboxd/internal/daemon"
	"github.com/sandboxd/sandboxd/internal/runtime"
	"github.com/sandboxd/sandboxd/internal/testutil"
	"github.com/sandboxd/sandboxd/sandbox"
)

func TestMain(m *testing.M) {
	if os.Getenv(trueServerEnv) != "" {
		serveTrue()
	}
	code := m.Run()
	testutil.RemoveFixtures()
	os.Exit(code)
}

// Daemon is a running sandboxd for one test.
type Daemon struct {
	t       testing.TB
	DataDir string
	Images  string
	URL     string
	Token   string
	UIDBase uint32 // its sandboxes' uids: uidRangeSlots ranges from here
	Client  *sandbox.Client
	agent   string
	logs    testWriter
	opts    []func(*daemon.Config)
	cancel  context.CancelFunc
	done    chan error
}

// StartDaemon starts sandboxd on a free loopback port with a fresh data
// directory, the default image and a uid range of its own (so that tests
// run in parallel). Each opt may change the daemon's configuration before
// it starts (and again on every Restart). The daemon, and every sandbox
// left in it, is gone when the test ends.
func StartDaemon(t testing.TB, opts ...func(*daemon.Config)) *Daemon {
	t.Helper()
	testutil.RequiresRoot(t)
	image := testutil.DefaultImage(t)
	d := &Daemon{t: t, DataDir: testutil.TempDir(t), Token: "e2e-token", UIDBase: takeUIDRange(t), agent: testutil.AgentBinary(t), opts: opts}
	// Registered before the cleanup that stops the daemon, so it runs after.
	d.logs = newTestWriter(t)
	d.Images = imagesDir(t, d.DataDir, image)
	d.start()
	t.Cleanup(func() {
		d.destroyAll()
		d.drainPool() // pool_test.go
		d.Stop()
	})
	return d
}

func (d *Daemon) start() {
	t := d.t
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string, 1)
	d.done = make(chan error, 1)
	d.cancel = cancel
	cfg := daemon.Config{
		Listen: "127.0.0.1:0", DataDir: d.DataDir, ImagesDir: d.Images, Token: d.Token, UIDBase: d.UIDBase,
		AgentBinary: d.agent, Ready: func(addr string) { ready <- addr },
		Logger: slog.New(slog.NewTextHandler(d.logs, &slog.HandlerOptions{Level: slog.LevelWarn})),
	}
	for _, opt := range d.opts {
		opt(&cfg)
	}
	go func() { d.done <- daemon.Run(ctx, cfg) }()
	select {
	case addr := <-ready:
		d.URL = "http://" + addr
	case err := <-d.done:
		t.Fatalf("daemon did not start: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("daemon did not start in 30s")
	}
	c, err := sandbox.NewClient(sandbox.Options{URL: d.URL, Token: d.Token})
	if err != nil {
		t.Fatal(err)
	}
	d.Client = c
}

// Stop shuts the daemon down gracefully (as on SIGTERM). Sandboxes keep
// running.
func (d *Daemon) Stop() {
	if d.cancel == nil {
		return
	}
	d.cancel()
	d.cancel = nil
	if err := <-d.done; err != nil {
		d.t.Errorf("daemon exited: %v", err)
	}
}

// Restart stops the daemon and starts it again on the same data directory.
func (d *Daemon) Restart() {
	d.Stop()
	d.start()
}

func (d *Daemon) destroyAll() {
	if d.cancel == nil {
		d.start()
	}
	destroyAll(d.t, d.Client)
}

// destroyAll destroys every sandbox c lists, 8 at a time, each within a
// minute (a slow machine's hundred of them take longer than that in all).
func destroyAll(t testing.TB, c *sandbox.Client) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	list, err := c.List(ctx, sandbox.ListOptions{})
	cancel()
	if err != nil {
		t.Errorf("cleanup: list: %v", err)
		return
	}
	sem := make(chan struct{}, 8)
	var wg sync.WaitGroup
	for _, sb := range list {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			if err := c.Get(sb.ID).Destroy(ctx); err != nil {
				t.Errorf("cleanup: destroy %s: %v", sb.ID, err)
			}
		})
	}
	wg.Wait()
}

// testWriter sends the daemon's log to the test's log, until the test's
// cleanup begins (a request still running after the daemon stopped must
// not log into a finished test).
type testWriter struct {
	t      testing.TB
	closed *atomic.Bool
}

func newTestWriter(t testing.TB) testWriter {
	w := testWriter{t: t, closed: new(atomic.Bool)}
	t.Cleanup(func() { w.closed.Store(true) })
	return w
}

func (w testWriter) Write(p []byte) (int, error) {
	if !w.closed.Load() {
		w.t.Log(string(p))
	}
	return len(p), nil
}

var _ io.Writer = testWriter{}

// Test daemons' uid ranges: every daemon of this test binary that runs at
// a time gets uidRangeSlots sandbox slots of its own, above the ranges of
// a default daemon (manager.DefaultUIDBase) and of the runtime's tests
// (1e9 up), so that no two sandboxes running at once, of any daemon, share
// host uids (or bridge addresses, which follow them). A range is free
// again once its daemon stopped.
const (
	uidRangeFirst = 20000 * runtime.IDMapSize // slot 20000 of the uid space
	uidRangeSlots = 1024                      // more than any test creates
	uidRanges     = 36                        // up to slot 56864 of 65535
)

var uidRangesUsed struct {
	sync.Mutex
	used [uidRanges]bool
}

// takeUIDRange returns the first uid of a free range, free again when t
// ends (after the cleanups registered later, which stop the daemon).
func takeUIDRange(t testing.TB) uint32 {
	t.Helper()
	u := &uidRangesUsed
	u.Lock()
	defer u.Unlock()
	for i := range u.used {
		if !u.used[i] {
			u.used[i] = true
			t.Cleanup(func() {
				u.Lock()
				u.used[i] = false
				u.Unlock()
			})
			return uint32(uidRangeFirst + i*uidRangeSlots*runtime.IDMapSize)
		}
	}
	t.Fatalf("all %d uid ranges of test daemons are in use", uidRanges)
	return 0
}

// waitFor polls cond every 20 ms until it holds, failing the test after d:
// a test waits for the event it needs, never for a guessed time.
func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not after %s", what, d)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func ctxT(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// imagesDir makes dataDir/images with image as its default image, and
// returns it.
func imagesDir(t testing.TB, dataDir, image string) string {
	t.Helper()
	dir := filepath.Join(dataDir, "images")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(image, filepath.Join(dir, "default")); err != nil {
		t.Fatal(err)
	}
	return dir
}
