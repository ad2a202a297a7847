package runc

import (
	"bufio"
	"fmt"
	"os"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// tracked is what the runtime follows of one running container: its
// init's exit, through a pidfd in the Go poller (no thread blocked per
// sandbox), and the agent's output, if this daemon started it.
type tracked struct {
	pidfd *os.File
	logs  *os.File // nil after a daemon restart
	// host is the container's hostname as last set by SetHostname: the
	// ID of the sandbox that claimed a pooled container, for its log
	// lines. nil: the container's name.
	host atomic.Pointer[string]
}

// track starts following container id, whose init is pid, and returns a
// channel closed when that init exits (not when following stops). logs, if
// not nil, is the read end of the agent's output pipe; track owns it.
func (r *Runtime) track(id string, pid int, logs *os.File) (<-chan struct{}, error) {
	fd, err := unix.PidfdOpen(pid, unix.PIDFD_NONBLOCK)
	if err == nil && !inCgroup(pid, r.cgroup(id)) { // a stale pid, reused by another process
		unix.Close(fd)
		err = fmt.Errorf("pid %d is not its init", pid)
	}
	if err != nil {
		logs.Close() // nil-safe
		return nil, fmt.Errorf("watch container %s: %w", id, err)
	}
	pidfd := os.NewFile(uintptr(fd), "pidfd")
	t := &tracked{pidfd: pidfd, logs: logs}
	r.mu.Lock()
	if old := r.tracked[id]; old != nil {
		old.close()
	}
	r.tracked[id] = t
	r.mu.Unlock()

	exited := make(chan struct{})
	go func() {
		// Returns when the pidfd turns readable (the process exited), or
		// with an error when untrack or Close closes it: then the
		// container may well live on, and exited stays open.
		rc, err := pidfd.SyscallConn()
		if err == nil && rc.Read(func(uintptr) bool { return exitedNow(fd) }) == nil {
			close(exited)
		}
	}()
	if logs != nil {
		go func() {
			sc := bufio.NewScanner(logs)
			sc.Buffer(make([]byte, 4096), 64<<10)
			for sc.Scan() {
				// The sandbox's ID: the container's name, unless a
				// sandbox claimed it under another one.
				if h := t.host.Load(); h != nil && *h != id {
					r.log.Info("agent: "+sc.Text(), "sandbox", *h, "runtime", id)
				} else {
					r.log.Info("agent: "+sc.Text(), "sandbox", id)
				}
			}
		}()
	}
	return exited, nil
}

// trackedHost records hostname as the name of container id's sandbox in
// its log lines.
func (r *Runtime) trackedHost(id, hostname string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if t := r.tracked[id]; t != nil {
		t.host.Store(&hostname)
	}
}

// exitedNow polls a pidfd without waiting.
func exitedNow(fd int) bool {
	n, err := unix.Poll([]unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}, 0)
	return err == nil && n > 0
}

func (t *tracked) close() {
	t.pidfd.Close()
	t.logs.Close() // nil-safe
}

// untrack stops following id.
func (r *Runtime) untrack(id string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if t := r.tracked[id]; t != nil {
		t.close()
		delete(r.tracked, id)
	}
}

// Close stops following every container. Containers keep running.
func (r *Runtime) Close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for id, t := range r.tracked {
		t.close()
		delete(r.tracked, id)
	}
}
