// Package agent is sandbox-agent, the small program that runs as PID 1 inside
// every sandbox. It serves HTTP on a Unix socket that the daemon created on
// the host and handed over as an inherited file descriptor, so the daemon
// talks to a running sandbox without a runc exec per call. As PID 1 it reaps
// every orphaned process and forwards termination signals to its children.
//
// This package wires the parts together, one package each around a small
// core (package core: the reaper, SSE, JSON answers): sessions and exec
// (session), background processes (process), files, watches and git
// (files), the code interpreter (code) and web terminals (terminal). It
// serves the version and the tunnel to ports (tunnel.go) itself.
package agent

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	goruntime "runtime"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sandboxd/sandboxd/internal/agent/code"
	"github.com/sandboxd/sandboxd/internal/agent/core"
	"github.com/sandboxd/sandboxd/internal/agent/files"
	"github.com/sandboxd/sandboxd/internal/agent/process"
	"github.com/sandboxd/sandboxd/internal/agent/session"
	"github.com/sandboxd/sandboxd/internal/agent/terminal"
	"github.com/sandboxd/sandboxd/internal/agentapi"
)

// Config configures the agent.
type Config struct {
	// ListenFD is an inherited listening socket to serve on (the daemon
	// passes fd 3). Used when Socket is empty.
	ListenFD int
	// Socket is a Unix socket path to listen on instead, for running the
	// agent by hand.
	Socket string
	// Workdir is the default working directory of commands; it is
	// created if missing. Default: the agent's working directory.
	Workdir string
	// RunDir holds the agent's own files (default /run/sandbox-agent, or
	// a new temporary directory when the agent is not PID 1).
	RunDir string
	// StateDir holds what the agent keeps across restarts of its
	// container (sessions' settings, session_state.go). Default:
	// session.DefaultStateDir when the agent is PID 1, else nothing is kept.
	StateDir string
	// Limits bound the processes, sessions and code contexts kept at
	// once; zero fields get the defaults.
	Limits agentapi.Limits
	// KillGrace is how long a process's kill waits between its signal and
	// the kill of all it started; zero: the API's 5 s.
	KillGrace time.Duration
	// CgroupRoot is the cgroup v2 directory the agent makes its groups
	// in (core.Cgroups), after moving itself into a leaf of its own.
	// Default: /sys/fs/cgroup when the agent is PID 1; else none, and
	// process groups stand in for cgroups.
	CgroupRoot string
	Logger     *slog.Logger
}

// Run serves until ctx ends or the agent receives SIGTERM or SIGINT; then it
// stops its children (as PID 1: every process in the sandbox) and returns.
func Run(ctx context.Context, cfg Config) error {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	ln, err := listen(cfg)
	if err != nil {
		return err
	}
	// Nothing in the sandbox may read or write the agent's memory through
	// /proc/1/mem (root there lacks CAP_SYS_PTRACE, so this holds).
	// Commands the agent starts are dumpable again after their exec.
	if err := unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0); err != nil {
		log.Warn("set non-dumpable", "err", err)
	}
	// When the daemon that reads our output goes away, writes to it fail
	// instead of killing the agent. (Notify, not Ignore: an ignored signal
	// would stay ignored in every command the agent starts.)
	signal.Notify(make(chan os.Signal, 1), unix.SIGPIPE)
	reserveThreads(spareThreads)
	workdir := cfg.Workdir
	if workdir == "" {
		if workdir, err = os.Getwd(); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(workdir, 0o755); err != nil {
		log.Warn("create workdir", "dir", workdir, "err", err)
	}
	if os.Getpid() != 1 {
		// Outside a container, still adopt orphaned grandchildren so the
		// reaper sees them all.
		if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
			log.Warn("set child subreaper", "err", err)
		}
	}
	ctx, stop := signal.NotifyContext(ctx, unix.SIGTERM, unix.SIGINT)
	defer stop()

	if err := cfg.Limits.Validate(); err != nil {
		return err
	}
	runDir, err := makeRunDir(cfg.RunDir)
	if err != nil {
		return err
	}
	defer os.RemoveAll(runDir)
	stateDir, cgRoot := cfg.StateDir, cfg.CgroupRoot
	if os.Getpid() == 1 {
		stateDir = cmp.Or(stateDir, session.DefaultStateDir)
		cgRoot = cmp.Or(cgRoot, "/sys/fs/cgroup")
	}
	cg := &core.Cgroups{}
	if cgRoot != "" {
		if cg, err = core.OpenCgroups(cgRoot, true); err != nil {
			log.Warn("no cgroups: a kill reaches a process's process group only", "err", err)
		}
	}
	reaper := core.NewReaper(cg)
	reapCtx, stopReaping := context.WithCancel(context.Background())
	var reaping sync.WaitGroup
	reaping.Go(func() { reaper.Run(reapCtx) })

	limits := cfg.Limits.WithDefaults()
	var procs *process.Registry
	var terms *terminal.Service
	sessions := session.New(session.Config{Reaper: reaper, Workdir: workdir, RunDir: runDir, StateDir: stateDir,
		MaxSessions: limits.Sessions, Log: log, Deleted: func(id string) {
			procs.KillSession(id)
			terms.KillSession(id)
		}})
	procs = process.New(process.Config{Reaper: reaper, Sessions: sessions, Dir: runDir, Max: limits.Processes, KillGrace: cfg.KillGrace})
	terms = terminal.New(reaper, sessions)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/version", func(w http.ResponseWriter, r *http.Request) {
		core.WriteJSON(w, http.StatusOK, agentapi.VersionResponse{Protocol: agentapi.ProtocolVersion, Version: agentapi.Version, Pid: os.Getpid()})
	})
	mux.HandleFunc("GET /v1/tunnel", handleTunnel)
	sessions.Routes(mux)
	procs.Routes(mux)
	files.New(reaper, sessions, workdir, log).Routes(mux)
	code.New(reaper, workdir, runDir, limits.Contexts, log).Routes(mux)
	terms.Routes(mux)

	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	srvErr := make(chan error, 1)
	go func() { srvErr <- srv.Serve(sendBuffered(ln)) }()
	log.Info("agent serving", "addr", ln.Addr().String(), "pid", os.Getpid(), "protocol", agentapi.ProtocolVersion)

	select {
	case <-ctx.Done():
	case err = <-srvErr: // never http.ErrServerClosed: Shutdown comes after
	}
	shutCtx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = srv.Shutdown(shutCtx)
	reaper.TerminateAll(3 * time.Second)
	stopReaping()
	reaping.Wait()
	return err
}

func listen(cfg Config) (net.Listener, error) {
	if cfg.Socket != "" {
		_ = os.Remove(cfg.Socket)
		return net.Listen("unix", cfg.Socket)
	}
	f := os.NewFile(uintptr(cfg.ListenFD), "agent-listener")
	if f == nil {
		return nil, fmt.Errorf("listen fd %d: not open", cfg.ListenFD)
	}
	defer f.Close() // FileListener dups it
	ln, err := net.FileListener(f)
	if err != nil {
		return nil, fmt.Errorf("listen fd %d: %w", cfg.ListenFD, err)
	}
	return ln, nil
}

// makeRunDir creates the agent's runtime directory.
func makeRunDir(dir string) (string, error) {
	var err error
	switch {
	case dir != "":
		err = os.MkdirAll(dir, 0o700)
	case os.Getpid() == 1:
		dir = "/run/sandbox-agent"
		_ = os.RemoveAll(dir) // a previous life's
		err = os.MkdirAll(dir, 0o700)
	default:
		dir, err = os.MkdirTemp("", "sandbox-agent-")
	}
	if err != nil {
		return "", fmt.Errorf("run dir: %w", err)
	}
	return dir, nil
}

// spareThreads is how many OS threads the agent makes at start for later.
const spareThreads = 16

// reserveThreads makes the Go runtime start about n OS threads now, while
// the sandbox's pids limit has room. A fork bomb in the sandbox can later
// use up every pid, and a runtime that then needs a new thread (for a
// goroutine blocked in a system call) cannot make one and dies; idle
// threads stay with the runtime, which reuses them instead.
//
// Each of n goroutines locks itself to its thread and waits until all
// have, so the runtime must run them on n threads at once; unlocked, the
// threads go idle for later use. (Goroutines blocked in a sleep would do it
// too, but only once the runtime's monitor notices them, which takes it up
// to 10 ms per look: a start's worth of waiting.)
func reserveThreads(n int) {
	var locked, done sync.WaitGroup
	release := make(chan struct{})
	locked.Add(n)
	for range n {
		done.Go(func() {
			goruntime.LockOSThread()
			locked.Done()
			<-release
			goruntime.UnlockOSThread()
		})
	}
	locked.Wait()
	close(release)
	done.Wait()
}
