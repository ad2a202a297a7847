// Package errdefs holds the daemon's sentinel errors. Code inside the daemon
// and the agent wraps these with %w and context; the API layer (package
// server) is the one place that turns them into HTTP statuses, through the
// wire codes that Code returns.
package errdefs

import (
	"errors"

	"github.com/sandboxd/sandboxd/api"
)

// Sentinel errors. Each matches one wire code.
var (
	ErrInvalidArgument   = errors.New("invalid argument")
	ErrUnauthorized      = errors.New("unauthorized")
	ErrSandboxNotFound   = errors.New("sandbox not found")
	ErrNotFound          = errors.New("not found")
	ErrTimeout           = errors.New("timed out")
	ErrConflict          = errors.New("already exists")
	ErrPayloadTooLarge   = errors.New("payload too large")
	ErrResourceExhausted = errors.New("resource exhausted")
	ErrUnavailable       = errors.New("sandbox unavailable")
	// ErrInterrupted: the sandbox went away while a call was in it, so the
	// call may or may not have taken effect; not safe to retry blindly.
	ErrInterrupted    = errors.New("interrupted")
	ErrNotImplemented = errors.New("not available")
)

var codes = []struct {
	err  error
	code string
}{
	{ErrInvalidArgument, api.CodeValidationFailed},
	{ErrUnauthorized, api.CodeUnauthorized},
	{ErrSandboxNotFound, api.CodeSandboxNotFound},
	{ErrNotFound, api.CodeNotFound},
	{ErrTimeout, api.CodeTimeout},
	{ErrConflict, api.CodeFileExists},
	{ErrPayloadTooLarge, api.CodePayloadTooLarge},
	{ErrResourceExhausted, api.CodeResourceExhausted},
	{ErrUnavailable, api.CodeSandboxUnavailable},
	{ErrInterrupted, api.CodeInternal},
	{ErrNotImplemented, api.CodeLanguageNotAvailable},
}

// CodedError carries a precise wire code, for errors that a sentinel alone
// names too coarsely (FILE_NOT_FOUND versus PROCESS_NOT_FOUND) or that arrive
// from the agent already coded. It unwraps to the sentinel of its code's
// class, so errors.Is(err, ErrNotFound) holds for every 404 code.
type CodedError struct {
	Code    string
	Message string
	Details map[string]any
	Kind    error // the sentinel this code belongs to, if any
}

func (e *CodedError) Error() string { return e.Message }
func (e *CodedError) Unwrap() error { return e.Kind }

// Code returns the wire code for err: the code of a CodedError in its chain,
// else the code of the first sentinel it wraps, else INTERNAL_ERROR.
func Code(err error) string {
	var ce *CodedError
	if errors.As(err, &ce) {
		return ce.Code
	}
	for _, c := range codes {
		if errors.Is(err, c.err) {
			return c.code
		}
	}
	return api.CodeInternal
}

// FromWire rebuilds an error received as an api.Error (from the agent) so
// that Code returns the same code and errors.Is finds its sentinel class:
// the sentinel of its code, else of its HTTP status.
func FromWire(e api.Error) error {
	ce := &CodedError{Code: e.Code, Message: e.Message, Details: e.Details, Kind: statusKinds[e.HTTPStatus]}
	for _, c := range codes {
		if c.code == e.Code {
			ce.Kind = c.err
		}
	}
	return ce
}

// statusKinds are the sentinels of codes FromWire does not know, by HTTP
// status.
var statusKinds = map[int]error{
	400: ErrInvalidArgument, 404: ErrNotFound, 408: ErrTimeout, 409: ErrConflict,
	413: ErrPayloadTooLarge, 429: ErrResourceExhausted, 503: ErrUnavailable,
}
