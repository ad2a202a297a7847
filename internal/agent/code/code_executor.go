package code

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sandboxd/sandboxd/api"
	"github.com/sandboxd/sandboxd/internal/agent/core"
)

// An executor is one interpreter process of a code context: a Python child
// forked by the zygote (code_python.go) or a Node process (code_node.go).
// The agent writes requests to it as JSON lines on one pipe and reads its
// events, JSON lines of api.CodeEvent, from another; what the process (or a
// child of it) writes to its own stdout and stderr arrives on two more
// pipes and becomes stdout and stderr events of the run in progress.
type executor struct {
	pid   int
	grp   *core.Group   // it and all it starts
	lang  string        // the executor's kind: python or node
	req   *os.File      // requests, written by the agent
	dead  chan struct{} // closed when the process has exited
	code  int           // its exit code (128+N for signal N, -1 unknown); set before dead closes
	gone  chan struct{} // closed when the event pipe ended: the process is gone or going
	ready chan error    // the first event: nil when the executor is ready
	// typescript is set (before ready) by a Node executor that can strip
	// TypeScript types: its ready event's value says "typescript".
	typescript bool

	outs [2]*outputPipe // its stdout and stderr

	mu   sync.Mutex
	sink func(api.CodeEvent) // the run in progress; guarded by mu
}

// outputPipe is the agent's end of an executor's stdout or stderr, read by
// readOutput.
type outputPipe struct {
	f       *os.File
	flushed chan struct{} // signalled when readOutput has delivered all the pipe held at a flush
	ended   chan struct{} // closed when readOutput ends
}

// outputDrainTimeout bounds how long a run's end waits for the output its
// process wrote to its stdout and stderr before it completed.
const outputDrainTimeout = time.Second

// drainOutput waits until the output written before the run completed
// (by the executor or a child, to its stdout or stderr) has been
// delivered to the run, not to the next one. A read deadline in the past
// is the flush: readOutput, woken or not reading, takes all the pipe
// holds, delivers it, then signals.
func (e *executor) drainOutput() {
	for _, o := range e.outs {
		select {
		case <-o.flushed: // the late signal of a flush that timed out
		default:
		}
		_ = o.f.SetReadDeadline(time.Now())
	}
	deadline := time.After(outputDrainTimeout)
	for _, o := range e.outs {
		select {
		case <-o.flushed:
		case <-o.ended:
		case <-deadline:
		}
	}
}

// executorPipes are the agent's ends of a new executor's pipes, and the
// executor's ends to hand to it.
type executorPipes struct {
	reqW, evR, outR, errR *os.File // the agent's
	reqR, evW, outW, errW *os.File // the executor's
}

func newExecutorPipes() (*executorPipes, error) {
	var p executorPipes
	for _, pair := range []struct{ r, w **os.File }{{&p.reqR, &p.reqW}, {&p.evR, &p.evW}, {&p.outR, &p.outW}, {&p.errR, &p.errW}} {
		var err error
		if *pair.r, *pair.w, err = os.Pipe(); err != nil {
			p.closeAll() // those not open yet are nil: closing them is a harmless error
			return nil, fmt.Errorf("executor pipes: %w", err)
		}
	}
	return &p, nil
}

// childEnds returns the executor's ends in the order it expects them.
func (p *executorPipes) childEnds() []*os.File { return []*os.File{p.reqR, p.evW, p.outW, p.errW} }

// closeChild closes the executor's ends in the agent, once it has them.
func (p *executorPipes) closeChild() {
	for _, f := range p.childEnds() {
		f.Close()
	}
}

func (p *executorPipes) closeAll() {
	for _, f := range []*os.File{p.reqW, p.evR, p.outR, p.errR, p.reqR, p.evW, p.outW, p.errW} {
		f.Close()
	}
}

// spawn starts an interpreter, argv, in a new group of kind: in /, with the
// agent's environment, in a session of its own, with files as its
// descriptors (nil ones /dev/null). Its exit code will come on the channel.
func (ci *Interpreter) spawn(kind string, argv []string, files ...*os.File) (int, *core.Group, <-chan int, error) {
	devnull, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		return 0, nil, nil, err
	}
	defer devnull.Close()
	for i, f := range files {
		if f == nil {
			files[i] = devnull
		}
	}
	grp, err := ci.reaper.Cgroups().New(kind, nil)
	if err != nil {
		return 0, nil, nil, err
	}
	proc, exited, err := ci.reaper.Start(grp, argv[0], argv, &os.ProcAttr{
		Dir: "/", Env: os.Environ(), Files: files, Sys: &unix.SysProcAttr{Setsid: true},
	})
	if err != nil {
		grp.Remove()
		return 0, nil, nil, core.StartError(err)
	}
	// The pid is read first: Release sets proc.Pid to -1, and a pid of -1
	// given to kill(2) means every process.
	pid := proc.Pid
	codes := make(chan int, 1)
	go func() {
		codes <- core.ExitCode(<-exited)
		proc.Release()
	}()
	return pid, grp, codes, nil
}

// maxCodeEvent bounds one event line of an executor (a large figure); a
// longer one is dropped, with a note on stderr. It stays under the SDK's
// bound on one SSE event (16 MiB), so that a stream never carries an event
// its client cannot read. Output text comes in events of at most 1 MiB.
const maxCodeEvent = 15 << 20

// newExecutor starts reading the pipes of a started executor process.
// exited delivers the process's exit code.
func newExecutor(lang string, pid int, grp *core.Group, p *executorPipes, exited <-chan int) *executor {
	e := &executor{pid: pid, grp: grp, lang: lang, req: p.reqW, dead: make(chan struct{}), gone: make(chan struct{}),
		ready: make(chan error, 1)}
	go func() {
		e.code = <-exited
		close(e.dead)
	}()
	go e.readEvents(p.evR)
	for i, f := range []*os.File{p.outR, p.errR} {
		e.outs[i] = &outputPipe{f: f, flushed: make(chan struct{}, 1), ended: make(chan struct{})}
	}
	go e.readOutput(e.outs[0], api.EventStdout)
	go e.readOutput(e.outs[1], api.EventStderr)
	return e
}

// readEvents reads the event pipe until it ends. The first event says the
// executor is ready; the others go to the run in progress.
func (e *executor) readEvents(f *os.File) {
	defer f.Close()
	defer close(e.gone)
	r := bufio.NewReaderSize(f, 64<<10)
	first := true
	for {
		line, err := readLine(r, maxCodeEvent)
		if err != nil {
			if first {
				e.ready <- fmt.Errorf("the %s executor exited while starting", e.lang)
			}
			return
		}
		if line == nil && !first {
			e.deliver(api.CodeEvent{Type: api.EventStderr, Result: api.Result{Text: fmt.Sprintf("[sandbox: an output over %d MiB was dropped]\n", maxCodeEvent>>20)}})
			continue
		}
		var ev api.CodeEvent
		if json.Unmarshal(line, &ev) != nil || ev.Type == "" {
			continue
		}
		if first {
			first = false
			if ev.Type == "ready" {
				e.typescript = ev.Value == api.LanguageTypeScript
				e.ready <- nil
			} else {
				e.ready <- fmt.Errorf("the %s executor did not start: %s", e.lang, ev.Value)
			}
			continue
		}
		// What the executor may say (its code can write to the pipe
		// too): never a call's error code or the agent's own fields.
		switch ev.Type {
		case api.EventStdout, api.EventStderr, api.EventResult, api.EventError, api.EventComplete:
		default:
			continue // "initialized" and the like
		}
		ev.Code, ev.Message, ev.ContextID, ev.ContextReset = "", "", "", false
		if ev.Type == api.EventError && ev.Name == "" {
			ev.Name = "Error"
		}
		e.deliver(ev)
	}
}

// readLine reads one line of at most max bytes (a longer one is skipped).
func readLine(r *bufio.Reader, max int) ([]byte, error) {
	var line []byte
	over := false
	for {
		chunk, err := r.ReadSlice('\n')
		if over = over || len(line)+len(chunk) > max+1; !over {
			line = append(line, chunk...)
		}
		switch {
		case err == bufio.ErrBufferFull: // more of the line to come
		case err != nil:
			return nil, err
		case over:
			return nil, nil
		default:
			return bytes.TrimSuffix(line, []byte("\n")), nil
		}
	}
}

// readOutput turns what the process writes to its stdout or stderr into
// events of the run in progress (dropped between runs). At a flush
// (drainOutput) it takes what the pipe holds without waiting.
func (e *executor) readOutput(o *outputPipe, stream string) {
	defer close(o.ended)
	defer o.f.Close()
	var tail []byte // an incomplete UTF-8 sequence held back
	deliver := func(p []byte) {
		b := append(tail, p...)
		tail = nil
		if cut := core.IncompleteTail(b); cut > 0 {
			tail = append([]byte(nil), b[len(b)-cut:]...)
			b = b[:len(b)-cut]
		}
		if len(b) > 0 {
			e.deliver(api.CodeEvent{Type: stream, Result: api.Result{Text: string(bytes.ToValidUTF8(b, []byte("\uFFFD")))}})
		}
	}
	buf := make([]byte, 32<<10)
	for {
		n, err := o.f.Read(buf)
		deliver(buf[:n])
		if errors.Is(err, os.ErrDeadlineExceeded) {
			core.ReadNow(o.f, deliver) // and clears the deadline
			select {
			case o.flushed <- struct{}{}:
			default:
			}
		} else if err != nil {
			return
		}
	}
}

func (e *executor) deliver(ev api.CodeEvent) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.sink != nil {
		e.sink(ev)
	}
}

// waitReady waits for the executor's first event.
func (e *executor) waitReady(ctx context.Context, timeout time.Duration) error {
	select {
	case err := <-e.ready:
		return err
	case <-e.dead:
		return fmt.Errorf("the %s executor %s while starting", e.lang, exitDescription(e.code))
	case <-time.After(timeout):
		return fmt.Errorf("the %s executor did not start within %s", e.lang, timeout)
	case <-ctx.Done():
		return ctx.Err()
	}
}

// send writes one request, a JSON line (in one write).
func (e *executor) send(v any) error { return json.NewEncoder(e.req).Encode(v) }

// interruptGrace is how long an interrupted run may take to stop before its
// executor is killed (and the context reset).
const interruptGrace = 2 * time.Second

// runOutcome is how a run ended.
type runOutcome struct {
	count    int  // the run's execution count
	timedOut bool // the timeout interrupted it
	crashed  bool // the executor died during the run
	reset    bool // the executor is gone: the context must start afresh
	exitCode int  // the executor's exit code, when crashed
}

// run sends code to the executor and passes its events to sink (from
// other goroutines, one at a time) until the run completes. A timeout
// (zero: none), or ctx ending, interrupts the run with SIGINT; one that
// does not stop within interruptGrace gets the executor killed. The caller
// holds the context's queue.
func (e *executor) run(ctx context.Context, req any, timeout time.Duration, sink func(api.CodeEvent)) (runOutcome, error) {
	complete := make(chan int, 1)
	var timedOut atomic.Bool
	e.mu.Lock()
	e.sink = func(ev api.CodeEvent) {
		if ev.Type == api.EventError && timedOut.Load() {
			// The interrupt's KeyboardInterrupt: say why it came.
			ev.Name, ev.Value = "TimeoutError", fmt.Sprintf("Execution timed out after %d ms", timeout.Milliseconds())
		}
		if ev.Type == api.EventComplete {
			n := 0
			if ev.ExecutionCount != nil {
				n = *ev.ExecutionCount
			}
			select {
			case complete <- n:
			default:
			}
			return
		}
		sink(ev)
	}
	e.mu.Unlock()
	defer func() {
		e.mu.Lock()
		e.sink = nil
		e.mu.Unlock()
	}()
	var out runOutcome
	if err := e.send(req); err != nil {
		out.crashed, out.reset, out.exitCode = true, true, e.waitExit()
		return out, nil
	}
	// Until the run is interrupted: timer, ctx; after: tick, deadline.
	var timer, tick, deadline <-chan time.Time
	if timeout > 0 {
		timer = time.After(timeout)
	}
	done := ctx.Done()
	var cause error
	for {
		select {
		case out.count = <-complete:
			e.drainOutput()
			return out, cause
		case <-e.gone:
			out.crashed, out.reset, out.exitCode = deadline == nil, true, e.waitExit()
			return out, cause
		case <-e.dead:
			// A child of the code may hold the event pipe open: take what is
			// in it, without waiting for its end.
			select {
			case <-e.gone:
			case <-time.After(core.DrainGrace):
			}
			out.crashed, out.reset, out.exitCode = deadline == nil, true, e.code
			return out, cause
		case <-timer:
			out.timedOut = true
			timedOut.Store(true)
		case <-done:
			cause = ctx.Err()
		case <-tick:
			// Python code may catch one KeyboardInterrupt; Node's V8
			// would carry a second interrupt into the next run.
			if e.lang == api.LanguagePython {
				_ = unix.Kill(e.pid, unix.SIGINT)
			}
			continue
		case <-deadline:
			e.kill()
			out.reset = true
			return out, cause
		}
		// Interrupt: SIGINT, again now and then, until the run completes.
		timer, done = nil, nil
		deadline = time.After(interruptGrace)
		ticker := time.NewTicker(200 * time.Millisecond)
		defer ticker.Stop()
		tick = ticker.C
		_ = unix.Kill(e.pid, unix.SIGINT)
	}
}

// waitExit waits (briefly) for the process's exit code; -1 if unknown.
func (e *executor) waitExit() int {
	select {
	case <-e.dead:
		return e.code
	case <-time.After(2 * time.Second):
		return -1
	}
}

// kill ends the executor and what it started (its group), and waits for
// it to go.
func (e *executor) kill() {
	e.req.Close()
	e.grp.Kill()
	e.waitExit()
}

// exitDescription says how an executor ended, for error messages.
func exitDescription(code int) string {
	switch {
	case code < 0:
		return "exited"
	case code > 128 && code < 128+65:
		return fmt.Sprintf("was killed by signal %d (%s)", code-128, unix.SignalName(unix.Signal(code-128)))
	default:
		return fmt.Sprintf("exited with code %d", code)
	}
}
