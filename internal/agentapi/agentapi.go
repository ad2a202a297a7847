// Package agentapi is the seam between the daemon and the agent inside
// every sandbox: the protocol version, the requests the daemon sends beyond
// the public API's (package api), and the agent's limits, which the daemon
// passes on the agent's command line. Both binaries import it; neither
// imports the other (internal/policy pins that).
package agentapi

import (
	"cmp"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"

	"github.com/sandboxd/sandboxd/api"
)

// Version is the build version of sandboxd and sandbox-agent, which are
// built together; set by the linker.
var Version = "dev"

// ProtocolVersion is the version of the daemon-agent protocol. The daemon
// refuses an agent that answers GET /v1/version with another number, so a
// daemon never drives an agent it does not understand (after an upgrade, the
// sandbox restarts with the new agent instead).
const ProtocolVersion = 1

// VersionResponse is the body of the agent's GET /v1/version.
type VersionResponse struct {
	Protocol int    `json:"protocol"`
	Version  string `json:"version"`
	Pid      int    `json:"pid"`
}

// ExecRequest is the body of the agent's POST /v1/exec: the wire request plus
// what the daemon decides for the call.
type ExecRequest struct {
	api.ExecRequest
	// MaxOutputBytes caps stdout and stderr each; past it the result says
	// truncated. Zero means DefaultMaxOutputBytes.
	MaxOutputBytes int `json:"maxOutputBytes,omitempty"`
}

// DefaultMaxOutputBytes is the in-memory cap on each output stream of exec.
const DefaultMaxOutputBytes = 16 << 20

// TunnelProtocol is the Upgrade token of a tunnel request (GET
// /v1/tunnel?port=N): after the 101 answer, the connection carries the
// bytes of one TCP connection to a port inside the sandbox.
const TunnelProtocol = "tcp"

// IsUpgrade reports whether h asks to upgrade the connection to protocol
// ("websocket" for a terminal, TunnelProtocol for a tunnel): Connection:
// upgrade and Upgrade: protocol, as tokens of any case in comma-separated
// lists. The agent checks what it is sent, the daemon what it forwards.
func IsUpgrade(h http.Header, protocol string) bool {
	return headerHasToken(h, "Connection", "upgrade") && headerHasToken(h, "Upgrade", protocol)
}

// headerHasToken reports whether a comma-separated list in one of h's name
// fields holds token, in any case.
func headerHasToken(h http.Header, name, token string) bool {
	for _, v := range h.Values(name) {
		for t := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}

// Limits bound what one sandbox's agent keeps at once. A call that would go
// past one fails with RESOURCE_EXHAUSTED (429) and a message naming the
// limit. The daemon sets them for every sandbox (its --max-processes,
// --max-sessions and --max-contexts flags) through the agent's flags of
// the same names (Args).
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
	l.Processes = cmp.Or(l.Processes, DefaultMaxProcesses)
	l.Sessions = cmp.Or(l.Sessions, DefaultMaxSessions)
	l.Contexts = cmp.Or(l.Contexts, DefaultMaxContexts)
	return l
}

func (l Limits) fields() []struct {
	name string
	v    int
} {
	return []struct {
		name string
		v    int
	}{{"max-processes", l.Processes}, {"max-sessions", l.Sessions}, {"max-contexts", l.Contexts}}
}

// Validate checks that each limit is 0 (the default) or 1 to 65536.
func (l Limits) Validate() error {
	for _, f := range l.fields() {
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
	for _, f := range l.fields() {
		if f.v > 0 {
			args = append(args, "--"+f.name+"="+strconv.Itoa(f.v))
		}
	}
	return args
}

// EnvName is what a shell accepts as a variable's name: the agent takes no
// other in a session's or a command's environment, and the daemon checks
// names against it before it hands them to a running agent.
var EnvName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
