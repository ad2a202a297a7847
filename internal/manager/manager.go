// Package manager owns sandboxes' lifecycle: get-or-create on first use of
// an ID (once, however many calls race for it), start, recovery after a
// daemon restart, and destroy. It joins the durable record (package store),
// the container (a runtime.Runtime) and the agent connection
// (agentclient). The HTTP layer calls it; it knows nothing of HTTP.
package manager

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sandboxd/sandboxd/api"
	"github.com/sandboxd/sandboxd/internal/agentclient"
	"github.com/sandboxd/sandboxd/internal/errdefs"
	"github.com/sandboxd/sandboxd/internal/metrics"
	"github.com/sandboxd/sandboxd/internal/runtime"
	"github.com/sandboxd/sandboxd/internal/store"
)

// Config configures a Manager.
type Config struct {
	Store   *store.Store
	Runtime runtime.Runtime
	// ImagesDir holds images: each subdirectory (or symlink to one) is a
	// root filesystem named by its directory name.
	ImagesDir string
	// DefaultImage is the image of sandboxes that name none ("default").
	DefaultImage string
	// UIDBase is the first host uid given to sandboxes; sandbox slot N
	// gets UIDBase + N*runtime.IDMapSize.
	UIDBase uint32
	// MaxOutputBytes caps each output stream of exec kept in memory.
	MaxOutputBytes int
	// MaxSandboxes bounds the number of sandboxes (default and ceiling:
	// what the uid space above UIDBase holds).
	MaxSandboxes int
	// DiskMB is the disk quota of sandboxes created without one
	// (resources.diskMB); zero: their files share the host's disk.
	DiskMB int64
	// WarmPool is the fewest sandboxes of the default image to keep
	// started ahead, for new IDs to claim (pool.go); zero: none.
	WarmPool int
	// WarmPoolMax is the most the pool grows to when creates come faster
	// (pool.go, poolTarget); at most WarmPool: a pool of fixed size.
	WarmPoolMax int
	// WarmPoolMemoryMB bounds the memory the pooled sandboxes take
	// together; zero: no bound but WarmPoolMax.
	WarmPoolMemoryMB int64
	Metrics          *metrics.Metrics
	Logger           *slog.Logger
}

// DefaultUIDBase keeps sandboxes' uids far above host users and the ranges
// that /etc/subuid usually hands out.
const DefaultUIDBase = 1 << 28

// DefaultSleepAfter is a new sandbox's sleepAfter.
const DefaultSleepAfter = 10 * time.Minute

// agentTimeout bounds the wait for a new agent to answer.
const agentTimeout = 15 * time.Second

// Manager manages sandboxes. It is safe for concurrent use.
type Manager struct {
	cfg Config
	log *slog.Logger

	mu      sync.Mutex
	entries map[string]*entry // by ID; guarded by mu
	holds   map[string]int    // open holds by ID (activity.go); guarded by mu
	// unsaved is the last activity of sandboxes, by ID, that the store
	// does not have yet (activity.go); guarded by mu.
	unsaved map[string]time.Time

	// The Manager's goroutines (the sleeper, the pool's filler, the
	// activity saver): started by Recover (startLoops), stopped by Close.
	loopsMu   sync.Mutex
	closed    bool               // guarded by loopsMu
	stopLoops context.CancelFunc // guarded by loopsMu; nil until started
	loops     sync.WaitGroup

	sleepKick chan struct{} // buffered (1): a pending "look again" for the sleeper (sleep.go)
	pool      pool          // the warm pool (pool.go)
	// starting counts container starts in progress (startLocked); the
	// pool's filler waits for none.
	starting atomic.Int64
	starts   chan struct{} // a slot per container start running (startContainer)
	cpuBusy  func() bool   // nil: cpuBusy (pool.go); tests replace it
}

// entry is the in-memory side of one sandbox. Its mu serializes lifecycle
// changes (start, stop, destroy); calls through a running agent do not hold
// it while they run.
type entry struct {
	id string

	mu      sync.Mutex
	gone    bool                // destroyed: callers must look the ID up again
	client  *agentclient.Client // nil unless running
	inst    *runtime.Instance
	unwatch chan struct{} // closed to stop the watch goroutine of inst
	// ports caches exposed ports checked against inst, for preview
	// requests (ports.go); dropped with inst.
	ports map[int]store.Port

	// Sleep (activity.go, sleep.go); guarded by Manager.mu.
	awake      bool          // running and not yet looked at by the sleeper since
	lastActive time.Time     // the last call through the agent, or hold released
	sleepAfter time.Duration // from the record; 0: DefaultSleepAfter
	keepAlive  bool          // from the record
}

// runningLocked records a running container of record rec, idle since
// active (the lastActiveAt its record holds), and starts watching it: when
// its init exits on its own (killed from outside, out of memory), the
// sandbox is marked stopped at once, so the next call starts it again
// instead of failing on a dead connection.
func (m *Manager) runningLocked(e *entry, c *agentclient.Client, inst *runtime.Instance, rec store.Sandbox, active time.Time) {
	e.client, e.inst, e.unwatch = c, inst, make(chan struct{})
	m.startedActive(e, rec, active)
	if inst.Exited == nil {
		return
	}
	go func(unwatch <-chan struct{}) {
		select {
		case <-inst.Exited:
		case <-unwatch:
			return
		}
		e.mu.Lock()
		defer e.mu.Unlock()
		if e.gone || e.inst != inst {
			return
		}
		m.log.Warn("sandbox's container exited; it starts again on next use", "sandbox", e.id)
		m.cfg.Metrics.CrashesTotal.Inc()
		m.stopLocked(context.Background(), e)
	}(e.unwatch)
}

// forgetLocked drops the running container's client and watch.
func (e *entry) forgetLocked() {
	if e.client != nil {
		e.client.Close()
	}
	if e.unwatch != nil {
		close(e.unwatch)
	}
	e.client, e.inst, e.unwatch, e.ports = nil, nil, nil, nil
}

// New returns a Manager. Call Recover before serving.
func New(cfg Config) *Manager {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.DefaultImage == "" {
		cfg.DefaultImage = "default"
	}
	if cfg.UIDBase == 0 {
		cfg.UIDBase = DefaultUIDBase
	}
	// Slot N uses uids UIDBase+N*IDMapSize ... +IDMapSize-1; the last uid,
	// 2^32-1, is not a valid one.
	slots := int((uint64(1)<<32-1-uint64(cfg.UIDBase))/runtime.IDMapSize) - 1
	cfg.WarmPoolMax = max(cfg.WarmPoolMax, cfg.WarmPool, 0)
	slots -= cfg.WarmPoolMax // pooled sandboxes hold slots too
	if cfg.MaxSandboxes <= 0 || cfg.MaxSandboxes > slots {
		cfg.MaxSandboxes = slots
	}
	if cfg.Metrics == nil {
		cfg.Metrics = metrics.New(prometheus.NewRegistry())
	}
	return &Manager{cfg: cfg, log: cfg.Logger, entries: make(map[string]*entry), holds: make(map[string]int), unsaved: make(map[string]time.Time),
		sleepKick: make(chan struct{}, 1), pool: pool{kickc: make(chan struct{}, 1)},
		starts: make(chan struct{}, startSlots())}
}

// startLoops starts the Manager's goroutines, once; after Close, never.
func (m *Manager) startLoops() {
	m.loopsMu.Lock()
	defer m.loopsMu.Unlock()
	if m.closed || m.stopLoops != nil {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	m.stopLoops = cancel
	m.loops.Go(func() { m.sleepLoop(ctx) })
	m.loops.Go(func() { m.saveLoop(ctx) })
	if m.poolEnabled() {
		m.loops.Go(func() { m.poolLoop(ctx) })
	}
}

// kick sends a "look again" on c, a channel buffered for one. It never
// blocks.
func kick(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

var idPattern = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

// NormalizeID lowercases id and checks it: 1 to 63 characters of [a-z0-9-],
// not starting or ending with '-'. A bad ID gives an error wrapping
// errdefs.ErrInvalidArgument.
func NormalizeID(id string) (string, error) {
	id = strings.ToLower(id)
	if !idPattern.MatchString(id) {
		return "", fmt.Errorf("%w: sandbox id %q: want 1-63 characters of [a-z0-9-], not starting or ending with '-'", errdefs.ErrInvalidArgument, id)
	}
	return id, nil
}

var imagePattern = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9._-]{0,127}$`)

// imagePath resolves an image name to its directory, symlinks resolved.
func (m *Manager) imagePath(name string) (string, error) {
	if !imagePattern.MatchString(name) {
		return "", fmt.Errorf("%w: image name %q", errdefs.ErrInvalidArgument, name)
	}
	dir := filepath.Join(m.cfg.ImagesDir, name)
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		return "", fmt.Errorf("%w: image %q not found in %s (build it with make image)", errdefs.ErrInvalidArgument, name, m.cfg.ImagesDir)
	}
	path, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return "", fmt.Errorf("image %s: %w", name, err)
	}
	return path, nil
}

// record validates a create request for id and turns it into a new
// record, with the daemon's defaults.
func (m *Manager) record(id string, opts api.CreateSandboxRequest) (store.Sandbox, error) {
	rec, err := newRecord(id, opts, m.cfg.DefaultImage)
	if err != nil {
		return rec, err
	}
	if rec.Resources.DiskMB == 0 {
		rec.Resources.DiskMB = m.cfg.DiskMB
	}
	rec.ImagePath, err = m.imagePath(rec.Image)
	return rec, err
}

func (m *Manager) entry(id string) *entry {
	m.mu.Lock()
	defer m.mu.Unlock()
	e := m.entries[id]
	if e == nil {
		e = &entry{id: id}
		m.entries[id] = e
	}
	return e
}

// lock returns id's entry locked, looking again if it was destroyed while
// the caller waited.
func (m *Manager) lock(id string) *entry {
	for {
		e := m.entry(id)
		e.mu.Lock()
		if !e.gone {
			return e
		}
		e.mu.Unlock()
	}
}

// Agent returns a client for id's running agent, creating the sandbox with
// defaults or starting it first as needed (get-or-create).
func (m *Manager) Agent(ctx context.Context, id string) (*agentclient.Client, error) {
	e := m.lock(id)
	defer e.mu.Unlock()
	if _, err := m.runLocked(ctx, e, api.CreateSandboxRequest{}); err != nil {
		return nil, err
	}
	// In memory only: the saver writes it to the store later
	// (activity.go), so no call waits on a disk sync for it.
	m.noteActive(e, time.Now())
	return e.client, nil
}

// CallFailed is called when a call through c failed with err, and returns
// the error to report. If the sandbox was destroyed during the call, that
// is what it says (not retryable). If the agent cannot be reached (the
// container died, was killed, ran out of memory...) and does not answer a
// version check either, the container is stopped so that the next call
// starts it again over the same files.
func (m *Manager) CallFailed(ctx context.Context, id string, c *agentclient.Client, err error) error {
	if !errors.Is(err, errdefs.ErrUnavailable) && !errors.Is(err, errdefs.ErrInterrupted) {
		return err
	}
	bg := context.WithoutCancel(ctx)
	e := m.lock(id) // waits for a destroy in progress
	_, gerr := m.cfg.Store.Get(bg, id)
	current := e.client == c
	e.mu.Unlock()
	if errors.Is(gerr, errdefs.ErrSandboxNotFound) {
		return fmt.Errorf("%w: sandbox %s was destroyed during the call", errdefs.ErrSandboxNotFound, id)
	}
	if !current {
		return err // stopped or restarted meanwhile
	}
	// Generous: a busy, CPU-throttled agent is slow, not dead.
	vctx, cancel := context.WithTimeout(bg, 10*time.Second)
	verr := c.CheckVersion(vctx)
	cancel()
	if verr == nil {
		return err
	}
	e = m.lock(id)
	defer e.mu.Unlock()
	if e.client == c {
		m.log.Warn("agent lost; stopping the container", "sandbox", id, "err", verr)
		m.cfg.Metrics.CrashesTotal.Inc()
		m.stopLocked(bg, e)
	}
	return err
}

func (m *Manager) stopLocked(ctx context.Context, e *entry) {
	e.forgetLocked()
	if err := m.cfg.Runtime.Stop(ctx, m.runtimeName(ctx, e.id)); err != nil {
		m.log.Error("stop sandbox", "sandbox", e.id, "err", err)
	}
	if _, err := m.cfg.Store.Update(ctx, e.id, func(r *store.Sandbox) error { r.Status = api.StatusStopped; return nil }); err != nil && !errors.Is(err, errdefs.ErrSandboxNotFound) {
		m.log.Error("stop sandbox", "sandbox", e.id, "err", err)
	}
}

// Get returns id's description without creating it: an error wrapping
// errdefs.ErrSandboxNotFound if it does not exist.
func (m *Manager) Get(ctx context.Context, id string) (api.Sandbox, error) {
	rec, err := m.cfg.Store.Get(ctx, id)
	if err != nil {
		return api.Sandbox{}, err
	}
	sb := toAPI(m.withActivity(rec)[0])
	if u, ok := m.usage(ctx, rec); ok {
		sb.Usage = &api.SandboxUsage{CPUMs: u.CPU.Milliseconds(), MemoryBytes: u.MemoryBytes, Pids: u.Pids, DiskBytes: u.DiskBytes}
	}
	return sb, nil
}

// List returns every sandbox whose labels include all of labels.
func (m *Manager) List(ctx context.Context, labels map[string]string) ([]api.Sandbox, error) {
	recs, err := m.cfg.Store.List(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]api.Sandbox, 0, len(recs))
next:
	for _, r := range m.withActivity(recs...) {
		for k, v := range labels {
			if r.Labels[k] != v {
				continue next
			}
		}
		out = append(out, toAPI(r))
	}
	return out, nil
}

// Update changes id's settings.
func (m *Manager) Update(ctx context.Context, id string, req api.UpdateSandboxRequest) (api.Sandbox, error) {
	var sleep time.Duration
	if req.SleepAfter != nil {
		d, err := parseSleepAfter(*req.SleepAfter)
		if err != nil {
			return api.Sandbox{}, err
		}
		sleep = d
	}
	if req.Labels != nil {
		if err := validateLabels(*req.Labels); err != nil {
			return api.Sandbox{}, err
		}
	}
	rec, err := m.cfg.Store.Update(ctx, id, func(r *store.Sandbox) error {
		if req.SleepAfter != nil {
			r.SleepAfter = sleep
		}
		if req.KeepAlive != nil {
			r.KeepAlive = *req.KeepAlive
		}
		if req.Labels != nil {
			r.Labels = *req.Labels
		}
		return nil
	})
	if err != nil {
		return api.Sandbox{}, err
	}
	if req.SleepAfter != nil || req.KeepAlive != nil {
		m.mu.Lock()
		e := m.entries[id]
		m.mu.Unlock()
		if e != nil {
			m.setSleepPolicy(e, rec.SleepAfter, rec.KeepAlive)
		}
	}
	return toAPI(m.withActivity(rec)[0]), nil
}

// Destroy removes id: its container, mounts, cgroups, files and record.
// Destroying a missing sandbox is no error.
func (m *Manager) Destroy(ctx context.Context, id string) error {
	e := m.lock(id)
	defer e.mu.Unlock()
	ctx = context.WithoutCancel(ctx) // a half-destroyed sandbox helps nobody
	e.forgetLocked()
	// The intent goes to the store first, so that a destroy cut short by
	// the daemon's end is finished by Recover, never undone by a start
	// over half-removed files.
	if _, err := m.cfg.Store.Update(ctx, id, func(r *store.Sandbox) error { r.Status = StatusDestroying; return nil }); err != nil && !errors.Is(err, errdefs.ErrSandboxNotFound) {
		return fmt.Errorf("destroy sandbox %s: %w", id, err)
	}
	if err := m.cfg.Runtime.Destroy(ctx, m.runtimeName(ctx, id)); err != nil {
		return fmt.Errorf("destroy sandbox %s: %w", id, err)
	}
	if err := m.cfg.Store.Delete(ctx, id); err != nil {
		return fmt.Errorf("destroy sandbox %s: %w", id, err)
	}
	e.gone = true
	m.mu.Lock()
	if m.entries[id] == e {
		delete(m.entries, id)
		delete(m.unsaved, id)
	}
	m.mu.Unlock()
	m.log.Info("sandbox destroyed", "sandbox", id)
	return nil
}

// Close saves the activity not yet in the store and drops agent
// connections. Containers keep running: a daemon started later re-attaches
// them.
func (m *Manager) Close() {
	m.loopsMu.Lock()
	m.closed = true
	if m.stopLoops != nil {
		m.stopLoops() // a sleep or a pooled start in progress finishes first
	}
	m.loopsMu.Unlock()
	m.loops.Wait()
	m.saveNow()
	m.pool.closeClients()
	m.mu.Lock()
	entries := slices.Collect(maps.Values(m.entries))
	m.mu.Unlock()
	for _, e := range entries {
		e.mu.Lock()
		e.forgetLocked()
		e.mu.Unlock()
	}
}
