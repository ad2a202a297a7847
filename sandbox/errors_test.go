package sandbox

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/sandboxd/sandboxd/api"
)

// sentinelCases pairs every wire code with its sentinel.
var sentinelCases = []struct {
	code     string
	sentinel error
}{
	{api.CodeValidationFailed, ErrValidation},
	{api.CodeIsDirectory, ErrIsDirectory},
	{api.CodeNotDirectory, ErrNotDirectory},
	{api.CodeInvalidPort, ErrInvalidPort},
	{api.CodeUnauthorized, ErrUnauthorized},
	{api.CodeGitAuthFailed, ErrGitAuthFailed},
	{api.CodePermissionDenied, ErrPermissionDenied},
	{api.CodeSandboxNotFound, ErrSandboxNotFound},
	{api.CodeFileNotFound, ErrFileNotFound},
	{api.CodeProcessNotFound, ErrProcessNotFound},
	{api.CodeSessionNotFound, ErrSessionNotFound},
	{api.CodeContextNotFound, ErrContextNotFound},
	{api.CodePortNotExposed, ErrPortNotExposed},
	{api.CodeGitRepoNotFound, ErrGitRepoNotFound},
	{api.CodeGitBranchNotFound, ErrGitBranchNotFound},
	{api.CodeInvalidToken, ErrInvalidToken},
	{api.CodeNotFound, ErrNotFound},
	{api.CodeMethodNotAllowed, ErrMethodNotAllowed},
	{api.CodeTimeout, ErrTimeout},
	{api.CodeFileExists, ErrFileExists},
	{api.CodeSessionExists, ErrSessionExists},
	{api.CodePortAlreadyExposed, ErrPortAlreadyExposed},
	{api.CodeProcessExists, ErrProcessExists},
	{api.CodeSessionTerminated, ErrSessionTerminated},
	{api.CodeStalePreviewURL, ErrStalePreviewURL},
	{api.CodeFileTooLarge, ErrFileTooLarge},
	{api.CodePayloadTooLarge, ErrPayloadTooLarge},
	{api.CodeUpgradeRequired, ErrUpgradeRequired},
	{api.CodeResourceExhausted, ErrResourceExhausted},
	{api.CodeInternal, ErrInternal},
	{api.CodeLanguageNotAvailable, ErrLanguageNotAvailable},
	{api.CodePortNotListening, ErrPortNotListening},
	{api.CodeBadGateway, ErrBadGateway},
	{api.CodeSandboxUnavailable, ErrUnavailable},
}

func TestErrorIsMatchesOnlyItsSentinel(t *testing.T) {
	for _, tc := range sentinelCases {
		t.Run(tc.code, func(t *testing.T) {
			err := fmt.Errorf("op: %w", &Error{Code: tc.code, Message: "m"})
			for _, other := range sentinelCases {
				if got, want := errors.Is(err, other.sentinel), other.code == tc.code; got != want {
					t.Errorf("errors.Is(%s error, sentinel of %s) = %v, want %v", tc.code, other.code, got, want)
				}
			}
			var e *Error
			if !errors.As(err, &e) || e.Code != tc.code {
				t.Errorf("errors.As did not find the *Error with code %s", tc.code)
			}
		})
	}
}

func TestErrorIsUnknownCode(t *testing.T) {
	err := &Error{Code: "SOMETHING_NEW"}
	for _, tc := range sentinelCases {
		if errors.Is(err, tc.sentinel) {
			t.Errorf("unknown code matched %s", tc.code)
		}
	}
}

func TestIsRetryable(t *testing.T) {
	tests := []struct {
		err  error
		want bool
	}{
		{fmt.Errorf("exec: %w", &Error{Code: api.CodeSandboxUnavailable}), true},
		{&Error{Code: api.CodeInternal}, false},
		{io.ErrUnexpectedEOF, false},
		{nil, false},
	}
	for _, tc := range tests {
		if got := IsRetryable(tc.err); got != tc.want {
			t.Errorf("IsRetryable(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}

func TestErrorFromResponse(t *testing.T) {
	tests := []struct {
		name   string
		status int
		header http.Header
		body   string
		want   Error
	}{{
		name:   "wire error",
		status: 404,
		body:   `{"code":"FILE_NOT_FOUND","message":"no /x","httpStatus":404,"details":{"path":"/x"}}`,
		want:   Error{Code: api.CodeFileNotFound, Message: "no /x", HTTPStatus: 404, Details: map[string]any{"path": "/x"}},
	}, {
		name:   "session terminated keeps details",
		status: 410,
		body:   `{"code":"SESSION_TERMINATED","message":"shell exited","httpStatus":410,"details":{"exitCode":3}}`,
		want:   Error{Code: api.CodeSessionTerminated, Message: "shell exited", HTTPStatus: 410, Details: map[string]any{"exitCode": 3.0}},
	}, {
		name:   "unavailable with retry-after",
		status: 503,
		header: http.Header{"Retry-After": {"2"}},
		body:   `{"code":"SANDBOX_UNAVAILABLE","message":"starting","httpStatus":503}`,
		want:   Error{Code: api.CodeSandboxUnavailable, Message: "starting", HTTPStatus: 503, RetryAfter: 2 * time.Second},
	}, {
		name:   "text body from a proxy",
		status: 502,
		body:   "bad gateway\n",
		want:   Error{Code: api.CodeInternal, Message: "bad gateway", HTTPStatus: 502},
	}, {
		name:   "text 404 is an unknown route",
		status: 404,
		body:   "404 page not found\n",
		want:   Error{Code: api.CodeNotFound, Message: "404 page not found", HTTPStatus: 404},
	}, {
		name:   "empty 401 takes the status text",
		status: 401,
		want:   Error{Code: api.CodeUnauthorized, Message: "Unauthorized", HTTPStatus: 401},
	}, {
		name:   "json without a code",
		status: 429,
		body:   `{"error":"slow down"}`,
		want:   Error{Code: api.CodeResourceExhausted, Message: `{"error":"slow down"}`, HTTPStatus: 429},
	}, {
		name:   "wire error without a message",
		status: 408,
		body:   `{"code":"TIMEOUT"}`,
		want:   Error{Code: api.CodeTimeout, Message: "Request Timeout", HTTPStatus: 408},
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp := &http.Response{StatusCode: tc.status, Header: tc.header, Body: io.NopCloser(strings.NewReader(tc.body))}
			if resp.Header == nil {
				resp.Header = http.Header{}
			}
			got := errorFromResponse(resp)
			if !reflect.DeepEqual(*got, tc.want) {
				t.Errorf("got %+v\nwant %+v", *got, tc.want)
			}
		})
	}
}

func TestErrorString(t *testing.T) {
	err := &Error{Code: api.CodeFileNotFound, Message: "no such file: /x"}
	if got, want := err.Error(), "no such file: /x (FILE_NOT_FOUND)"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		value string
		want  time.Duration
	}{
		{"", 0},
		{"0", 0},
		{"3", 3 * time.Second},
		{"-5", 0},
		{"soon", 0},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second},
		{now.Add(-time.Hour).Format(http.TimeFormat), 0},
	}
	for _, tc := range tests {
		if got := parseRetryAfter(tc.value, now); got != tc.want {
			t.Errorf("parseRetryAfter(%q) = %v, want %v", tc.value, got, tc.want)
		}
	}
}
