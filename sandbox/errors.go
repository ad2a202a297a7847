package sandbox

import (
	"cmp"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/sandboxd/sandboxd/api"
)

// Error is an error reported by the daemon: the body of a non-2xx response.
// It matches the sentinel of its code under [errors.Is], so
// errors.Is(err, ErrFileNotFound) holds for an *Error with Code
// "FILE_NOT_FOUND".
type Error struct {
	// Code is the wire error code, one of the api.Code* constants. A response
	// whose body is not a wire error gets a code derived from its status.
	Code string
	// Message is the daemon's human-readable explanation.
	Message string
	// HTTPStatus is the status of the response, or 0 for an error the SDK
	// found before sending a request or one reported by a stream's "error"
	// event.
	HTTPStatus int
	// Details holds code-specific data, such as "exitCode" for
	// SESSION_TERMINATED.
	Details map[string]any
	// RetryAfter is how long the daemon asked the caller to wait before trying
	// again (its Retry-After header), or 0 if it did not say.
	RetryAfter time.Duration
}

// Error returns the message followed by the code in parentheses.
func (e *Error) Error() string {
	return e.Message + " (" + e.Code + ")"
}

// Is reports whether target is the sentinel error of e's code.
func (e *Error) Is(target error) bool {
	s, ok := target.(*codeError)
	return ok && s.code == e.Code
}

// ExitCode returns the exit code an error carries in Details["exitCode"]:
// that of the shell of a SESSION_TERMINATED error, or that of a process that
// exited before a wait was satisfied. ok is false if there is none.
func (e *Error) ExitCode() (code int, ok bool) {
	switch v := e.Details["exitCode"].(type) {
	case float64: // from a JSON body
		if v == float64(int(v)) {
			return int(v), true
		}
	case int: // from a stream's error event
		return v, true
	}
	return 0, false
}

// codeError is the type of the sentinel errors: each stands for one wire
// error code.
type codeError struct{ code, text string }

func (s *codeError) Error() string { return s.text }

// Sentinel errors, one per wire error code, with the HTTP status each is sent
// with. An [*Error] matches the sentinel of its code under [errors.Is].
var (
	ErrValidation           error = &codeError{api.CodeValidationFailed, "validation failed"}                   // 400
	ErrIsDirectory          error = &codeError{api.CodeIsDirectory, "is a directory"}                           // 400
	ErrNotDirectory         error = &codeError{api.CodeNotDirectory, "not a directory"}                         // 400
	ErrInvalidPort          error = &codeError{api.CodeInvalidPort, "invalid port"}                             // 400
	ErrUnauthorized         error = &codeError{api.CodeUnauthorized, "unauthorized"}                            // 401
	ErrGitAuthFailed        error = &codeError{api.CodeGitAuthFailed, "git authentication failed"}              // 401
	ErrPermissionDenied     error = &codeError{api.CodePermissionDenied, "permission denied"}                   // 403
	ErrSandboxNotFound      error = &codeError{api.CodeSandboxNotFound, "sandbox not found"}                    // 404
	ErrFileNotFound         error = &codeError{api.CodeFileNotFound, "file not found"}                          // 404
	ErrProcessNotFound      error = &codeError{api.CodeProcessNotFound, "process not found"}                    // 404
	ErrSessionNotFound      error = &codeError{api.CodeSessionNotFound, "session not found"}                    // 404
	ErrContextNotFound      error = &codeError{api.CodeContextNotFound, "code context not found"}               // 404
	ErrPortNotExposed       error = &codeError{api.CodePortNotExposed, "port not exposed"}                      // 404
	ErrGitRepoNotFound      error = &codeError{api.CodeGitRepoNotFound, "git repository not found"}             // 404
	ErrGitBranchNotFound    error = &codeError{api.CodeGitBranchNotFound, "git branch not found"}               // 404
	ErrInvalidToken         error = &codeError{api.CodeInvalidToken, "invalid preview token"}                   // 404
	ErrNotFound             error = &codeError{api.CodeNotFound, "not found"}                                   // 404
	ErrMethodNotAllowed     error = &codeError{api.CodeMethodNotAllowed, "method not allowed"}                  // 405
	ErrTimeout              error = &codeError{api.CodeTimeout, "timed out"}                                    // 408
	ErrFileExists           error = &codeError{api.CodeFileExists, "file exists"}                               // 409
	ErrSessionExists        error = &codeError{api.CodeSessionExists, "session already exists"}                 // 409
	ErrPortAlreadyExposed   error = &codeError{api.CodePortAlreadyExposed, "port already exposed"}              // 409
	ErrProcessExists        error = &codeError{api.CodeProcessExists, "process already exists"}                 // 409
	ErrProcessExited        error = &codeError{api.CodeProcessExited, "process exited before the wait was met"} // 409
	ErrOptionsConflict      error = &codeError{api.CodeOptionsConflict, "sandbox exists with other options"}    // 409
	ErrSessionTerminated    error = &codeError{api.CodeSessionTerminated, "session terminated"}                 // 410
	ErrStalePreviewURL      error = &codeError{api.CodeStalePreviewURL, "stale preview url"}                    // 410
	ErrFileTooLarge         error = &codeError{api.CodeFileTooLarge, "file too large"}                          // 413
	ErrPayloadTooLarge      error = &codeError{api.CodePayloadTooLarge, "payload too large"}                    // 413
	ErrUpgradeRequired      error = &codeError{api.CodeUpgradeRequired, "websocket upgrade required"}           // 426
	ErrResourceExhausted    error = &codeError{api.CodeResourceExhausted, "resource exhausted"}                 // 429
	ErrInternal             error = &codeError{api.CodeInternal, "internal error"}                              // 500
	ErrLanguageNotAvailable error = &codeError{api.CodeLanguageNotAvailable, "language not available"}          // 501
	ErrPortNotListening     error = &codeError{api.CodePortNotListening, "nothing listening on the port"}       // 502
	ErrBadGateway           error = &codeError{api.CodeBadGateway, "bad gateway"}                               // 502
	ErrUnavailable          error = &codeError{api.CodeSandboxUnavailable, "sandbox unavailable"}               // 503
)

// IsRetryable reports whether err says the sandbox was briefly unavailable
// (SANDBOX_UNAVAILABLE, 503), so the same call may succeed if made again after
// [Error.RetryAfter].
func IsRetryable(err error) bool {
	return errors.Is(err, ErrUnavailable)
}

// statusCodes gives the code of an error response whose body is not a wire
// error, such as one from a proxy in front of the daemon.
var statusCodes = map[int]string{
	http.StatusBadRequest:            api.CodeValidationFailed,
	http.StatusUnauthorized:          api.CodeUnauthorized,
	http.StatusForbidden:             api.CodePermissionDenied,
	http.StatusNotFound:              api.CodeNotFound,
	http.StatusMethodNotAllowed:      api.CodeMethodNotAllowed,
	http.StatusRequestTimeout:        api.CodeTimeout,
	http.StatusRequestEntityTooLarge: api.CodePayloadTooLarge,
	http.StatusUpgradeRequired:       api.CodeUpgradeRequired,
	http.StatusTooManyRequests:       api.CodeResourceExhausted,
	http.StatusServiceUnavailable:    api.CodeSandboxUnavailable,
}

// maxErrorBody bounds how much of an error response is read.
const maxErrorBody = 64 << 10

// errorFromResponse reads the error that a non-2xx response carries.
func errorFromResponse(resp *http.Response) *Error {
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	e := &Error{
		HTTPStatus: resp.StatusCode,
		RetryAfter: parseRetryAfter(resp.Header.Get("Retry-After"), time.Now()),
	}
	var wire api.Error
	if json.Unmarshal(body, &wire) == nil && wire.Code != "" {
		e.Code, e.Message, e.Details = wire.Code, wire.Message, wire.Details
	} else {
		e.Code, e.Message = cmp.Or(statusCodes[resp.StatusCode], api.CodeInternal), strings.TrimSpace(string(body))
	}
	e.Message = cmp.Or(e.Message, http.StatusText(resp.StatusCode))
	return e
}

// parseRetryAfter reads a Retry-After header, in seconds or as an HTTP date.
// It returns 0 for an absent, malformed or past value.
func parseRetryAfter(v string, now time.Time) time.Duration {
	if s, err := strconv.Atoi(v); err == nil {
		return max(time.Duration(s)*time.Second, 0)
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(t.Sub(now), 0)
	}
	return 0
}
