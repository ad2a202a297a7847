// Package managertest gives tests a Manager over a fake runtime whose
// every sandbox is one agent running in the test process: enough to test
// the manager's and the API's logic without containers. (The real runtime
// is tested in runtime/runc, and everything end to end in e2e.)
package managertest

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sandboxd/sandboxd/internal/agent"
	"github.com/sandboxd/sandboxd/internal/errdefs"
	"github.com/sandboxd/sandboxd/internal/manager"
	"github.com/sandboxd/sandboxd/internal/metrics"
	"github.com/sandboxd/sandboxd/internal/runtime"
	"github.com/sandboxd/sandboxd/internal/store"
)

// Runtime is the fake runtime: Start answers with the shared agent's
// socket (and fails for IDs starting with "fail-", as a broken runc
// would); Attach finds nothing; Stop and Destroy forget the sandbox.
type Runtime struct {
	socket string
	mu     sync.Mutex
	live   map[string]bool
}

var (
	_ runtime.Runtime     = (*Runtime)(nil)
	_ runtime.UsageReader = (*Runtime)(nil)
)

// NewRuntime returns a fake runtime answering with the agent on socket,
// whose containers of the IDs live run already (left by a daemon run).
func NewRuntime(socket string, live ...string) *Runtime {
	f := &Runtime{socket: socket, live: map[string]bool{}}
	for _, id := range live {
		f.live[id] = true
	}
	return f
}

func (f *Runtime) Start(ctx context.Context, s runtime.Spec) (*runtime.Instance, error) {
	if strings.HasPrefix(s.ID, "fail-") {
		return nil, errors.New("runc run: simulated failure")
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.live[s.ID] = true
	return &runtime.Instance{ID: s.ID, Socket: f.socket, Pid: os.Getpid()}, nil
}

func (f *Runtime) Attach(ctx context.Context, id string) (*runtime.Instance, error) {
	return nil, errdefs.ErrNotFound
}

func (f *Runtime) Stop(ctx context.Context, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.live, id)
	return nil
}

func (f *Runtime) Destroy(ctx context.Context, id string) error { return f.Stop(ctx, id) }

// FakeUsage is what every running fake container uses (Usage).
var FakeUsage = runtime.Usage{CPU: 1500 * time.Millisecond, MemoryBytes: 32 << 20, Pids: 3, DiskBytes: 5 << 20}

// Usage implements runtime.UsageReader: FakeUsage for a running container.
func (f *Runtime) Usage(ctx context.Context, id string) (runtime.Usage, error) {
	if !f.Running(id) {
		return runtime.Usage{}, errdefs.ErrNotFound
	}
	return FakeUsage, nil
}

// Running reports whether id's fake container runs.
func (f *Runtime) Running(id string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.live[id]
}

// Env is what New made.
type Env struct {
	Manager  *manager.Manager
	Runtime  *Runtime
	Metrics  *metrics.Metrics
	Registry *prometheus.Registry
}

// New starts an agent in the test process, opens a store and an images
// directory (with an empty "default" image) in a temporary directory, and
// returns a recovered Manager over them. All of it ends with the test.
func New(t testing.TB) *Env {
	t.Helper()
	dir := t.TempDir()
	sock := filepath.Join(dir, "agent.sock")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- agent.Run(ctx, agent.Config{Socket: sock}) }()
	t.Cleanup(func() { cancel(); <-done })
	st, err := store.Open(filepath.Join(dir, "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	images := filepath.Join(dir, "images")
	if err := os.MkdirAll(filepath.Join(images, "default"), 0o755); err != nil {
		t.Fatal(err)
	}
	env := &Env{Runtime: NewRuntime(sock), Registry: prometheus.NewRegistry()}
	env.Metrics = metrics.New(env.Registry)
	env.Manager = manager.New(manager.Config{Store: st, Runtime: env.Runtime, ImagesDir: images, Metrics: env.Metrics})
	if err := env.Manager.Recover(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(env.Manager.Close)
	return env
}
