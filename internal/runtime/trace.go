package runtime

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// A StartTrace records where a container start goes, phase by phase: each
// phase's wall time and the CPU time spent in it. The manager makes one
// per start and hands it down in the context (WithStartTrace); the
// backend marks its own phases (Mark) as it goes, and the manager reports
// them (/metrics, the start's log line; docs/BENCHMARKS.md, Where a
// start goes).
//
// A phase's CPU is the daemon process's own (all its threads) and that of
// its children it waited for in the phase (runc, mkfs), plus, where the
// backend reports it (ContainerCPU), what the container's cgroup used. The
// daemon's share is exact only while one start runs at a time: under a
// burst, every phase is charged with whatever the whole daemon did
// meanwhile, so only wall times mean anything there.
//
// A nil *StartTrace ignores every call, so code that marks phases needs no
// check.
type StartTrace struct {
	mu        sync.Mutex
	last      time.Time     // end of the last phase
	lastCPU   time.Duration // the daemon's CPU at last
	container time.Duration // container CPU charged so far
	phases    []Phase
}

// A Phase is one step of a start.
type Phase struct {
	Name string
	Wall time.Duration
	CPU  time.Duration
}

// NewStartTrace returns a trace whose first phase begins now.
func NewStartTrace() *StartTrace {
	return &StartTrace{last: time.Now(), lastCPU: ProcessCPU()}
}

type traceKey struct{}

// WithStartTrace returns ctx carrying t.
func WithStartTrace(ctx context.Context, t *StartTrace) context.Context {
	return context.WithValue(ctx, traceKey{}, t)
}

// TraceFrom returns the trace ctx carries, or nil.
func TraceFrom(ctx context.Context) *StartTrace {
	t, _ := ctx.Value(traceKey{}).(*StartTrace)
	return t
}

// Mark ends the current phase, naming it, and begins the next. Marking a
// name twice adds to the phase.
func (t *StartTrace) Mark(name string) {
	if t == nil {
		return
	}
	now, cpu := time.Now(), ProcessCPU()
	t.mu.Lock()
	defer t.mu.Unlock()
	t.add(name, now.Sub(t.last), cpu-t.lastCPU)
	t.last, t.lastCPU = now, cpu
}

// ContainerCPU charges phase name with the container's CPU since the last
// call: total is all its cgroup has used so far.
func (t *StartTrace) ContainerCPU(name string, total time.Duration) {
	if t == nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if total <= t.container {
		return
	}
	t.add(name, 0, total-t.container)
	t.container = total
}

// add adds to phase name; t.mu is held.
func (t *StartTrace) add(name string, wall, cpu time.Duration) {
	for i := range t.phases {
		if t.phases[i].Name == name {
			t.phases[i].Wall += wall
			t.phases[i].CPU += max(cpu, 0)
			return
		}
	}
	t.phases = append(t.phases, Phase{Name: name, Wall: wall, CPU: max(cpu, 0)})
}

// Phases returns the phases so far, in the order they first ended.
func (t *StartTrace) Phases() []Phase {
	if t == nil {
		return nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]Phase(nil), t.phases...)
}

// String lists the phases as "name=wall/cpu" in milliseconds, for logs.
func (t *StartTrace) String() string {
	var b strings.Builder
	for i, p := range t.Phases() {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(p.Name)
		b.WriteByte('=')
		b.WriteString(strconv.FormatFloat(float64(p.Wall.Microseconds())/1000, 'f', 1, 64))
		b.WriteByte('/')
		b.WriteString(strconv.FormatFloat(float64(p.CPU.Microseconds())/1000, 'f', 1, 64))
	}
	return b.String()
}

// ProcessCPU is this process's user and system time plus that of its
// children it has waited for.
func ProcessCPU() time.Duration {
	var self, children unix.Rusage
	_ = unix.Getrusage(unix.RUSAGE_SELF, &self)
	_ = unix.Getrusage(unix.RUSAGE_CHILDREN, &children)
	return time.Duration(self.Utime.Nano() + self.Stime.Nano() + children.Utime.Nano() + children.Stime.Nano())
}
