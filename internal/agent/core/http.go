// Package core is what the agent's parts share: starting and reaping
// processes (Reaper), the arrival-order lock of sessions and code contexts
// (Queue), event streams (SSE), JSON answers and errors, the adapter
// that turns a function of a decoded request into a handler (JSON), and
// the Upgrade handshake checks (IsUpgrade).
// It knows no domain: sessions, processes, files, the code interpreter and
// terminals each live in a package of their own that imports it.
package core

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/sandboxd/sandboxd/api"
	"github.com/sandboxd/sandboxd/internal/errdefs"
)

// MaxBody bounds a request body the agent decodes as JSON; the daemon's
// own limit on API bodies is lower.
const MaxBody = 64 << 20

// WriteJSON sends v as JSON with status. Output is not HTML: <, > and &
// stay one byte each.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(append(marshalNoEscape(v), '\n'))
}

// WriteError sends err as an api.Error, with its code's status.
func WriteError(w http.ResponseWriter, err error) {
	code := errdefs.Code(err)
	status := api.HTTPStatus(code)
	body := api.Error{Code: code, Message: err.Error(), HTTPStatus: status}
	var ce *errdefs.CodedError
	if errors.As(err, &ce) {
		body.Details = ce.Details
	}
	WriteJSON(w, status, body)
}

// DecodeBody decodes a JSON request body of at most MaxBody bytes into v:
// 413 past it, 400 for anything that is not JSON of v's shape.
func DecodeBody(w http.ResponseWriter, r *http.Request, v any) error {
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, MaxBody)).Decode(v); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return fmt.Errorf("%w: request over %d bytes", errdefs.ErrPayloadTooLarge, tooBig.Limit)
		}
		return fmt.Errorf("%w: decode request: %v", errdefs.ErrInvalidArgument, err)
	}
	return nil
}

// NoBody is the request type of a JSON handler that reads no body.
type NoBody struct{}

// Status is the answer of a JSON handler that answers with a status and no
// body (204 for a delete).
type Status int

// JSON adapts h, a function of one decoded request, to an http.HandlerFunc:
// it decodes the body into a Req (unless Req is NoBody), calls h, and sends
// its answer as JSON with status, or its error with the error's code. An
// answer of type Status is sent as that status, with no body.
func JSON[Req, Resp any](status int, h func(r *http.Request, req *Req) (Resp, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var req Req
		if _, none := any(req).(NoBody); !none {
			if err := DecodeBody(w, r, &req); err != nil {
				WriteError(w, err)
				return
			}
		}
		resp, err := h(r, &req)
		if err != nil {
			WriteError(w, err)
			return
		}
		if s, ok := any(resp).(Status); ok {
			w.WriteHeader(int(s))
			return
		}
		WriteJSON(w, status, resp)
	}
}
