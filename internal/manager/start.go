package manager

import (
	"context"
	"fmt"
	"maps"
	"os"
	goruntime "runtime"
	"time"

	"github.com/sandboxd/sandboxd/api"
	"github.com/sandboxd/sandboxd/internal/agentclient"
	"github.com/sandboxd/sandboxd/internal/errdefs"
	"github.com/sandboxd/sandboxd/internal/runtime"
	"github.com/sandboxd/sandboxd/internal/store"
)

// specOf is the runtime spec of rec's container, with hostname (its ID,
// or a pooled container's runtime name until it is claimed).
func (m *Manager) specOf(rec store.Sandbox, hostname string) runtime.Spec {
	return runtime.Spec{
		ID:       rec.RuntimeName,
		Hostname: hostname,
		Image:    rec.ImagePath,
		Env:      maps.Clone(rec.Env),
		Cwd:      rec.Cwd,
		Resources: runtime.Resources{
			CPUs: rec.Resources.CPUs, MemoryMB: rec.Resources.MemoryMB, Pids: rec.Resources.Pids,
			DiskMB: rec.Resources.DiskMB,
		},
		Network: rec.Network,
		UIDBase: uint32(uint64(m.cfg.UIDBase) + uint64(rec.UIDSlot)*runtime.IDMapSize),
	}
}

// startContainer starts rec's container with hostname, once a start slot
// is free, and connects to its agent. Waiting for the slot ends with ctx
// (an error wrapping errdefs.ErrUnavailable); once begun, the start
// finishes even if the caller goes away, or a half-started container
// would be left for the next call to clean. On error no container runs.
//
// The slots (startSlots): a hundred first calls for new IDs at once would
// otherwise start a hundred containers at once, each then taking as long
// as all of them together (runc, mounts and the agents' start share the
// CPUs), and the slowest would run into the start's timeouts. Waiters get
// slots in the order they came (a channel's senders queue in order).
func (m *Manager) startContainer(ctx context.Context, rec store.Sandbox, hostname string) (*runtime.Instance, *agentclient.Client, error) {
	trace := runtime.TraceFrom(ctx)
	if trace == nil {
		trace = runtime.NewStartTrace()
		ctx = runtime.WithStartTrace(ctx, trace)
	}
	select {
	case m.starts <- struct{}{}:
		defer func() { <-m.starts }()
	case <-ctx.Done():
		return nil, nil, fmt.Errorf("%w: waiting for a start slot: %v", errdefs.ErrUnavailable, ctx.Err())
	}
	trace.Mark("wait")
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), agentTimeout+30*time.Second)
	defer cancel()
	inst, err := m.cfg.Runtime.Start(ctx, m.specOf(rec, hostname))
	if err != nil {
		return nil, nil, fmt.Errorf("start sandbox %s: %w", rec.ID, err)
	}
	c, err := connect(ctx, inst, agentTimeout)
	if err != nil {
		_ = m.cfg.Runtime.Stop(ctx, rec.RuntimeName)
		return nil, nil, fmt.Errorf("%w: start sandbox %s: its agent: %v", errdefs.ErrUnavailable, rec.ID, err)
	}
	trace.Mark("agent")
	if ur, ok := m.cfg.Runtime.(runtime.UsageReader); ok {
		if u, err := ur.Usage(ctx, rec.RuntimeName); err == nil {
			trace.ContainerCPU("agent", u.CPU)
		}
	}
	return inst, c, nil
}

// observeStart reports a finished start's phases (kind: "create", "start"
// or "pool") in /metrics.
func (m *Manager) observeStart(kind string, trace *runtime.StartTrace) {
	for _, p := range trace.Phases() {
		m.cfg.Metrics.StartPhaseSeconds.WithLabelValues(kind, p.Name).Observe(p.Wall.Seconds())
		m.cfg.Metrics.StartPhaseCPUSeconds.WithLabelValues(kind, p.Name).Add(p.CPU.Seconds())
	}
}

// connect returns a client of inst's agent once it answers a version
// check, which it must within timeout.
func connect(ctx context.Context, inst *runtime.Instance, timeout time.Duration) (*agentclient.Client, error) {
	c := agentclient.New(inst.Socket)
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if err := c.CheckVersion(ctx); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// startLocked starts rec's container unless it already runs.
func (m *Manager) startLocked(ctx context.Context, e *entry, rec store.Sandbox, isNew bool) error {
	if e.client != nil {
		return nil
	}
	if rec.Status == StatusDestroying {
		return fmt.Errorf("%w: sandbox %s is being destroyed", errdefs.ErrUnavailable, rec.ID)
	}
	if fi, err := os.Stat(rec.ImagePath); err != nil || !fi.IsDir() {
		return fmt.Errorf("%w: sandbox %s: its image %s (%s) is gone from the images directory", errdefs.ErrUnavailable, rec.ID, rec.Image, rec.ImagePath)
	}
	log := m.log.With("sandbox", e.id)
	began := time.Now()
	m.starting.Add(1)
	defer func() {
		m.starting.Add(-1)
		kick(m.pool.kickc)
	}()
	trace := runtime.TraceFrom(ctx)
	if trace == nil {
		trace = runtime.NewStartTrace()
		ctx = runtime.WithStartTrace(ctx, trace)
	}
	inst, c, err := m.startContainer(ctx, rec, rec.ID)
	if err != nil {
		log.Error("start sandbox", "err", err)
		return err
	}
	now := time.Now().UTC()
	bg := context.WithoutCancel(ctx)
	if _, err := m.cfg.Store.Update(bg, rec.ID, func(r *store.Sandbox) error {
		r.Status, r.LastActiveAt = api.StatusRunning, now
		return nil
	}); err != nil {
		c.Close()
		_ = m.cfg.Runtime.Stop(bg, rec.RuntimeName)
		return err
	}
	m.runningLocked(e, c, inst, rec, now)
	trace.Mark("commit")
	took := time.Since(began)
	if isNew {
		m.cfg.Metrics.CreateSeconds.Observe(took.Seconds())
		m.observeStart("create", trace)
	} else {
		m.cfg.Metrics.StartSeconds.Observe(took.Seconds())
		m.observeStart("start", trace)
	}
	log.Info("sandbox started", "new", isNew, "pid", inst.Pid, "ms", took.Milliseconds(), "phases", trace)
	if rec.Status == api.StatusSleeping {
		m.cfg.Metrics.WakeSeconds.Observe(took.Seconds())
		log.Info("sandbox woke", "ms", took.Milliseconds())
	}
	return nil
}

// startSlots is how many container starts run at once (startContainer):
// one per CPU. A start is mostly CPU work (runc, the agent's start), so
// more at once only share the CPUs more finely: each then takes longer,
// the first sandboxes of a burst are ready later, and the sandboxes
// already running get less of the CPUs meanwhile (docs/BENCHMARKS.md,
// Bursts).
func startSlots() int { return max(2, goruntime.NumCPU()) }
