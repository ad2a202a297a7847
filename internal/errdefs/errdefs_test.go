package errdefs

import (
	"errors"
	"fmt"
	"testing"

	"github.com/sandboxd/sandboxd/api"
)

func TestCode(t *testing.T) {
	cases := []struct {
		err  error
		want string
	}{
		{fmt.Errorf("x: %w", ErrInvalidArgument), api.CodeValidationFailed},
		{fmt.Errorf("x: %w", ErrSandboxNotFound), api.CodeSandboxNotFound},
		{fmt.Errorf("x: %w", ErrUnavailable), api.CodeSandboxUnavailable},
		{errors.New("plain"), api.CodeInternal},
		{fmt.Errorf("wrapped: %w", &CodedError{Code: api.CodeFileNotFound, Kind: ErrNotFound}), api.CodeFileNotFound},
	}
	for _, c := range cases {
		if got := Code(c.err); got != c.want {
			t.Errorf("Code(%v) = %s, want %s", c.err, got, c.want)
		}
	}
}

func TestFromWire(t *testing.T) {
	cases := []struct {
		in   api.Error
		kind error
	}{
		{api.Error{Code: api.CodeValidationFailed, HTTPStatus: 400}, ErrInvalidArgument},
		{api.Error{Code: api.CodeFileNotFound, HTTPStatus: 404}, ErrNotFound},
		{api.Error{Code: api.CodeSessionTerminated, HTTPStatus: 410, Details: map[string]any{"exitCode": 3}}, nil},
		{api.Error{Code: "SOMETHING_NEW", HTTPStatus: 429}, ErrResourceExhausted},
		// A known code's sentinel wins over its status's.
		{api.Error{Code: api.CodeSandboxNotFound, HTTPStatus: 404}, ErrSandboxNotFound},
		{api.Error{Code: api.CodeInternal, HTTPStatus: 503}, ErrInterrupted},
	}
	for _, c := range cases {
		err := FromWire(c.in)
		if Code(err) != c.in.Code {
			t.Errorf("FromWire(%s): code %s", c.in.Code, Code(err))
		}
		if c.kind != nil && !errors.Is(err, c.kind) {
			t.Errorf("FromWire(%s) is not %v", c.in.Code, c.kind)
		}
	}
}
