package api

import (
	"encoding/json"
	"time"
)

// DefaultSessionID names the session every sandbox has.
const DefaultSessionID = "default"

// HeaderSessionID selects a session when the body does not.
const HeaderSessionID = "X-Session-Id"

// CreateSessionRequest is the body of POST /v1/sandboxes/{id}/sessions.
type CreateSessionRequest struct {
	ID               string `json:"id,omitempty"`
	Env              Env    `json:"env,omitempty"`
	Cwd              string `json:"cwd,omitempty"`
	CommandTimeoutMs int64  `json:"commandTimeoutMs,omitempty"`
}

// Session describes a session: one long-lived shell whose state (current
// directory, exported variables, functions) carries from call to call.
type Session struct {
	ID               string            `json:"id"`
	Cwd              string            `json:"cwd"`
	Env              map[string]string `json:"env,omitempty"`
	CommandTimeoutMs int64             `json:"commandTimeoutMs,omitempty"`
	CreatedAt        time.Time         `json:"createdAt"`
}

// SessionList is the body of GET /v1/sandboxes/{id}/sessions.
type SessionList struct {
	Sessions []Session `json:"sessions"`
	Count    int       `json:"count"`
}

// SetEnvRequest is the body of POST /v1/sandboxes/{id}/env. A nil value
// unsets the variable.
type SetEnvRequest struct {
	EnvVars   map[string]*string `json:"envVars"`
	SessionID string             `json:"sessionId,omitempty"`
}

// Stream event types of execStream (and of process log streams).
const (
	EventStart    = "start"
	EventStdout   = "stdout"
	EventStderr   = "stderr"
	EventComplete = "complete"
	EventError    = "error"
	EventExit     = "exit"
)

// StreamEvent is the data of one Server-Sent Event of
// POST /v1/sandboxes/{id}/exec/stream and of
// GET /v1/sandboxes/{id}/processes/{pid}/logs/stream. Type repeats the
// event's name; the other fields depend on it:
//
//	start    Command, Pid, SessionID
//	stdout   Data (Encoding "base64" when the chunk is not valid UTF-8)
//	stderr   Data, Encoding
//	complete ExitCode, DurationMs (execStream's end)
//	exit     ExitCode, Status (a process log stream's end)
//	error    Code, Message (the end of a stream that failed)
type StreamEvent struct {
	Type       string `json:"type"`
	Data       string `json:"data,omitempty"`
	Encoding   string `json:"encoding,omitempty"`
	Command    string `json:"command,omitempty"`
	Pid        int    `json:"pid,omitempty"`
	SessionID  string `json:"sessionId,omitempty"`
	ExitCode   *int   `json:"exitCode,omitempty"`
	DurationMs int64  `json:"durationMs,omitempty"`
	Status     string `json:"status,omitempty"`
	Code       string `json:"code,omitempty"`
	Message    string `json:"message,omitempty"`
}

// Env is the environment variables a request sets. In JSON, a variable
// whose value is null is left out, as if absent (as Cloudflare's SDK does),
// not set to the empty string.
type Env map[string]string

// UnmarshalJSON implements json.Unmarshaler, dropping null values.
func (e *Env) UnmarshalJSON(b []byte) error {
	var m map[string]*string
	if err := json.Unmarshal(b, &m); err != nil {
		return err
	}
	if m == nil {
		*e = nil
		return nil
	}
	out := make(Env, len(m))
	for k, v := range m {
		if v != nil {
			out[k] = *v
		}
	}
	*e = out
	return nil
}
