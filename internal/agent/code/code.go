// Package code is the agent's code interpreter: code contexts, each an
// interpreter process whose state carries from run to run
// (code_executor.go), Python ones forked by a zygote (code_python.go),
// JavaScript and TypeScript ones Node processes with a warm spare
// (code_node.go). The executors' sources are embedded and written into the
// agent's run directory on first use.
package code

import (
	"cmp"
	"context"
	"embed"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sandboxd/sandboxd/api"
	"github.com/sandboxd/sandboxd/internal/agent/core"
	"github.com/sandboxd/sandboxd/internal/agentapi"
	"github.com/sandboxd/sandboxd/internal/errdefs"
)

//go:embed executors/python_executor.py executors/node_executor.js
var executorSources embed.FS

// Interpreter is the agent's code contexts and warm executors.
type Interpreter struct {
	reaper      *core.Reaper
	workdir     string // contexts' default directory
	runDir      string // where the executors' sources are written
	maxContexts int
	log         *slog.Logger

	mu       sync.Mutex
	contexts map[string]*codeContext // guarded by mu
	pending  int                     // contexts being created; guarded by mu
	// defMu serializes creating a language's default context (ID
	// "default-<language>"), per language: a Python default context's slow
	// first start does not hold up JavaScript's.
	defMu map[string]*sync.Mutex

	pyMu   sync.Mutex
	zygote *zygote // guarded by pyMu

	nodeMu    sync.Mutex
	spare     *executor // a ready Node executor for the next context; guarded by nodeMu
	refilling bool      // a spare is being started; guarded by nodeMu
}

// New returns the code interpreter: nothing runs until it is first used.
func New(reaper *core.Reaper, workdir, runDir string, maxContexts int, log *slog.Logger) *Interpreter {
	return &Interpreter{reaper: reaper, workdir: workdir, runDir: runDir, maxContexts: maxContexts, log: log,
		contexts: map[string]*codeContext{},
		defMu:    map[string]*sync.Mutex{api.LanguagePython: {}, api.LanguageJavaScript: {}, api.LanguageTypeScript: {}}}
}

// codeContext is one code context. Runs take q, in arrival order.
type codeContext struct {
	id, lang, cwd string
	env           map[string]string // the context's envVars
	createdAt     time.Time

	q core.Queue
	// exec is nil after a reset, until the next run. It changes under q;
	// a delete loads it without q, to kill it.
	exec atomic.Pointer[executor]

	mu       sync.Mutex
	lastUsed time.Time // guarded by mu
	deleted  bool      // guarded by mu
}

func (c *codeContext) info() api.CodeContext {
	c.mu.Lock()
	defer c.mu.Unlock()
	return api.CodeContext{ID: c.id, Language: c.lang, Cwd: c.cwd, CreatedAt: c.createdAt, LastUsed: c.lastUsed}
}

// Routes adds the code interpreter's calls to mux.
func (ci *Interpreter) Routes(mux *http.ServeMux) {
	mux.HandleFunc("POST /v1/contexts", core.JSON(http.StatusCreated, ci.handleCreateContext))
	mux.HandleFunc("GET /v1/contexts", core.JSON(http.StatusOK, ci.handleListContexts))
	mux.HandleFunc("DELETE /v1/contexts/{cid}", core.JSON(http.StatusNoContent, ci.handleDeleteContext))
	mux.HandleFunc("POST /v1/code/run", core.JSON(http.StatusOK, ci.handleRunCode))
	mux.HandleFunc("POST /v1/code/run/stream", ci.handleRunCodeStream)
}

// checkLanguage normalizes a request's language ("" is python).
func checkLanguage(lang string) (string, error) {
	switch lang {
	case "", api.LanguagePython, "py", "python3":
		return api.LanguagePython, nil
	case api.LanguageJavaScript, "js", "node":
		return api.LanguageJavaScript, nil
	case api.LanguageTypeScript, "ts":
		return api.LanguageTypeScript, nil
	}
	return "", fmt.Errorf("%w: language %q: want python, javascript or typescript", errdefs.ErrInvalidArgument, lang)
}

func contextNotFound(id string) error {
	return &errdefs.CodedError{Code: api.CodeContextNotFound, Kind: errdefs.ErrNotFound, Message: fmt.Sprintf("code context %q not found", id)}
}

// createContext makes a code context with a ready executor. The context
// count includes those being created, so the cap holds under concurrency.
func (ci *Interpreter) createContext(ctx context.Context, req api.CreateCodeContextRequest, id string) (*codeContext, error) {
	lang, err := checkLanguage(req.Language)
	if err != nil {
		return nil, err
	}
	cwd := req.Cwd
	if !filepath.IsAbs(cwd) {
		cwd = filepath.Join(ci.workdir, cwd)
	}
	if fi, err := os.Stat(cwd); err != nil || !fi.IsDir() {
		return nil, fmt.Errorf("%w: cwd %q is not a directory", errdefs.ErrInvalidArgument, cwd)
	}
	for k, v := range req.EnvVars {
		if !agentapi.EnvName.MatchString(k) {
			return nil, fmt.Errorf("%w: env name %q", errdefs.ErrInvalidArgument, k)
		}
		if strings.IndexByte(v, 0) >= 0 {
			return nil, fmt.Errorf("%w: env %s: a value may not hold a NUL byte", errdefs.ErrInvalidArgument, k)
		}
	}
	ci.mu.Lock()
	if max := ci.maxContexts; len(ci.contexts)+ci.pending >= max {
		ci.mu.Unlock()
		return nil, fmt.Errorf("%w: this sandbox has at most %d code contexts (the daemon's --max-contexts); delete one first", errdefs.ErrResourceExhausted, max)
	}
	ci.pending++
	ci.mu.Unlock()
	defer func() {
		ci.mu.Lock()
		ci.pending--
		ci.mu.Unlock()
	}()
	now := time.Now().UTC()
	c := &codeContext{id: cmp.Or(id, "ctx-"+core.NewID(16)), lang: lang, cwd: cwd, env: core.CopyEnv(req.EnvVars), createdAt: now, lastUsed: now}
	e, err := ci.startExecutor(ctx, c)
	if err != nil {
		return nil, err
	}
	c.setExec(e)
	ci.mu.Lock()
	ci.contexts[c.id] = c
	ci.mu.Unlock()
	return c, nil
}

// startExecutor starts an executor for c.
func (ci *Interpreter) startExecutor(ctx context.Context, c *codeContext) (*executor, error) {
	if c.lang == api.LanguagePython {
		var e *executor
		for try := 0; ; try++ {
			z, err := ci.pythonZygote(ctx)
			if err != nil {
				return nil, err
			}
			e, err = z.fork(c.cwd, c.env)
			if errors.Is(err, errZygoteExited) && try == 0 {
				continue // it died meanwhile: once more, with a new one
			}
			if err != nil {
				return nil, err
			}
			break
		}
		if err := e.waitReady(ctx, 10*time.Second); err != nil {
			e.kill()
			return nil, fmt.Errorf("start the Python executor: %w", err)
		}
		return e, nil
	}
	e, err := ci.nodeExecutor(ctx, c.lang)
	if err != nil {
		return nil, err
	}
	if err := e.send(map[string]any{"init": map[string]any{"cwd": c.cwd, "env": c.env}}); err != nil {
		e.kill()
		return nil, fmt.Errorf("start the JavaScript executor: %w", err)
	}
	return e, nil
}

// runContext checks a run request and finds the context it names, or the
// language's default context (created on first use).
func (ci *Interpreter) runContext(ctx context.Context, req *api.RunCodeRequest) (*codeContext, string, error) {
	if req.TimeoutMs < 0 {
		return nil, "", fmt.Errorf("%w: timeoutMs must not be negative", errdefs.ErrInvalidArgument)
	}
	var lang string
	if req.Language != "" {
		var err error
		if lang, err = checkLanguage(req.Language); err != nil {
			return nil, "", err
		}
	}
	if req.ContextID != "" {
		ci.mu.Lock()
		c := ci.contexts[req.ContextID]
		ci.mu.Unlock()
		if c == nil {
			return nil, "", contextNotFound(req.ContextID)
		}
		switch {
		case lang == "":
			lang = c.lang
		case lang != c.lang && (lang == api.LanguagePython || c.lang == api.LanguagePython):
			return nil, "", fmt.Errorf("%w: context %s runs %s, not %s", errdefs.ErrInvalidArgument, c.id, c.lang, lang)
		}
		return c, lang, nil
	}
	lang = cmp.Or(lang, api.LanguagePython)
	mu := ci.defMu[lang]
	mu.Lock()
	defer mu.Unlock()
	id := "default-" + lang
	ci.mu.Lock()
	c := ci.contexts[id]
	ci.mu.Unlock()
	if c == nil {
		var err error
		if c, err = ci.createContext(ctx, api.CreateCodeContextRequest{Language: lang}, id); err != nil {
			return nil, "", err
		}
	}
	return c, lang, nil
}

// runCode runs code in c, passing its events to emit (one at a time), and
// adds the agent's own error event when the run timed out without one or
// its executor died. It returns ctx's error if the caller went away.
func (ci *Interpreter) runCode(ctx context.Context, c *codeContext, code, lang string, timeout time.Duration, emit func(api.CodeEvent)) (runOutcome, error) {
	if err := c.q.Lock(ctx); err != nil {
		return runOutcome{}, err
	}
	defer c.q.Unlock()
	c.mu.Lock()
	deleted := c.deleted
	c.lastUsed = time.Now().UTC()
	c.mu.Unlock()
	if deleted {
		return runOutcome{}, contextNotFound(c.id)
	}
	if c.exec.Load() == nil {
		e, err := ci.startExecutor(ctx, c)
		if err != nil {
			return runOutcome{}, err
		}
		c.setExec(e)
	}
	sawError := false // run passes events one at a time, and none after it returned
	out, err := c.exec.Load().run(ctx, map[string]string{"code": code, "language": lang}, timeout, func(ev api.CodeEvent) {
		sawError = sawError || ev.Type == api.EventError
		emit(ev)
	})
	if out.reset {
		c.setExec(nil) // and with it its group: what the code started
	}
	name := "Python"
	if c.lang != api.LanguagePython {
		name = "JavaScript"
	}
	switch {
	case out.crashed:
		emit(api.CodeEvent{Type: api.EventError, Name: "ExecutorExited",
			Value: fmt.Sprintf("the %s executor %s during the run; the context was reset and its state is lost", name, exitDescription(out.exitCode))})
	case out.timedOut && !sawError:
		v := fmt.Sprintf("Execution timed out after %d ms", timeout.Milliseconds())
		if out.reset {
			v += "; the run did not stop, so the context was reset and its state is lost"
		}
		emit(api.CodeEvent{Type: api.EventError, Name: "TimeoutError", Value: v})
	}
	return out, err
}

func (ci *Interpreter) handleRunCode(r *http.Request, req *api.RunCodeRequest) (*api.ExecutionResult, error) {
	c, lang, err := ci.runContext(r.Context(), req)
	if err != nil {
		return nil, err
	}
	res := api.ExecutionResult{Code: req.Code, Logs: api.Logs{Stdout: []string{}, Stderr: []string{}}, Results: []api.Result{}, ContextID: c.id}
	var kept [2]int // bytes of stdout and stderr kept
	keptResults := 0
	keep := func(logs *[]string, n *int, text string) {
		if *n+len(text) > agentapi.DefaultMaxOutputBytes {
			res.Truncated = true
			return
		}
		*n += len(text)
		*logs = append(*logs, text)
	}
	end, err := ci.runCode(r.Context(), c, req.Code, lang, time.Duration(req.TimeoutMs)*time.Millisecond, func(ev api.CodeEvent) {
		switch ev.Type {
		case api.EventStdout:
			keep(&res.Logs.Stdout, &kept[0], ev.Text)
		case api.EventStderr:
			keep(&res.Logs.Stderr, &kept[1], ev.Text)
		case api.EventResult:
			r := ev.AsResult()
			if n := resultSize(&r); keptResults+n > maxKeptResults {
				res.Truncated = true
			} else {
				keptResults += n
				res.Results = append(res.Results, r)
			}
		case api.EventError:
			if res.Error == nil {
				res.Error = &api.ExecutionError{Name: ev.Name, Value: ev.Value, Traceback: ev.Traceback}
			}
		}
	})
	if err != nil {
		return nil, err
	}
	if res.Error != nil && res.Error.Traceback == nil {
		res.Error.Traceback = []string{}
	}
	res.Success = res.Error == nil
	res.ExecutionCount, res.ContextReset = end.count, end.reset
	return &res, nil
}

// maxKeptResults bounds the bytes of results a run's answer holds (past
// it, results are dropped and the answer is truncated): a loop of
// display() calls must not grow the agent's memory without end. Streams
// are not capped.
const maxKeptResults = 64 << 20

func resultSize(r *api.Result) int {
	return len(r.Text) + len(r.HTML) + len(r.PNG) + len(r.JPEG) + len(r.SVG) + len(r.Latex) +
		len(r.Markdown) + len(r.JSON) + len(r.JavaScript)
}

// handleRunCodeStream runs code like handleRunCode and streams its events
// as they happen, ending with complete (or, if the call failed, an error
// event with a code).
func (ci *Interpreter) handleRunCodeStream(w http.ResponseWriter, r *http.Request) {
	var req api.RunCodeRequest
	if err := core.DecodeBody(w, r, &req); err != nil {
		core.WriteError(w, err)
		return
	}
	c, lang, err := ci.runContext(r.Context(), &req)
	if err != nil {
		core.WriteError(w, err)
		return
	}
	sse := core.NewSSE(w)
	defer sse.Close()
	end, err := ci.runCode(r.Context(), c, req.Code, lang, time.Duration(req.TimeoutMs)*time.Millisecond, func(ev api.CodeEvent) {
		_ = sse.SendEvents(ev.Type, ev)
	})
	if err != nil {
		_ = sse.SendEvents(api.EventError, api.CodeEvent{Type: api.EventError, Code: errdefs.Code(err), Message: err.Error()})
		return
	}
	n := end.count
	_ = sse.SendEvents(api.EventComplete, api.CodeEvent{Type: api.EventComplete, ExecutionCount: &n, ContextID: c.id, ContextReset: end.reset})
}

func (ci *Interpreter) handleCreateContext(r *http.Request, req *api.CreateCodeContextRequest) (api.CodeContext, error) {
	c, err := ci.createContext(r.Context(), *req, "")
	if err != nil {
		return api.CodeContext{}, err
	}
	return c.info(), nil
}

func (ci *Interpreter) handleListContexts(r *http.Request, _ *core.NoBody) (api.CodeContextList, error) {
	ci.mu.Lock()
	list := make([]api.CodeContext, 0, len(ci.contexts))
	for _, c := range ci.contexts {
		list = append(list, c.info())
	}
	ci.mu.Unlock()
	sort.Slice(list, func(i, j int) bool { return list[i].CreatedAt.Before(list[j].CreatedAt) })
	return api.CodeContextList{Contexts: list, Count: len(list)}, nil
}

// handleDeleteContext ends the context's executor and what its code
// started. A run in progress ends with the executor.
func (ci *Interpreter) handleDeleteContext(r *http.Request, _ *core.NoBody) (core.Status, error) {
	id := r.PathValue("cid")
	ci.mu.Lock()
	c := ci.contexts[id]
	delete(ci.contexts, id)
	ci.mu.Unlock()
	if c == nil {
		return 0, contextNotFound(id)
	}
	c.mu.Lock()
	c.deleted = true
	c.mu.Unlock()
	// Kill first: a run in progress ends with its executor, and its call
	// returns, so the queue frees up.
	if e := c.exec.Load(); e != nil {
		e.grp.Kill()
	}
	_ = c.q.Lock(context.Background()) // cannot fail: its context never ends
	c.setExec(nil)
	c.q.Unlock()
	return core.Status(http.StatusNoContent), nil
}

// setExec replaces c's executor, killing the old one. The caller holds
// c.q.
func (c *codeContext) setExec(e *executor) {
	if old := c.exec.Swap(e); old != nil && old != e {
		old.kill()
	}
}
