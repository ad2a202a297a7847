package core

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"slices"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Reaper owns waiting for child processes. As PID 1 the agent inherits every
// orphan in the sandbox, so it must reap with wait4(-1); that would steal
// exit statuses from os/exec, so nothing else in the agent ever waits:
// processes are started through Reaper.Start and their status arrives on a
// channel.
//
// Start forks and registers the pid under mu; the reap loop looks a pid up
// under mu after reaping it. A child can only be reaped after its fork, so
// the lookup always sees the registration.
type Reaper struct {
	cg      *Cgroups
	mu      sync.Mutex
	waiters map[int]chan unix.WaitStatus // by pid; guarded by mu
	wake    chan os.Signal
}

// NewReaper returns a reaper whose processes go into groups of cg.
func NewReaper(cg *Cgroups) *Reaper {
	r := &Reaper{cg: cg, waiters: make(map[int]chan unix.WaitStatus), wake: make(chan os.Signal, 1)}
	signal.Notify(r.wake, unix.SIGCHLD)
	return r
}

// Cgroups returns the groups processes are started in.
func (r *Reaper) Cgroups() *Cgroups { return r.cg }

// Start starts a process in group g, whose exit status will be sent on the
// returned channel (buffered, one value).
//
// The process is moved into g right after its fork (the sandbox's seccomp
// profile refuses clone3, so it cannot be born there), before it has had
// time to fork itself; should it have, its children land in the agent's
// own leaf, which holds nothing else while starts are serialized (mu), and
// are moved too.
func (r *Reaper) Start(g *Group, argv0 string, argv []string, attr *os.ProcAttr) (*os.Process, <-chan unix.WaitStatus, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	p, err := os.StartProcess(argv0, argv, attr)
	if err != nil {
		return nil, nil, err
	}
	ch := make(chan unix.WaitStatus, 1)
	r.waiters[p.Pid] = ch
	if err := g.Add(p.Pid); err != nil {
		_ = p.Kill()
		return nil, nil, fmt.Errorf("start %s: into its cgroup: %w", argv0, err)
	}
	if leaf := r.cg.leaf; leaf != "" {
		self := os.Getpid()
		for range 100 {
			strays := slices.DeleteFunc(readPids(leaf), func(pid int) bool { return pid == self })
			if len(strays) == 0 {
				break
			}
			for _, pid := range strays {
				_ = g.Add(pid)
			}
		}
	}
	return p, ch, nil
}

// Run reaps children until ctx ends.
func (r *Reaper) Run(ctx context.Context) {
	defer signal.Stop(r.wake)
	for {
		r.reapAll()
		select {
		case <-ctx.Done():
			return
		case <-r.wake:
		}
	}
}

func (r *Reaper) reapAll() {
	for {
		var ws unix.WaitStatus
		pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
		if err == unix.EINTR {
			continue
		}
		if pid <= 0 || err != nil {
			return
		}
		r.mu.Lock()
		ch := r.waiters[pid]
		delete(r.waiters, pid)
		r.mu.Unlock()
		if ch != nil {
			ch <- ws
		}
	}
}

// TerminateAll sends SIGTERM to every process the agent may stop, waits up
// to grace for them, then sends SIGKILL. As PID 1 that is every process in
// the sandbox; otherwise it is the process groups of the agent's children.
func (r *Reaper) TerminateAll(grace time.Duration) {
	r.signalAll(unix.SIGTERM)
	deadline := time.Now().Add(grace)
	for time.Now().Before(deadline) {
		r.reapAll()
		r.mu.Lock()
		n := len(r.waiters)
		r.mu.Unlock()
		if n == 0 && (os.Getpid() != 1 || unix.Kill(-1, 0) == unix.ESRCH) {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	r.signalAll(unix.SIGKILL)
	r.reapAll()
}

func (r *Reaper) signalAll(sig unix.Signal) {
	if os.Getpid() == 1 {
		_ = unix.Kill(-1, sig) // every process in the pid namespace but us
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for pid := range r.waiters {
		_ = unix.Kill(-pid, sig)
	}
}
