package code

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sandboxd/sandboxd/api"
	"github.com/sandboxd/sandboxd/internal/agent/core"
	"github.com/sandboxd/sandboxd/internal/errdefs"
)

// zygoteStartTimeout bounds the zygote's start: a cold import of IPython,
// numpy, pandas and matplotlib on a busy machine.
const zygoteStartTimeout = 90 * time.Second

// zygote is the Python process that has imported IPython and the scientific
// stack and forks one executor per code context (see python_executor.py).
// It is started on the first use of Python in the sandbox, not before: an
// idle sandbox does not pay for it. Its children are its own: it reaps them
// and reports each exit on its socket.
type zygote struct {
	cg   *core.Cgroups
	grp  *core.Group   // the zygote's own: its children move to theirs
	conn *net.UnixConn // SOCK_SEQPACKET: one message per request or report
	dead chan struct{} // closed when the socket ended
	// forkMu serializes fork requests, so that each reply answers the
	// request before it (the first reply says the zygote is ready).
	forkMu  sync.Mutex
	replies chan zygoteMsg

	mu    sync.Mutex
	waits map[int]chan int // exit codes to deliver, by pid; guarded by mu
}

// zygoteMsg is a message of the zygote.
type zygoteMsg struct {
	Ready   bool   `json:"ready"`
	Pid     int    `json:"pid"`
	Error   string `json:"error"`
	Missing string `json:"missing"`
	Exited  int    `json:"exited"`
	Code    int    `json:"code"`

	exited chan int // a fork's reply: where its child's exit code will come
}

// pythonZygote returns the sandbox's zygote, starting it if needed (or
// again, if it died).
func (ci *Interpreter) pythonZygote(ctx context.Context) (*zygote, error) {
	ci.pyMu.Lock()
	defer ci.pyMu.Unlock()
	if z := ci.zygote; z != nil {
		select {
		case <-z.dead:
		default:
			return z, nil
		}
	}
	z, err := ci.startZygote(ctx)
	if err == nil {
		ci.zygote = z
	}
	return z, err
}

func (ci *Interpreter) startZygote(ctx context.Context) (_ *zygote, err error) {
	python, err := exec.LookPath("python3")
	if err != nil {
		return nil, notAvailable(api.LanguagePython, "python3 is not installed in this sandbox's image")
	}
	script, err := ci.executorFile("python_executor.py")
	if err != nil {
		return nil, err
	}
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("zygote socket: %w", err)
	}
	ours, theirs := os.NewFile(uintptr(fds[0]), "zygote"), os.NewFile(uintptr(fds[1]), "zygote-child")
	defer theirs.Close()
	fc, err := net.FileConn(ours)
	ours.Close()
	if err != nil {
		return nil, fmt.Errorf("zygote socket: %w", err)
	}
	conn := fc.(*net.UnixConn)
	_, grp, exited, err := ci.spawn("zygote", []string{python, "-u", script, "zygote"}, nil, nil, os.Stderr, theirs)
	if err != nil {
		conn.Close()
		return nil, err
	}
	z := &zygote{cg: ci.reaper.Cgroups(), grp: grp, conn: conn, dead: make(chan struct{}), replies: make(chan zygoteMsg, 1),
		waits: map[int]chan int{}}
	go func() {
		<-exited
		conn.Close() // ends readLoop, should the zygote's children hold the socket
	}()
	go z.readLoop()
	defer func() {
		if err != nil {
			z.stop()
		}
	}()
	select {
	case m := <-z.replies:
		switch {
		case m.Ready:
			return z, nil
		case m.Missing != "":
			return nil, notAvailable(api.LanguagePython, fmt.Sprintf("Python needs the module %s, which is not installed in this sandbox's image (%s)", m.Missing, m.Error))
		}
		return nil, fmt.Errorf("start the Python executor: %s", m.Error)
	case <-z.dead:
		return nil, fmt.Errorf("start the Python executor: python3 exited while starting")
	case <-time.After(zygoteStartTimeout):
		return nil, fmt.Errorf("start the Python executor: not ready after %s", zygoteStartTimeout)
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// readLoop reads the zygote's messages until its socket ends: exit reports
// to their waiters, replies to z.replies. A reply's child is waited for
// from then on, so that no exit report comes too soon.
func (z *zygote) readLoop() {
	defer func() {
		z.mu.Lock()
		close(z.dead)
		// The zygote's children live on without it (re-parented to the
		// agent, which reaps them): their exits are no longer reported,
		// but seen.
		for pid, ch := range z.waits {
			go func() { ch <- waitGone(pid) }()
			delete(z.waits, pid)
		}
		z.mu.Unlock()
	}()
	buf := make([]byte, 64<<10)
	for {
		n, _, _, _, err := z.conn.ReadMsgUnix(buf, nil)
		if err != nil || n == 0 {
			return
		}
		var m zygoteMsg
		if json.Unmarshal(buf[:n], &m) != nil {
			continue
		}
		switch {
		case m.Exited > 0:
			z.mu.Lock()
			if ch := z.waits[m.Exited]; ch != nil {
				ch <- m.Code
				delete(z.waits, m.Exited)
			}
			z.mu.Unlock()
		default:
			if m.Pid > 0 {
				m.exited = make(chan int, 1)
				z.mu.Lock()
				z.waits[m.Pid] = m.exited
				z.mu.Unlock()
			}
			select {
			case z.replies <- m:
			default: // nobody asked: drop
			}
		}
	}
}

// errZygoteExited is fork's error when the zygote died before answering:
// a fresh zygote may be asked again.
var errZygoteExited = errors.New("fork a Python executor: the zygote exited")

// waitGone waits until process pid, not a child of the agent's own making,
// has exited, and returns -1 (its exit code is unknown). The goroutine
// that calls it ends with the process.
func waitGone(pid int) int {
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return -1 // gone already
	}
	defer unix.Close(fd)
	for {
		_, err := unix.Poll([]unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}, -1)
		if err != unix.EINTR {
			return -1
		}
	}
}

// stop kills the zygote (its children live on, re-parented, in groups of
// their own).
func (z *zygote) stop() {
	z.grp.Kill()
	z.conn.Close()
}

// fork makes a new executor with cwd and env (added to the sandbox's). It
// does not give up when the caller does (a fork takes milliseconds), so
// that every answer of the zygote goes to the request it answers.
func (z *zygote) fork(cwd string, env map[string]string) (_ *executor, err error) {
	z.forkMu.Lock()
	defer z.forkMu.Unlock()
	p, err := newExecutorPipes()
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			p.closeAll()
		}
	}()
	msg, _ := json.Marshal(map[string]any{"cwd": cwd, "env": env})
	ends := p.childEnds()
	fds := make([]int, len(ends))
	for i, f := range ends {
		fds[i] = int(f.Fd())
	}
	_, _, err = z.conn.WriteMsgUnix(msg, unix.UnixRights(fds...), nil)
	p.closeChild()
	if err != nil {
		return nil, fmt.Errorf("fork a Python executor: %w", err)
	}
	var m zygoteMsg
	select {
	case m = <-z.replies:
	case <-z.dead:
		return nil, errZygoteExited
	case <-time.After(10 * time.Second):
		// Its late answer would be taken for the next request's: start
		// afresh instead.
		z.stop()
		return nil, errors.New("fork a Python executor: no answer from the zygote")
	}
	if m.Pid <= 0 {
		if strings.Contains(m.Error, "Errno 11") { // EAGAIN: the process limit
			return nil, fmt.Errorf("%w: fork a Python executor: %s", errdefs.ErrResourceExhausted, m.Error)
		}
		return nil, fmt.Errorf("fork a Python executor: %s", m.Error)
	}
	// The child waits for its first request: it has started nothing yet,
	// and moves to a group of its own (out of the zygote's) whole.
	grp, err := z.cg.New("ctx", nil)
	if err == nil {
		if err = grp.Add(m.Pid); err != nil {
			grp.Remove()
		}
	}
	if err != nil {
		_ = unix.Kill(m.Pid, unix.SIGKILL)
		return nil, fmt.Errorf("fork a Python executor: %w", err)
	}
	return newExecutor(api.LanguagePython, m.Pid, grp, p, m.exited), nil
}

// executorFile writes an embedded executor source into the agent's run
// directory (once) and returns its path. It is written aside and renamed
// into place, so that an executor starting meanwhile reads a whole file.
func (ci *Interpreter) executorFile(name string) (string, error) {
	src, _ := executorSources.ReadFile("executors/" + name) // embedded
	path := filepath.Join(ci.runDir, "executors", name)
	if b, err := os.ReadFile(path); err == nil && bytes.Equal(b, src) {
		return path, nil
	}
	tmp := path + "." + core.NewID(8)
	err := os.MkdirAll(filepath.Dir(path), 0o755)
	if err == nil {
		err = os.WriteFile(tmp, src, 0o644)
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return "", fmt.Errorf("executor source: %w", err)
	}
	return path, nil
}

// notAvailable is the 501 of a language the image lacks.
func notAvailable(lang, msg string) error {
	return &errdefs.CodedError{Code: api.CodeLanguageNotAvailable, Kind: errdefs.ErrNotImplemented, Message: msg,
		Details: map[string]any{"language": lang}}
}
