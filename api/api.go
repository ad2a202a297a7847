// Package api holds the wire types of the Sandboxd HTTP API, version 1: the
// request and response bodies of every call and the error codes. The daemon,
// the Go SDK and the CLI all use these types, so the JSON on the wire has one
// definition. The contract itself is described in docs/API.md.
package api

import (
	"encoding/base64"
	"time"
)

// Sandbox statuses.
const (
	StatusCreating = "creating"
	StatusRunning  = "running"
	StatusSleeping = "sleeping"
	StatusStopped  = "stopped"
)

// Network modes.
const (
	NetworkNone   = "none"
	NetworkBridge = "bridge"
)

// Resources are a sandbox's cgroup limits. Zero fields take the daemon's
// defaults (1 CPU, 1024 MiB of memory, 512 processes).
type Resources struct {
	CPUs     float64 `json:"cpus,omitempty"`
	MemoryMB int64   `json:"memoryMB,omitempty"`
	Pids     int64   `json:"pids,omitempty"`
	DiskMB   int64   `json:"diskMB,omitempty"`
}

// CreateSandboxRequest is the body of PUT /v1/sandboxes/{id}.
type CreateSandboxRequest struct {
	Image      string            `json:"image,omitempty"`
	Env        Env               `json:"env,omitempty"`
	Cwd        string            `json:"cwd,omitempty"`
	SleepAfter string            `json:"sleepAfter,omitempty"`
	KeepAlive  bool              `json:"keepAlive,omitempty"`
	Resources  *Resources        `json:"resources,omitempty"`
	Network    string            `json:"network,omitempty"`
	Labels     map[string]string `json:"labels,omitempty"`
}

// UpdateSandboxRequest is the body of PATCH /v1/sandboxes/{id}. Nil fields
// are left unchanged.
type UpdateSandboxRequest struct {
	SleepAfter *string            `json:"sleepAfter,omitempty"`
	KeepAlive  *bool              `json:"keepAlive,omitempty"`
	Labels     *map[string]string `json:"labels,omitempty"`
}

// Sandbox describes one sandbox.
type Sandbox struct {
	ID           string            `json:"id"`
	Status       string            `json:"status"`
	Image        string            `json:"image"`
	CreatedAt    time.Time         `json:"createdAt"`
	LastActiveAt time.Time         `json:"lastActiveAt"`
	SleepAfter   string            `json:"sleepAfter"`
	KeepAlive    bool              `json:"keepAlive"`
	Resources    Resources         `json:"resources"`
	Network      string            `json:"network"`
	Cwd          string            `json:"cwd"`
	Env          map[string]string `json:"env,omitempty"`
	Labels       map[string]string `json:"labels"`
	// Usage is what the sandbox uses now: only in GET
	// /v1/sandboxes/{id} (and the create's answer) of a running sandbox.
	Usage *SandboxUsage `json:"usage,omitempty"`
}

// SandboxUsage is what a running sandbox uses, read from its cgroups and
// its disk when asked: the CPU time its processes have used since it
// (last) started, the memory charged to it (page cache included), its
// processes and threads, and the space used on its disk quota
// (resources.diskMB; absent for a sandbox without one).
type SandboxUsage struct {
	CPUMs       int64 `json:"cpuMs"`
	MemoryBytes int64 `json:"memoryBytes"`
	Pids        int64 `json:"pids"`
	DiskBytes   int64 `json:"diskBytes,omitempty"`
}

// SandboxList is the body of GET /v1/sandboxes.
type SandboxList struct {
	Sandboxes []Sandbox `json:"sandboxes"`
	Count     int       `json:"count"`
}

// ExecRequest is the body of POST /v1/sandboxes/{id}/exec.
type ExecRequest struct {
	Command   string  `json:"command"`
	SessionID string  `json:"sessionId,omitempty"`
	TimeoutMs int64   `json:"timeoutMs,omitempty"`
	Env       Env     `json:"env,omitempty"`
	Cwd       string  `json:"cwd,omitempty"`
	Stdin     *string `json:"stdin,omitempty"`
	// StdinEncoding is "base64" when Stdin is base64 text of the bytes
	// to send (input that is not UTF-8); empty: Stdin is the text.
	StdinEncoding string `json:"stdinEncoding,omitempty"`
}

// EncodingBase64 marks output sent base64-encoded.
const EncodingBase64 = "base64"

// ExecResult is the response of POST /v1/sandboxes/{id}/exec. Output that
// is not valid UTF-8, or holds NUL bytes, is sent base64-encoded with
// StdoutEncoding or StderrEncoding set to "base64", so that it arrives byte
// for byte.
type ExecResult struct {
	Success        bool   `json:"success"`
	ExitCode       int    `json:"exitCode"`
	Stdout         string `json:"stdout"`
	Stderr         string `json:"stderr"`
	StdoutEncoding string `json:"stdoutEncoding,omitempty"`
	StderrEncoding string `json:"stderrEncoding,omitempty"`
	Command        string `json:"command"`
	DurationMs     int64  `json:"durationMs"`
	SessionID      string `json:"sessionId"`
	Truncated      bool   `json:"truncated,omitempty"`
}

// Error is the body of every error response.
type Error struct {
	Code       string         `json:"code"`
	Message    string         `json:"message"`
	HTTPStatus int            `json:"httpStatus"`
	Details    map[string]any `json:"details,omitempty"`
}

// Error codes, with the HTTP status each is sent with.
const (
	CodeValidationFailed     = "VALIDATION_FAILED"        // 400
	CodeIsDirectory          = "IS_DIRECTORY"             // 400
	CodeNotDirectory         = "NOT_DIRECTORY"            // 400
	CodeInvalidPort          = "INVALID_PORT"             // 400
	CodeUnauthorized         = "UNAUTHORIZED"             // 401
	CodeGitAuthFailed        = "GIT_AUTH_FAILED"          // 401
	CodePermissionDenied     = "PERMISSION_DENIED"        // 403
	CodeSandboxNotFound      = "SANDBOX_NOT_FOUND"        // 404
	CodeFileNotFound         = "FILE_NOT_FOUND"           // 404
	CodeProcessNotFound      = "PROCESS_NOT_FOUND"        // 404
	CodeSessionNotFound      = "SESSION_NOT_FOUND"        // 404
	CodeContextNotFound      = "CONTEXT_NOT_FOUND"        // 404
	CodePortNotExposed       = "PORT_NOT_EXPOSED"         // 404
	CodeGitRepoNotFound      = "GIT_REPOSITORY_NOT_FOUND" // 404
	CodeGitBranchNotFound    = "GIT_BRANCH_NOT_FOUND"     // 404
	CodeInvalidToken         = "INVALID_TOKEN"            // 404
	CodeNotFound             = "NOT_FOUND"                // 404 (unknown route)
	CodeMethodNotAllowed     = "METHOD_NOT_ALLOWED"       // 405
	CodeTimeout              = "TIMEOUT"                  // 408
	CodeFileExists           = "FILE_EXISTS"              // 409
	CodeSessionExists        = "SESSION_ALREADY_EXISTS"   // 409
	CodePortAlreadyExposed   = "PORT_ALREADY_EXPOSED"     // 409
	CodeProcessExists        = "PROCESS_ALREADY_EXISTS"   // 409
	CodeProcessExited        = "PROCESS_EXITED"           // 409: a wait whose process exited first
	CodeOptionsConflict      = "SANDBOX_OPTIONS_CONFLICT" // 409: a create of an existing sandbox asks for options it cannot take
	CodeSessionTerminated    = "SESSION_TERMINATED"       // 410
	CodeStalePreviewURL      = "STALE_PREVIEW_URL"        // 410
	CodeFileTooLarge         = "FILE_TOO_LARGE"           // 413
	CodePayloadTooLarge      = "PAYLOAD_TOO_LARGE"        // 413
	CodeUpgradeRequired      = "UPGRADE_REQUIRED"         // 426: a WebSocket route (terminal) got a plain request
	CodeResourceExhausted    = "RESOURCE_EXHAUSTED"       // 429
	CodeLanguageNotAvailable = "LANGUAGE_NOT_AVAILABLE"   // 501
	CodePortNotListening     = "PORT_NOT_LISTENING"       // 502: a preview request found nothing listening on the port
	CodeBadGateway           = "BAD_GATEWAY"              // 502: the service behind a preview URL failed
	CodeSandboxUnavailable   = "SANDBOX_UNAVAILABLE"      // 503
	CodeInternal             = "INTERNAL_ERROR"           // 500
)

// Health is the body of GET /healthz.
type Health struct {
	Status  string `json:"status"`
	Version string `json:"version"`
}

// Output returns the bytes of one output field and its encoding field
// ("" or "base64"), as sent in an ExecResult.
func Output(s, encoding string) ([]byte, error) {
	if encoding == EncodingBase64 {
		return base64.StdEncoding.DecodeString(s)
	}
	return []byte(s), nil
}

// statuses maps wire codes to HTTP statuses.
var statuses = map[string]int{
	CodeValidationFailed: 400, CodeIsDirectory: 400, CodeNotDirectory: 400, CodeInvalidPort: 400,
	CodeUnauthorized: 401, CodeGitAuthFailed: 401,
	CodePermissionDenied: 403,
	CodeSandboxNotFound:  404, CodeFileNotFound: 404, CodeProcessNotFound: 404, CodeSessionNotFound: 404,
	CodeContextNotFound: 404, CodePortNotExposed: 404, CodeGitRepoNotFound: 404,
	CodeGitBranchNotFound: 404, CodeInvalidToken: 404, CodeNotFound: 404,
	CodeMethodNotAllowed: 405,
	CodeTimeout:          408,
	CodeFileExists:       409, CodeSessionExists: 409, CodePortAlreadyExposed: 409, CodeProcessExists: 409, CodeProcessExited: 409, CodeOptionsConflict: 409,
	CodeSessionTerminated: 410, CodeStalePreviewURL: 410,
	CodeFileTooLarge: 413, CodePayloadTooLarge: 413,
	CodeUpgradeRequired:      426,
	CodeResourceExhausted:    429,
	CodeLanguageNotAvailable: 501,
	CodePortNotListening:     502,
	CodeBadGateway:           502,
	CodeSandboxUnavailable:   503,
}

// HTTPStatus returns the HTTP status that goes with a wire code: the one
// in the table above, 500 for codes not in it.
func HTTPStatus(code string) int {
	if s, ok := statuses[code]; ok {
		return s
	}
	return 500
}
