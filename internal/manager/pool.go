package manager

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/sandboxd/sandboxd/api"
	"github.com/sandboxd/sandboxd/internal/agentapi"
	"github.com/sandboxd/sandboxd/internal/agentclient"
	"github.com/sandboxd/sandboxd/internal/errdefs"
	"github.com/sandboxd/sandboxd/internal/runtime"
	"github.com/sandboxd/sandboxd/internal/store"
)

// The warm pool: Config.WarmPool sandboxes of the default image, with
// default options, started ahead of need, so that the first use of a new ID
// takes over a running container instead of starting one (a few
// milliseconds instead of a hundred or more).
//
// A pooled sandbox is a store record with Pooled set whose ID is its
// runtime name, "pool.<random hex>": the '.' keeps it apart from every
// sandbox ID, and Get, List and the sandbox limit ignore it. It has its uid
// slot, its files and its running container like any sandbox, with the
// runtime name as hostname. A claim (claimLocked, under the new ID's
// lock) sets the container's hostname to the ID, then turns the pooled
// record into the sandbox's in one transaction (store.Claim): the sandbox
// keeps the pooled runtime name for good, so its container, directory and
// cgroup carry a name other than its ID; everything that calls the runtime
// goes through the record's RuntimeName (see runtimeName).
//
// One goroutine per Manager, the filler, owns the pool: started by
// Recover, stopped by Close. It starts one pooled sandbox at a time, only
// while no other start is in progress (a burst of creates gets the CPU
// first), and only while sandboxes and pooled ones together stay under
// MaxSandboxes; past that it destroys pooled ones. Pooled containers whose
// init exited, or whose image is no longer the default one (the name
// points elsewhere, or the directory was rebuilt in place: see
// imageIdentity), are never claimed, and are destroyed and replaced. Pooled containers outlive the daemon like any other:
// Recover adopts up to WarmPool of them and destroys the rest.

// poolPrefix starts every pooled sandbox's runtime name.
const poolPrefix = "pool."

// poolIdle is the filler's wait between looks when nothing kicks it.
const poolIdle = 10 * time.Second

// pooled is one ready pooled sandbox.
type pooled struct {
	rec    store.Sandbox // ID == RuntimeName
	image  string        // imageIdentity of rec.ImagePath when it started
	client *agentclient.Client
	inst   *runtime.Instance
}

// pool is the Manager's warm pool.
type pool struct {
	kickc chan struct{} // buffered (1): a pending "look again"

	mu      sync.Mutex
	ready   []*pooled // guarded by mu
	started bool      // guarded by mu
	stopped bool      // guarded by mu
	cancel  context.CancelFunc
	done    chan struct{} // closed when the filler returns
}

// kick asks the filler to look at the pool again. It never blocks.
func (p *pool) kick() {
	select {
	case p.kickc <- struct{}{}:
	default:
	}
}

// take removes and returns a ready pooled sandbox whose record runs like
// rec and whose image is still image (an imageIdentity), or nil.
func (p *pool) take(rec store.Sandbox, image string) *pooled {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i, s := range p.ready {
		if sameRuntime(s.rec, rec) && s.image == image {
			p.ready = append(p.ready[:i], p.ready[i+1:]...)
			return s
		}
	}
	return nil
}

// put returns s to the ready list.
func (p *pool) put(s *pooled) {
	p.mu.Lock()
	p.ready = append(p.ready, s)
	p.mu.Unlock()
}

// sameRuntime tells whether a sandbox of record b would run in a container
// started for record a: what reaches the runtime is the same. Settings
// kept only in the record (labels, keepAlive, sleepAfter) may differ.
func sameRuntime(a, b store.Sandbox) bool {
	return a.ImagePath == b.ImagePath && a.Cwd == b.Cwd && a.Network == b.Network &&
		a.Resources == b.Resources && len(a.Env) == 0 && len(b.Env) == 0
}

// PoolSize returns the number of ready pooled sandboxes.
func (m *Manager) PoolSize() int {
	m.pool.mu.Lock()
	defer m.pool.mu.Unlock()
	return len(m.pool.ready)
}

// poolEnabled tells whether the pool may hold sandboxes at all.
func (m *Manager) poolEnabled() bool {
	_, ok := m.cfg.Runtime.(runtime.HostnameSetter)
	return m.cfg.WarmPool > 0 && ok
}

// claimLocked gives e (which has no record) a pooled sandbox as its own, if
// one runs like rec, the new record. It returns false, and no error, if
// the caller must create the sandbox itself.
func (m *Manager) claimLocked(ctx context.Context, e *entry, rec store.Sandbox) (bool, error) {
	if !m.poolEnabled() {
		return false, nil
	}
	s := m.pool.take(rec, imageIdentity(rec.ImagePath))
	if s == nil {
		return false, nil
	}
	defer m.pool.kick()
	began := time.Now()
	log := m.log.With("sandbox", e.id, "runtime", s.rec.RuntimeName)
	select {
	case <-s.inst.Exited:
		log.Warn("pooled container exited; not claimed")
		m.discardPooled(context.WithoutCancel(ctx), s)
		return false, nil
	default:
	}
	// Once begun, a claim finishes, whatever the caller does.
	ctx = context.WithoutCancel(ctx)
	if err := m.cfg.Runtime.(runtime.HostnameSetter).SetHostname(ctx, s.rec.RuntimeName, e.id); err != nil {
		log.Warn("pooled container: set hostname; not claimed", "err", err)
		m.discardPooled(ctx, s)
		return false, nil
	}
	// The session's shell read $HOSTNAME when it started (startPooled):
	// set it again, before the record makes the sandbox e's, so that a
	// daemon killed in between leaves either a pooled sandbox (whose next
	// claim sets both again) or a sandbox that is wholly e's.
	if err := m.execPooled(ctx, s, "HOSTNAME="+e.id); err != nil { // e.id is [a-z0-9-]: no quoting needed
		log.Warn("pooled container: set the shell's hostname; not claimed", "err", err)
		m.discardPooled(ctx, s)
		return false, nil
	}
	now := time.Now().UTC()
	rec.Status, rec.LastActiveAt = api.StatusRunning, now
	claimed, err := m.cfg.Store.Claim(ctx, s.rec.ID, rec, m.cfg.MaxSandboxes)
	if errors.Is(err, errdefs.ErrResourceExhausted) {
		// Still a clean pooled container (the next claim sets its
		// hostname again).
		m.pool.put(s)
		return true, err
	}
	if err != nil {
		log.Error("claim pooled sandbox; not claimed", "err", err)
		m.discardPooled(ctx, s)
		return false, nil
	}
	m.runningLocked(e, s.client, s.inst, now)
	m.setSleepPolicy(e, claimed.SleepAfter, claimed.KeepAlive)
	took := time.Since(began)
	if m.cfg.Metrics != nil {
		m.cfg.Metrics.CreateSeconds.Observe(took.Seconds())
	}
	log.Info("sandbox created from the warm pool", "pid", s.inst.Pid, "us", took.Microseconds())
	return true, nil
}

// execPooled runs a command in a pooled sandbox's default session.
func (m *Manager) execPooled(ctx context.Context, s *pooled, cmd string) error {
	ctx, cancel := context.WithTimeout(ctx, agentTimeout)
	defer cancel()
	res, err := s.client.Exec(ctx, agentapi.ExecRequest{ExecRequest: api.ExecRequest{Command: cmd}})
	if err != nil {
		return err
	}
	if res.ExitCode != 0 {
		return fmt.Errorf("%q: exit %d: %s", cmd, res.ExitCode, res.Stderr)
	}
	return nil
}

// runtimeName returns the name under which the runtime knows sandbox id's
// container: its record's RuntimeName, or id itself if it has no record
// (leftovers of a create rolled back are named so).
func (m *Manager) runtimeName(ctx context.Context, id string) string {
	if rec, err := m.cfg.Store.Get(ctx, id); err == nil && rec.RuntimeName != "" {
		return rec.RuntimeName
	}
	return id
}

// startPool starts the filler, once; after stopPool, never again.
func (m *Manager) startPool() {
	p := &m.pool
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.started || p.stopped || !m.poolEnabled() {
		return
	}
	p.started = true
	ctx, cancel := context.WithCancel(context.Background())
	p.cancel, p.done = cancel, make(chan struct{})
	go func() {
		defer close(p.done)
		m.poolLoop(ctx)
	}()
}

// stopPool stops the filler and waits for it (a pooled sandbox it is
// starting finishes first), then drops the pool's agent connections. The
// pooled containers keep running: the next daemon adopts them.
func (m *Manager) stopPool() {
	p := &m.pool
	p.mu.Lock()
	started := p.started
	if !p.stopped {
		p.stopped = true
		if p.cancel != nil {
			p.cancel()
		}
	}
	p.mu.Unlock()
	if started {
		<-p.done
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, s := range p.ready {
		s.client.Close()
	}
	p.ready = nil
}

func (m *Manager) poolLoop(ctx context.Context) {
	const minBackoff, maxBackoff = time.Second, time.Minute
	backoff := minBackoff
	idle := time.NewTimer(poolIdle)
	defer idle.Stop()
	for {
		again, err := m.poolStep(ctx)
		wait := poolIdle
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			m.log.Error("warm pool", "err", err, "retry-in", backoff)
			wait, backoff = backoff, min(backoff*2, maxBackoff)
		case again:
			backoff = minBackoff
			continue
		default:
			backoff = minBackoff
		}
		idle.Reset(wait)
		select {
		case <-ctx.Done():
			return
		case <-m.pool.kickc:
		case <-idle.C:
		}
		idle.Stop()
	}
}

// poolStep does one thing the pool needs: drop a dead, stale or surplus
// pooled sandbox, or start one. It returns true if there may be more to do.
func (m *Manager) poolStep(ctx context.Context) (again bool, err error) {
	bg := context.WithoutCancel(ctx)
	image, _ := m.defaultImagePath()
	ident := imageIdentity(image)
	p := &m.pool
	p.mu.Lock()
	var drop *pooled
	for i, s := range p.ready {
		select {
		case <-s.inst.Exited:
			drop = s
		default:
			if s.rec.ImagePath != image || s.image != ident {
				drop = s
			}
		}
		if drop != nil {
			p.ready = append(p.ready[:i], p.ready[i+1:]...)
			break
		}
	}
	ready := len(p.ready)
	p.mu.Unlock()
	if drop != nil {
		m.log.Info("warm pool: dropping a dead or stale pooled sandbox", "runtime", drop.rec.RuntimeName)
		m.discardPooled(bg, drop)
		return true, nil
	}
	sandboxes, pooledN, err := m.cfg.Store.Count(ctx)
	if err != nil {
		return false, err
	}
	if ready > m.cfg.WarmPool || (sandboxes+pooledN > m.cfg.MaxSandboxes && ready > 0) {
		p.mu.Lock()
		if len(p.ready) > 0 {
			drop, p.ready = p.ready[0], p.ready[1:]
		}
		p.mu.Unlock()
		if drop != nil {
			m.discardPooled(bg, drop)
		}
		return drop != nil, nil
	}
	if ready >= m.cfg.WarmPool || sandboxes+pooledN >= m.cfg.MaxSandboxes || image == "" {
		return false, nil
	}
	if m.starting.Load() > 0 {
		return false, nil // yield to sandboxes' own starts; they kick when done
	}
	s, err := m.startPooled(bg)
	if err != nil {
		return false, err
	}
	p.put(s)
	return true, nil
}

// imageIdentity names the directory at path as it is now (its device and
// inode), or "" if there is none: an image rebuilt in place, under the same
// path, is another directory, and pooled containers started over the old
// one must not be handed out.
func imageIdentity(path string) string {
	fi, err := os.Stat(path)
	if err != nil {
		return ""
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return path
	}
	return fmt.Sprintf("%d:%d", st.Dev, st.Ino)
}

// defaultImagePath resolves the default image's directory.
func (m *Manager) defaultImagePath() (string, error) {
	dir, err := m.imageDir(m.cfg.DefaultImage)
	if err != nil {
		return "", err
	}
	return filepath.EvalSymlinks(dir)
}

// poolRecord is the record of a new pooled sandbox: a create with default
// options, as createLocked makes it.
func (m *Manager) poolRecord() (store.Sandbox, error) {
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		return store.Sandbox{}, err
	}
	name := poolPrefix + hex.EncodeToString(b)
	rec, err := newRecord(name, api.CreateSandboxRequest{}, m.cfg.DefaultImage)
	if err != nil {
		return rec, err
	}
	if rec.Resources.DiskMB == 0 {
		rec.Resources.DiskMB = m.cfg.DiskMB
	}
	if rec.ImagePath, err = m.defaultImagePath(); err != nil {
		return rec, fmt.Errorf("image %s: %w", rec.Image, err)
	}
	rec.RuntimeName, rec.Pooled = name, true
	return rec, nil
}

// startPooled creates and starts one pooled sandbox. On error nothing of it
// is left.
func (m *Manager) startPooled(ctx context.Context) (s *pooled, err error) {
	began := time.Now()
	rec, err := m.poolRecord()
	if err != nil {
		return nil, err
	}
	rec, err = m.cfg.Store.Create(ctx, rec, m.cfg.MaxSandboxes)
	if err != nil {
		return nil, fmt.Errorf("pooled sandbox: %w", err)
	}
	s = &pooled{rec: rec, image: imageIdentity(rec.ImagePath)}
	defer func() {
		if err != nil {
			m.discardPooled(ctx, s)
		}
	}()
	release, err := m.startSlot(ctx)
	if err != nil {
		return s, err
	}
	defer release()
	sctx, cancel := context.WithTimeout(ctx, agentTimeout+30*time.Second)
	defer cancel()
	s.inst, err = m.cfg.Runtime.Start(sctx, m.specOf(rec, rec.RuntimeName))
	if err != nil {
		return s, fmt.Errorf("start pooled sandbox %s: %w", rec.ID, err)
	}
	s.client = agentclient.New(s.inst.Socket)
	vctx, vcancel := context.WithTimeout(sctx, agentTimeout)
	err = s.client.CheckVersion(vctx)
	vcancel()
	if err != nil {
		return s, fmt.Errorf("%w: pooled sandbox %s: its agent: %v", errdefs.ErrUnavailable, rec.ID, err)
	}
	// Warm the default session: its bash starting is most of a first
	// call's time. (The claim then sets the shell's $HOSTNAME, which bash
	// read from the kernel when it started.)
	if err := m.execPooled(sctx, s, "true"); err != nil {
		return s, fmt.Errorf("pooled sandbox %s: warm its session: %w", rec.ID, err)
	}
	if s.rec, err = m.cfg.Store.Update(sctx, rec.ID, func(r *store.Sandbox) error { r.Status = api.StatusRunning; return nil }); err != nil {
		return s, err
	}
	m.log.Info("warm pool: started a pooled sandbox", "runtime", rec.RuntimeName, "ms", time.Since(began).Milliseconds())
	return s, nil
}

// discardPooled destroys a pooled sandbox that is in no ready list: its
// container and files, then its record.
func (m *Manager) discardPooled(ctx context.Context, s *pooled) {
	if s.client != nil {
		s.client.Close()
	}
	if err := m.cfg.Runtime.Destroy(ctx, s.rec.RuntimeName); err != nil {
		m.log.Error("warm pool: destroy pooled sandbox", "runtime", s.rec.RuntimeName, "err", err)
		return // keep the record: its files still need cleaning (Recover)
	}
	if err := m.cfg.Store.Delete(ctx, s.rec.ID); err != nil {
		m.log.Error("warm pool: delete pooled record", "runtime", s.rec.RuntimeName, "err", err)
	}
}

// recoverPool, part of Recover, adopts the pooled containers that survived
// an earlier daemon run, as many as the pool holds, if their agent
// answers and their image is still the default one; it destroys the rest,
// and the leftovers of pooled sandboxes whose start never finished.
func (m *Manager) recoverPool(ctx context.Context) error {
	recs, err := m.cfg.Store.ListPooled(ctx)
	if err != nil {
		return err
	}
	image, _ := m.defaultImagePath()
	for _, rec := range recs {
		s := &pooled{rec: rec, image: imageIdentity(rec.ImagePath)}
		log := m.log.With("runtime", rec.RuntimeName)
		if m.poolEnabled() && m.PoolSize() < m.cfg.WarmPool && rec.Status == api.StatusRunning && rec.ImagePath == image {
			inst, err := m.cfg.Runtime.Attach(ctx, rec.RuntimeName)
			if err == nil {
				s.inst, s.client = inst, agentclient.New(inst.Socket)
				vctx, cancel := context.WithTimeout(ctx, 5*time.Second)
				err = s.client.CheckVersion(vctx)
				cancel()
			}
			if err == nil {
				m.pool.put(s)
				log.Info("warm pool: adopted a pooled sandbox", "pid", inst.Pid)
				continue
			}
			log.Warn("warm pool: pooled sandbox did not survive; destroying it", "err", err)
		}
		m.discardPooled(ctx, s)
	}
	return nil
}
