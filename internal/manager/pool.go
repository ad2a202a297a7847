package manager

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	goruntime "runtime"
	"slices"
	"strconv"
	"strings"
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

// The warm pool (docs/OPERATIONS.md, Warm pool; docs/ARCHITECTURE.md):
// Config.WarmPool sandboxes of the default image, with default options,
// started ahead of need, so that the first use of a new ID takes over a
// running container instead of starting one.
//
// A pooled sandbox is a store record with Pooled set whose ID is its
// runtime name, "pool.<random hex>": the '.' keeps it apart from every
// sandbox ID. A claim (claimLocked, under the new ID's lock) turns it into
// the new ID's sandbox, which keeps the pooled runtime name for good:
// everything that calls the runtime goes through the record's RuntimeName
// (see runtimeName).
//
// The pool's size follows demand (poolTarget): as many pooled sandboxes as
// the most creates it could have served that came within poolBurst of
// each other in the last poolDemandWindow, at least Config.WarmPool, at
// most Config.WarmPoolMax, and only as many as fit in
// Config.WarmPoolMemoryMB. A burst of creates thus grows the pool for the
// next one, a steady trickle keeps it small (the filler replaces each
// claimed sandbox in well under poolBurst), and a quiet spell shrinks it
// back.
//
// One goroutine, the filler (poolLoop), owns the pool. It starts one
// pooled sandbox at a time, only while no other start is in progress,
// only while the CPUs have room (cpuBusy; below Config.WarmPool, after a
// second at most), and only while sandboxes and pooled ones together stay
// under MaxSandboxes; past that, or past the target, it destroys pooled
// ones. Pooled containers whose init exited,
// or whose image is no longer the default one (see imageIdentity), are
// never claimed, and are destroyed and replaced.

// poolPrefix starts every pooled sandbox's runtime name.
const poolPrefix = "pool."

// poolIdle is the filler's wait between looks when nothing kicks it;
// while the CPUs are busy (cpuBusy) it looks again after poolBusyWait,
// doubling up to poolIdle while they stay busy; below the pool's minimum
// it waits for them poolBusyMax at the most.
const (
	poolIdle     = 10 * time.Second
	poolBusyWait = 20 * time.Millisecond
	poolBusyMax  = time.Second
)

// cpuBusy tells whether more tasks are runnable this moment than the host
// has CPUs online (the kernel's counts in /proc/loadavg and /proc/stat),
// the filler's own included.
func cpuBusy() bool {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return false
	}
	f := strings.Fields(string(b)) // 0.52 0.58 0.59 3/467 12345
	if len(f) < 4 {
		return false
	}
	running, _, _ := strings.Cut(f[3], "/")
	n, err := strconv.Atoi(running)
	return err == nil && n > onlineCPUs()
}

// onlineCPUs is the host's number of CPUs online (whatever this process's
// affinity or cpuset): the lines cpu0, cpu1... of /proc/stat.
var onlineCPUs = sync.OnceValue(func() int {
	b, _ := os.ReadFile("/proc/stat")
	n := 0
	for line := range strings.SplitSeq(string(b), "\n") {
		if len(line) > 3 && strings.HasPrefix(line, "cpu") && line[3] >= '0' && line[3] <= '9' {
			n++
		}
	}
	return max(n, goruntime.NumCPU())
})

// poolDemandWindow is how far back poolTarget looks at creates, and
// poolBurst how close together creates count as one burst.
const (
	poolDemandWindow = 10 * time.Minute
	poolBurst        = 10 * time.Second
)

// poolMemoryGuess is what a pooled sandbox is taken to cost in memory
// until one has been measured.
const poolMemoryGuess = 8 << 20

// pooled is one ready pooled sandbox.
type pooled struct {
	rec    store.Sandbox // ID == RuntimeName
	image  string        // imageIdentity of rec.ImagePath when it started
	client *agentclient.Client
	inst   *runtime.Instance
	memory int64 // bytes its cgroup used once started; 0: unknown
}

// pool is the Manager's warm pool.
type pool struct {
	kickc chan struct{} // buffered (1): a pending "look again" for the filler
	// While the CPUs are busy: when the filler began to wait for them
	// below the pool's minimum (zero: it is not), and its next wait
	// (zero: poolBusyWait). The filler's own.
	busySince time.Time
	busyWait  time.Duration

	mu     sync.Mutex
	ready  []*pooled   // guarded by mu
	demand []time.Time // creates the pool could serve, oldest first, within poolDemandWindow; guarded by mu
}

// noteDemand records a create the pool could serve, now, and forgets
// those older than poolDemandWindow; it keeps at most keep.
func (p *pool) noteDemand(now time.Time, keep int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.demand = append(p.demand, now)
	p.forgetLocked(now, keep)
}

// forgetLocked drops demand older than poolDemandWindow, and all but the
// newest keep; p.mu is held.
func (p *pool) forgetLocked(now time.Time, keep int) {
	i := 0
	for i < len(p.demand) && (now.Sub(p.demand[i]) > poolDemandWindow || len(p.demand)-i > keep) {
		i++
	}
	p.demand = slices.Delete(p.demand, 0, i)
}

// poolTarget is the number of pooled sandboxes to keep now: the recent
// demand, between WarmPool and WarmPoolMax, and within the memory budget
// at the measured (else guessed) memory per pooled sandbox.
func (m *Manager) poolTarget(now time.Time) int {
	p := &m.pool
	p.mu.Lock()
	defer p.mu.Unlock()
	p.forgetLocked(now, m.cfg.WarmPoolMax)
	burst := 0 // the most creates within poolBurst of each other
	for i, j := 0, 0; j < len(p.demand); j++ {
		for p.demand[j].Sub(p.demand[i]) > poolBurst {
			i++
		}
		burst = max(burst, j-i+1)
	}
	target := min(max(burst, m.cfg.WarmPool), m.cfg.WarmPoolMax)
	if budget := m.cfg.WarmPoolMemoryMB << 20; budget > 0 {
		var sum, n int64
		for _, s := range p.ready {
			if s.memory > 0 {
				sum, n = sum+s.memory, n+1
			}
		}
		each := int64(poolMemoryGuess)
		if n > 0 {
			each = max(sum/n, 1)
		}
		target = min(target, max(int(budget/each), m.cfg.WarmPool))
	}
	return target
}

// PoolTarget returns the number of pooled sandboxes the pool aims for now.
func (m *Manager) PoolTarget() int {
	if !m.poolEnabled() {
		return 0
	}
	return m.poolTarget(time.Now())
}

// poolMissed counts a create the pool did not serve, rec being its
// record: a miss if the pool could have served it (default options and
// image), and demand for the pool's size.
func (m *Manager) poolMissed(rec store.Sandbox) {
	if !m.poolEnabled() || !m.poolServes(rec) {
		return
	}
	m.cfg.Metrics.PoolMisses.Inc()
	m.pool.noteDemand(time.Now(), m.cfg.WarmPoolMax)
	kick(m.pool.kickc)
}

// poolServes tells whether a pooled sandbox can become one of record rec.
func (m *Manager) poolServes(rec store.Sandbox) bool {
	def, err := m.record(rec.ID, api.CreateSandboxRequest{}) // as poolRecord makes them
	return err == nil && sameRuntime(def, rec)
}

// take removes and returns the first ready pooled sandbox for which ok
// holds, or nil.
func (p *pool) take(ok func(*pooled) bool) *pooled {
	p.mu.Lock()
	defer p.mu.Unlock()
	i := slices.IndexFunc(p.ready, ok)
	if i < 0 {
		return nil
	}
	s := p.ready[i]
	p.ready = slices.Delete(p.ready, i, i+1)
	return s
}

// claimable tells whether a pooled sandbox may become one of record rec:
// it runs like rec, and its image is still image (an imageIdentity).
func claimable(rec store.Sandbox, image string) func(*pooled) bool {
	return func(s *pooled) bool { return sameRuntime(s.rec, rec) && s.image == image }
}

// put returns s to the ready list.
func (p *pool) put(s *pooled) {
	p.mu.Lock()
	p.ready = append(p.ready, s)
	p.mu.Unlock()
}

// closeClients empties the ready list, closing its agent connections. The
// pooled containers keep running: the next daemon adopts them.
func (p *pool) closeClients() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, s := range p.ready {
		s.client.Close()
	}
	p.ready = nil
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
	s := m.pool.take(claimable(rec, imageIdentity(rec.ImagePath)))
	if s == nil {
		return false, nil
	}
	defer kick(m.pool.kickc)
	began := time.Now()
	log := m.log.With("sandbox", e.id, "runtime", s.rec.RuntimeName)
	// Once begun, a claim finishes, whatever the caller does.
	ctx = context.WithoutCancel(ctx)
	discard := func(msg string, args ...any) (bool, error) {
		log.Warn(msg+"; not claimed", args...)
		m.discardPooled(ctx, s)
		return false, nil
	}
	select {
	case <-s.inst.Exited:
		return discard("pooled container exited")
	default:
	}
	if err := m.cfg.Runtime.(runtime.HostnameSetter).SetHostname(ctx, s.rec.RuntimeName, e.id); err != nil {
		return discard("pooled container: set hostname", "err", err)
	}
	// The session's shell read $HOSTNAME when it started (startPooled):
	// set it again, before the record makes the sandbox e's, so that a
	// daemon killed in between leaves either a pooled sandbox (whose next
	// claim sets both again) or a sandbox that is wholly e's.
	if err := m.execPooled(ctx, s, "HOSTNAME="+e.id); err != nil { // e.id is [a-z0-9-]: no quoting needed
		return discard("pooled container: set the shell's hostname", "err", err)
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
		return discard("claim pooled sandbox", "err", err)
	}
	m.runningLocked(e, s.client, s.inst, claimed, now)
	m.cfg.Metrics.PoolHits.Inc()
	m.pool.noteDemand(time.Now(), m.cfg.WarmPoolMax)
	took := time.Since(began)
	m.cfg.Metrics.CreateSeconds.Observe(took.Seconds())
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

// poolLoop is the filler: it keeps the pool filled until ctx ends.
func (m *Manager) poolLoop(ctx context.Context) {
	const minBackoff, maxBackoff = time.Second, time.Minute
	backoff := minBackoff
	for {
		wait, err := m.poolStep(ctx)
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			m.log.Error("warm pool", "err", err, "retry-in", backoff)
			wait, backoff = backoff, min(backoff*2, maxBackoff)
		default:
			backoff = minBackoff
			if wait == 0 {
				continue
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-m.pool.kickc:
		case <-time.After(wait):
		}
	}
}

// poolStep does one thing the pool needs: drop a dead, stale or surplus
// pooled sandbox, or start one. It returns how long to wait before the
// next step unless kicked: 0 if there may be more to do now.
func (m *Manager) poolStep(ctx context.Context) (wait time.Duration, err error) {
	bg := context.WithoutCancel(ctx)
	image, _ := m.imagePath(m.cfg.DefaultImage)
	ident := imageIdentity(image)
	if drop := m.pool.take(func(s *pooled) bool {
		select {
		case <-s.inst.Exited:
			return true
		default:
			return s.rec.ImagePath != image || s.image != ident
		}
	}); drop != nil {
		m.log.Info("warm pool: dropping a dead or stale pooled sandbox", "runtime", drop.rec.RuntimeName)
		m.discardPooled(bg, drop)
		return 0, nil
	}
	ready, target := m.PoolSize(), m.poolTarget(time.Now())
	sandboxes, pooledN, err := m.cfg.Store.Count(ctx)
	if err != nil {
		return poolIdle, err
	}
	if ready > target || (sandboxes+pooledN > m.cfg.MaxSandboxes && ready > 0) {
		if drop := m.pool.take(func(*pooled) bool { return true }); drop != nil {
			m.discardPooled(bg, drop)
			return 0, nil
		}
		return poolIdle, nil
	}
	if ready >= target || sandboxes+pooledN >= m.cfg.MaxSandboxes || image == "" {
		return poolIdle, nil
	}
	if m.starting.Load() > 0 {
		return poolIdle, nil // yield to sandboxes' own starts; they kick when done
	}
	if wait, busy := m.poolBusy(ready); busy {
		return wait, nil
	}
	s, err := m.startPooled(bg)
	if err != nil {
		return poolIdle, err
	}
	m.pool.put(s)
	return 0, nil
}

// poolBusy tells whether the filler, with ready pooled sandboxes, is to
// wait for busy CPUs before a start, and how long. Past its minimum the
// pool grows only on idle CPUs, not at the cost of the sandboxes at work
// (such as those just claimed, running their first commands); below it,
// the filler waits poolBusyMax at the most.
func (m *Manager) poolBusy(ready int) (time.Duration, bool) {
	p := &m.pool
	busy := m.cpuBusy
	if busy == nil {
		busy = cpuBusy
	}
	if !busy() {
		p.busySince, p.busyWait = time.Time{}, 0
		return 0, false
	}
	now := time.Now()
	if ready < m.cfg.WarmPool {
		if p.busySince.IsZero() {
			p.busySince = now
		}
		if now.Sub(p.busySince) >= poolBusyMax {
			p.busySince, p.busyWait = time.Time{}, 0
			return 0, false
		}
		return poolBusyWait, true
	}
	p.busySince = time.Time{}
	p.busyWait = min(max(2*p.busyWait, poolBusyWait), poolIdle)
	return p.busyWait, true
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

// poolRecord is the record of a new pooled sandbox: a create with default
// options, as createLocked makes it.
func (m *Manager) poolRecord() (store.Sandbox, error) {
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		return store.Sandbox{}, err
	}
	name := poolPrefix + hex.EncodeToString(b)
	rec, err := m.record(name, api.CreateSandboxRequest{})
	rec.RuntimeName, rec.Pooled = name, true
	return rec, err
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
	trace := runtime.NewStartTrace()
	if s.inst, s.client, err = m.startContainer(runtime.WithStartTrace(ctx, trace), rec, rec.RuntimeName); err != nil {
		return s, err
	}
	// Warm the default session: its bash starting is most of a first
	// call's time. (The claim then sets the shell's $HOSTNAME, which bash
	// read from the kernel when it started.)
	if err := m.execPooled(ctx, s, "true"); err != nil {
		return s, fmt.Errorf("pooled sandbox %s: warm its session: %w", rec.ID, err)
	}
	if s.rec, err = m.cfg.Store.Update(ctx, rec.ID, func(r *store.Sandbox) error { r.Status = api.StatusRunning; return nil }); err != nil {
		return s, err
	}
	if ur, ok := m.cfg.Runtime.(runtime.UsageReader); ok {
		if u, err := ur.Usage(ctx, rec.RuntimeName); err == nil {
			s.memory = u.MemoryBytes
		}
	}
	trace.Mark("commit")
	m.observeStart("pool", trace)
	m.log.Info("warm pool: started a pooled sandbox", "runtime", rec.RuntimeName, "ms", time.Since(began).Milliseconds(), "phases", trace)
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
	image, _ := m.imagePath(m.cfg.DefaultImage)
	for _, rec := range recs {
		s := &pooled{rec: rec, image: imageIdentity(rec.ImagePath)}
		log := m.log.With("runtime", rec.RuntimeName)
		// As many as the pool's minimum: it has seen no demand yet.
		if m.poolEnabled() && m.PoolSize() < m.cfg.WarmPool && rec.Status == api.StatusRunning && rec.ImagePath == image {
			var err error
			if s.inst, err = m.cfg.Runtime.Attach(ctx, rec.RuntimeName); err == nil {
				s.client, err = connect(ctx, s.inst, 5*time.Second)
			}
			if err == nil {
				m.pool.put(s)
				log.Info("warm pool: adopted a pooled sandbox", "pid", s.inst.Pid)
				continue
			}
			log.Warn("warm pool: pooled sandbox did not survive; destroying it", "err", err)
		}
		m.discardPooled(ctx, s)
	}
	return nil
}
