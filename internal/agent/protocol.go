package agent

import "github.com/sandboxd/sandboxd/api"

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
