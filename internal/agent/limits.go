package agent

import (
	"fmt"
	"strconv"

	"github.com/sandboxd/sandboxd/api"
	"github.com/sandboxd/sandboxd/internal/errdefs"
)

// Limits bound what one sandbox's agent keeps at once. A call that would go
// past one fails with RESOURCE_EXHAUSTED (429) and a message naming the
// limit. The daemon sets them for every sandbox (its --max-processes,
// --max-sessions and --max-contexts flags) through the agent's flags of
// the same names.
type Limits struct {
	// Processes is the most background processes kept at once. Finished
	// ones count until deleted; the one that finished first is forgotten
	// to make room, so only running processes can hit the limit.
	Processes int
	// Sessions is the most sessions callers may create; the default
	// session is not counted.
	Sessions int
	// Contexts is the most code interpreter contexts at once.
	Contexts int
}

// Default limits.
const (
	DefaultMaxProcesses = 256
	DefaultMaxSessions  = 64
	DefaultMaxContexts  = api.MaxCodeContexts
)

// maxLimit bounds each limit: far more than a sandbox's memory holds, low
// enough that no count overflows.
const maxLimit = 1 << 16

// WithDefaults returns l with zero limits replaced by the defaults.
func (l Limits) WithDefaults() Limits {
	if l.Processes == 0 {
		l.Processes = DefaultMaxProcesses
	}
	if l.Sessions == 0 {
		l.Sessions = DefaultMaxSessions
	}
	if l.Contexts == 0 {
		l.Contexts = DefaultMaxContexts
	}
	return l
}

// Validate checks that each limit is 0 (the default) or 1 to 65536.
func (l Limits) Validate() error {
	for _, f := range []struct {
		name string
		v    int
	}{{"max-processes", l.Processes}, {"max-sessions", l.Sessions}, {"max-contexts", l.Contexts}} {
		if f.v < 0 || f.v > maxLimit {
			return fmt.Errorf("%s %d: want 1 to %d (0: the default)", f.name, f.v, maxLimit)
		}
	}
	return nil
}

// Args returns the agent's command-line flags that set l (the zero ones
// left out, for the agent's defaults).
func (l Limits) Args() []string {
	var args []string
	for _, f := range []struct {
		name string
		v    int
	}{{"--max-processes", l.Processes}, {"--max-sessions", l.Sessions}, {"--max-contexts", l.Contexts}} {
		if f.v > 0 {
			args = append(args, f.name+"="+strconv.Itoa(f.v))
		}
	}
	return args
}

// sessionRoomLocked tells whether one more session may be created: an
// error wrapping errdefs.ErrResourceExhausted if not. The caller holds
// a.sessions.mu.
func (a *Agent) sessionRoomLocked() error {
	n := len(a.sessions.m)
	if _, ok := a.sessions.m[api.DefaultSessionID]; ok {
		n--
	}
	if max := a.limits.WithDefaults().Sessions; n >= max {
		return fmt.Errorf("%w: this sandbox has at most %d sessions besides the default one (the daemon's --max-sessions); delete one first", errdefs.ErrResourceExhausted, max)
	}
	return nil
}
