package api

import "time"

// Process statuses.
const (
	ProcessRunning   = "running"
	ProcessCompleted = "completed" // exited 0
	ProcessFailed    = "failed"    // exited non-zero
	ProcessKilled    = "killed"    // died by a signal (exit code 128+N)
)

// StartProcessRequest is the body of POST /v1/sandboxes/{id}/processes.
type StartProcessRequest struct {
	Command     string `json:"command"`
	ProcessID   string `json:"processId,omitempty"`
	SessionID   string `json:"sessionId,omitempty"`
	Cwd         string `json:"cwd,omitempty"`
	Env         Env    `json:"env,omitempty"`
	TimeoutMs   int64  `json:"timeoutMs,omitempty"`
	AutoCleanup bool   `json:"autoCleanup,omitempty"`
}

// Process describes a background process.
type Process struct {
	ID        string     `json:"id"`
	Pid       int        `json:"pid"`
	Command   string     `json:"command"`
	Status    string     `json:"status"`
	ExitCode  *int       `json:"exitCode,omitempty"`
	StartTime time.Time  `json:"startTime"`
	EndTime   *time.Time `json:"endTime,omitempty"`
	SessionID string     `json:"sessionId"`
	// CPUMs is the CPU time the process and all it started have used, in
	// milliseconds; MemoryBytes the memory they hold now. Both come from
	// the process's cgroup.
	CPUMs       int64 `json:"cpuMs"`
	MemoryBytes int64 `json:"memoryBytes"`
}

// ProcessList is the body of GET /v1/sandboxes/{id}/processes.
type ProcessList struct {
	Processes []Process `json:"processes"`
	Count     int       `json:"count"`
}

// KillAllResult is the body of DELETE /v1/sandboxes/{id}/processes.
type KillAllResult struct {
	KilledCount int `json:"killedCount"`
}

// ProcessLogs is the body of GET /v1/sandboxes/{id}/processes/{pid}/logs.
// Like ExecResult, a stream that is not valid UTF-8 (or holds NUL) comes
// base64-encoded, with its encoding field set.
type ProcessLogs struct {
	ProcessID      string `json:"processId"`
	Stdout         string `json:"stdout"`
	Stderr         string `json:"stderr"`
	StdoutEncoding string `json:"stdoutEncoding,omitempty"`
	StderrEncoding string `json:"stderrEncoding,omitempty"`
	// Truncated is set when the process wrote more than the daemon keeps.
	Truncated bool `json:"truncated,omitempty"`
}

// WaitRequest is the body of POST /v1/sandboxes/{id}/processes/{pid}/wait.
// Exactly one of Log, Port and Exit is set.
type WaitRequest struct {
	// Log waits for output matching this pattern: a plain substring, or
	// a regular expression (RE2 syntax) if Regex is set.
	Log   string `json:"log,omitempty"`
	Regex bool   `json:"regex,omitempty"`
	// Stream is where Log is looked for: "stdout", "stderr" or "both"
	// (the default).
	Stream string `json:"stream,omitempty"`
	// Port waits until something accepts connections on this port inside
	// the sandbox (PortMode "tcp", the default) or answers an HTTP GET of
	// Path with a status in Status (PortMode "http").
	Port     int    `json:"port,omitempty"`
	PortMode string `json:"portMode,omitempty"`
	Path     string `json:"path,omitempty"`
	// Status is an HTTP status or range, "200" or "200-399" (the default).
	Status string `json:"status,omitempty"`
	// Exit waits for the process to exit.
	Exit      bool  `json:"exit,omitempty"`
	TimeoutMs int64 `json:"timeoutMs,omitempty"`
}

// WaitResult is the answer of a wait that succeeded.
type WaitResult struct {
	Ready bool `json:"ready"`
	// Line is the output that matched Log.
	Line string `json:"line,omitempty"`
	// ExitCode is set for Exit.
	ExitCode *int   `json:"exitCode,omitempty"`
	Status   string `json:"status,omitempty"`
}
