// Package process is the agent's background processes: each a command
// started on its own, with its output kept in a log that readers replay
// and follow (proclog.go), waits for a log line, a port or the exit
// (wait.go), and kill.
package process

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sandboxd/sandboxd/api"
	"github.com/sandboxd/sandboxd/internal/agent/core"
	"github.com/sandboxd/sandboxd/internal/agent/session"
	"github.com/sandboxd/sandboxd/internal/agentapi"
	"github.com/sandboxd/sandboxd/internal/errdefs"
)

// Limits of background processes.
const (
	maxProcLog     = 64 << 20 // bytes of output kept per process
	maxLogsJSON    = 32 << 20 // bytes of output in one getProcessLogs answer
	streamMaxBatch = 256 << 10
)

// DefaultKillGrace is how long a kill waits for a process to exit after
// its signal before it kills its group (the API's 5 s).
const DefaultKillGrace = 5 * time.Second

// Config configures a Registry.
type Config struct {
	Reaper   *core.Reaper
	Sessions *session.Registry // where processes take their directory and environment from
	// Dir holds the processes' logs (unlinked at once).
	Dir string
	// Max bounds the processes kept at once.
	Max int
	// KillGrace is a kill's wait between the signal and the group's
	// kill; zero: DefaultKillGrace.
	KillGrace time.Duration
}

// Registry is the agent's background processes.
type Registry struct {
	reaper   *core.Reaper
	sessions *session.Registry
	max      int
	dir      string
	grace    time.Duration // see Config.KillGrace

	mu sync.Mutex
	m  map[string]*proc // by ID; guarded by mu
}

// New returns an empty registry of cfg.
func New(cfg Config) *Registry {
	return &Registry{reaper: cfg.Reaper, sessions: cfg.Sessions, max: cfg.Max, dir: cfg.Dir,
		grace: cmp.Or(cfg.KillGrace, DefaultKillGrace), m: map[string]*proc{}}
}

// proc is one background process. Its output goes to log; it lives on
// in the registry after it exits, until deleted (autoCleanup, or never).
type proc struct {
	id, command, session string
	pid                  int
	grp                  *core.Group // it and all it starts; removed when it is forgotten
	started              time.Time
	autoCleanup          bool
	log                  *procLog
	done                 chan struct{} // closed when it has exited and its output is all in log

	// Set before done is closed; read after.
	ws    unix.WaitStatus
	ended time.Time
}

// exited reports whether the process has exited and its output is complete.
func (pr *proc) exited() bool {
	select {
	case <-pr.done:
		return true
	default:
		return false
	}
}

func (pr *proc) info() api.Process {
	u := pr.grp.Usage()
	out := api.Process{ID: pr.id, Pid: pr.pid, Command: pr.command, Status: api.ProcessRunning, StartTime: pr.started, SessionID: pr.session,
		CPUMs: u.CPUMs, MemoryBytes: u.MemoryBytes}
	if !pr.exited() {
		return out
	}
	code := core.ExitCode(pr.ws)
	out.ExitCode, out.EndTime = &code, &pr.ended
	switch {
	case pr.ws.Signaled():
		out.Status = api.ProcessKilled
	case code == 0:
		out.Status = api.ProcessCompleted
	default:
		out.Status = api.ProcessFailed
	}
	return out
}

// Routes adds the process calls to mux.
func (p *Registry) Routes(mux *http.ServeMux) {
	mux.HandleFunc("POST /v1/processes", core.JSON(http.StatusCreated, p.handleStart))
	mux.HandleFunc("GET /v1/processes", core.JSON(http.StatusOK, p.handleList))
	mux.HandleFunc("DELETE /v1/processes", core.JSON(http.StatusOK, p.handleKillAll))
	mux.HandleFunc("GET /v1/processes/{pid}", core.JSON(http.StatusOK, withProc(p, p.handleGet)))
	mux.HandleFunc("DELETE /v1/processes/{pid}", core.JSON(http.StatusOK, withProc(p, p.handleKill)))
	mux.HandleFunc("GET /v1/processes/{pid}/logs", core.JSON(http.StatusOK, withProc(p, p.handleLogs)))
	mux.HandleFunc("GET /v1/processes/{pid}/logs/stream", p.handleStream)
	mux.HandleFunc("POST /v1/processes/{pid}/wait", core.JSON(http.StatusOK, withProc(p, p.handleWait)))
}

// lookup finds the process the request's path names, or PROCESS_NOT_FOUND.
func (p *Registry) lookup(r *http.Request) (*proc, error) {
	id := r.PathValue("pid")
	p.mu.Lock()
	pr := p.m[id]
	p.mu.Unlock()
	if pr == nil {
		return nil, &errdefs.CodedError{Code: api.CodeProcessNotFound, Kind: errdefs.ErrNotFound, Message: fmt.Sprintf("process %q not found", id)}
	}
	return pr, nil
}

// withProc adapts h, a call on the process the path names, to core.JSON.
func withProc[Req, Resp any](p *Registry, h func(r *http.Request, req *Req, pr *proc) (Resp, error)) func(*http.Request, *Req) (Resp, error) {
	return func(r *http.Request, req *Req) (Resp, error) {
		pr, err := p.lookup(r)
		if err != nil {
			var zero Resp
			return zero, err
		}
		return h(r, req, pr)
	}
}

// handleStart starts a background process: bash -c command, in its own
// process group, with the session's environment and directory unless the
// request gives its own, stdin from /dev/null and its output to a log.
func (p *Registry) handleStart(r *http.Request, req *api.StartProcessRequest) (_ api.Process, err error) {
	if req.Command == "" {
		return api.Process{}, fmt.Errorf("%w: command is empty", errdefs.ErrInvalidArgument)
	}
	if req.TimeoutMs < 0 {
		return api.Process{}, fmt.Errorf("%w: timeoutMs must not be negative", errdefs.ErrInvalidArgument)
	}
	for k := range req.Env {
		if !agentapi.EnvName.MatchString(k) {
			return api.Process{}, fmt.Errorf("%w: env name %q", errdefs.ErrInvalidArgument, k)
		}
	}
	s, err := p.sessions.ForRequest(r, req.SessionID)
	if err != nil {
		return api.Process{}, err
	}
	info := s.Info()
	dir := cmp.Or(req.Cwd, info.Cwd)
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		return api.Process{}, fmt.Errorf("%w: cwd %q is not a directory", errdefs.ErrInvalidArgument, dir)
	}
	id := cmp.Or(req.ProcessID, "proc-"+core.NewID(12))
	if !core.IDPattern.MatchString(id) {
		return api.Process{}, fmt.Errorf("%w: process id %q: 1-64 characters of [A-Za-z0-9._-]", errdefs.ErrInvalidArgument, id)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.m[id]; ok {
		return api.Process{}, &errdefs.CodedError{Code: api.CodeProcessExists, Kind: errdefs.ErrConflict, Message: fmt.Sprintf("process %q already exists", id)}
	}
	if max := p.max; len(p.m) >= max && !p.evictLocked() {
		return api.Process{}, fmt.Errorf("%w: this sandbox runs at most %d background processes (the daemon's --max-processes); kill or delete one first", errdefs.ErrResourceExhausted, max)
	}
	grp, err := p.reaper.Cgroups().New("proc", nil)
	if err != nil {
		return api.Process{}, err
	}
	log, err := newProcLog(filepath.Join(p.dir, "proc-"+id+".log"))
	if err != nil {
		grp.Remove()
		return api.Process{}, err
	}
	// Closing a nil *os.File is a harmless error.
	var devnull, outR, outW, errR, errW *os.File
	defer func() {
		devnull.Close()
		outW.Close()
		errW.Close()
		if err != nil {
			outR.Close()
			errR.Close()
			log.release()
			grp.Remove()
		}
	}()
	if devnull, err = os.Open(os.DevNull); err != nil {
		return api.Process{}, err
	}
	if outR, outW, err = os.Pipe(); err != nil {
		return api.Process{}, err
	}
	if errR, errW, err = os.Pipe(); err != nil {
		return api.Process{}, err
	}
	shell := "/bin/sh"
	if bash, err := exec.LookPath("bash"); err == nil {
		shell = bash
	}
	env := core.MergeEnv(core.MergeEnv(s.BaseEnv(), info.Env), req.Env)
	osp, exited, err := p.reaper.Start(grp, shell, []string{shell, "-c", req.Command}, &os.ProcAttr{
		Dir: dir, Env: env, Files: []*os.File{devnull, outW, errW}, Sys: &unix.SysProcAttr{Setpgid: true},
	})
	if err != nil {
		return api.Process{}, core.StartError(err)
	}
	pr := &proc{id: id, command: req.Command, session: s.ID(), pid: osp.Pid, grp: grp,
		started: time.Now().UTC(), autoCleanup: req.AutoCleanup, log: log, done: make(chan struct{})}
	p.m[id] = pr
	go pr.supervise(osp, exited, outR, errR, time.Duration(req.TimeoutMs)*time.Millisecond)
	return pr.info(), nil
}

// supervise copies the process's output into its log, applies its timeout
// and records its exit.
func (pr *proc) supervise(osp *os.Process, exited <-chan unix.WaitStatus, outR, errR *os.File, timeout time.Duration) {
	var readers sync.WaitGroup
	for f, stream := range map[*os.File]byte{outR: streamStdout, errR: streamStderr} {
		readers.Go(func() {
			buf := make([]byte, 64<<10)
			for {
				n, err := f.Read(buf)
				pr.log.append(stream, buf[:n])
				if errors.Is(err, os.ErrDeadlineExceeded) {
					core.ReadNow(f, func(b []byte) { pr.log.append(stream, b) })
					go core.Discard(f) // children that outlive it keep their pipe
					return
				} else if err != nil {
					f.Close()
					return
				}
			}
		})
	}
	var timer <-chan time.Time
	if timeout > 0 {
		timer = time.After(timeout)
	}
	select {
	case pr.ws = <-exited:
	case <-timer:
		pr.grp.Kill()
		pr.ws = <-exited
	}
	_ = outR.SetReadDeadline(time.Now().Add(core.DrainGrace))
	_ = errR.SetReadDeadline(time.Now().Add(core.DrainGrace))
	readers.Wait()
	pr.ended = time.Now().UTC()
	osp.Release()
	close(pr.done)
	pr.log.close() // after done: whoever sees the log end finds the exit recorded
}

// kill sends sig to the process and all it started (its group), waits up
// to grace for the process to exit, then kills its group: whatever is
// left, late children included, and the process itself if it ignored sig.
func (pr *proc) kill(sig unix.Signal, grace time.Duration) {
	if !pr.exited() {
		pr.grp.Signal(sig)
		select {
		case <-pr.done:
		case <-time.After(grace):
		}
	}
	pr.grp.Kill()
	<-pr.done
}

func (p *Registry) handleList(r *http.Request, _ *core.NoBody) (api.ProcessList, error) {
	filter := r.URL.Query().Get("status")
	switch filter {
	case "", api.ProcessRunning, api.ProcessCompleted, api.ProcessFailed, api.ProcessKilled:
	default:
		return api.ProcessList{}, fmt.Errorf("%w: status filter %q: running, completed, failed or killed", errdefs.ErrInvalidArgument, filter)
	}
	p.mu.Lock()
	all := slices.Collect(maps.Values(p.m))
	p.mu.Unlock()
	list := make([]api.Process, 0, len(all))
	for _, pr := range all {
		if info := pr.info(); filter == "" || info.Status == filter {
			list = append(list, info)
		}
	}
	slices.SortFunc(list, func(a, b api.Process) int { return a.StartTime.Compare(b.StartTime) })
	return api.ProcessList{Processes: list, Count: len(list)}, nil
}

func (p *Registry) handleGet(r *http.Request, _ *core.NoBody, pr *proc) (api.Process, error) {
	return pr.info(), nil
}

// handleKill kills a running process and answers its final state. A
// process that had already finished is forgotten (record and logs) instead:
// DELETE of a finished process removes it.
func (p *Registry) handleKill(r *http.Request, _ *core.NoBody, pr *proc) (api.Process, error) {
	if pr.exited() {
		info := pr.info()
		p.forget(pr)
		return info, nil
	}
	name := r.URL.Query().Get("signal")
	sig, ok := parseSignal(cmp.Or(name, "SIGTERM"))
	if !ok {
		return api.Process{}, fmt.Errorf("%w: signal %q: a name like SIGTERM or TERM, or a number", errdefs.ErrInvalidArgument, name)
	}
	pr.kill(sig, p.grace)
	return pr.info(), nil
}

func (p *Registry) handleKillAll(r *http.Request, _ *core.NoBody) (api.KillAllResult, error) {
	return api.KillAllResult{KilledCount: p.killWhere(func(*proc) bool { return true })}, nil
}

// KillSession kills the processes started in session sid.
func (p *Registry) KillSession(sid string) {
	p.killWhere(func(pr *proc) bool { return pr.session == sid })
}

// killWhere kills, in parallel, the running processes that match, and
// returns how many it killed.
func (p *Registry) killWhere(match func(*proc) bool) int {
	p.mu.Lock()
	var running []*proc
	for _, pr := range p.m {
		if !pr.exited() && match(pr) {
			running = append(running, pr)
		}
	}
	p.mu.Unlock()
	var wg sync.WaitGroup
	for _, pr := range running {
		wg.Go(func() { pr.kill(unix.SIGTERM, p.grace) })
	}
	wg.Wait()
	return len(running)
}

// cleanupIfDone forgets a finished autoCleanup process once its output has
// been read.
func (p *Registry) cleanupIfDone(pr *proc) {
	if pr.autoCleanup && pr.exited() {
		p.forget(pr)
	}
}

// forget drops a finished process's record and log.
func (p *Registry) forget(pr *proc) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.forgetLocked(pr)
}

func (p *Registry) forgetLocked(pr *proc) {
	if p.m[pr.id] == pr {
		delete(p.m, pr.id)
	}
	pr.log.release()
	pr.grp.Remove()
}

// evictLocked makes room for a new process by forgetting the finished one
// that ended first, if any.
func (p *Registry) evictLocked() bool {
	var oldest *proc
	for _, pr := range p.m {
		if pr.exited() && (oldest == nil || pr.ended.Before(oldest.ended)) {
			oldest = pr
		}
	}
	if oldest != nil {
		p.forgetLocked(oldest)
	}
	return oldest != nil
}

func (p *Registry) handleLogs(r *http.Request, _ *core.NoBody, pr *proc) (api.ProcessLogs, error) {
	size, closed, truncated, _ := pr.log.state()
	recs, err := pr.log.readFrom(0, size, maxLogsJSON)
	if err != nil {
		return api.ProcessLogs{}, err
	}
	var out [3][]byte // by stream
	read := int64(0)
	for _, rec := range recs {
		out[rec.stream] = append(out[rec.stream], rec.data...)
		read = rec.end
	}
	res := api.ProcessLogs{ProcessID: pr.id, Truncated: truncated || read < size}
	res.Stdout, res.StdoutEncoding = core.EncodeOutput(out[streamStdout])
	res.Stderr, res.StderrEncoding = core.EncodeOutput(out[streamStderr])
	if closed {
		p.cleanupIfDone(pr)
	}
	return res, nil
}

// handleStream replays the process's output from the start (or after the
// event id in Last-Event-ID or ?offset=) and follows it live, ending with an
// exit event once the process has exited.
func (p *Registry) handleStream(w http.ResponseWriter, r *http.Request) {
	pr, err := p.lookup(r)
	if err != nil {
		core.WriteError(w, err)
		return
	}
	offset := int64(0)
	if from := cmp.Or(r.Header.Get("Last-Event-ID"), r.URL.Query().Get("offset")); from != "" {
		n, err := strconv.ParseInt(from, 10, 64)
		if size, _, _, _ := pr.log.state(); err != nil || n < 0 || n > size || !pr.log.validOffset(n, size) {
			core.WriteError(w, fmt.Errorf("%w: offset %q is not an event id of this log", errdefs.ErrInvalidArgument, from))
			return
		}
		offset = n
	}
	sse := core.NewSSE(w)
	defer sse.Close()
	err = pr.log.follow(r.Context(), offset, func(rec record) bool {
		offset = rec.end
		return sse.SendChunkID(streamNames[rec.stream], rec.data, rec.end) == nil
	})
	switch {
	case err == io.EOF:
		info := pr.info()
		_ = sse.SendID(api.StreamEvent{Type: api.EventExit, ExitCode: info.ExitCode, Status: info.Status}, offset)
		p.cleanupIfDone(pr)
	case err != nil && r.Context().Err() == nil:
		_ = sse.Send(api.StreamEvent{Type: api.EventError, Code: api.CodeInternal, Message: err.Error()})
	}
}

// parseSignal reads "SIGTERM", "TERM", "term" or "15".
func parseSignal(s string) (unix.Signal, bool) {
	if n, err := strconv.Atoi(s); err == nil && n > 0 && n < 65 {
		return unix.Signal(n), true
	}
	name := strings.ToUpper(s)
	if !strings.HasPrefix(name, "SIG") {
		name = "SIG" + name
	}
	sig := unix.SignalNum(name)
	return sig, sig != 0
}
