package sandbox

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"time"

	"github.com/sandboxd/sandboxd/api"
)

// send sends one request to the daemon and returns its response if the
// status is 2xx, for the caller to close; a non-2xx response gives an
// *Error. body, if not nil, is the request's body: an io.Reader is sent as
// it is (see uploadBody), anything else as JSON. header adds to the
// default headers, which ask for JSON.
func (c *Client) send(ctx context.Context, method, path string, query url.Values, header http.Header, body any) (*http.Response, error) {
	h := http.Header{"Accept": {"application/json"}}
	var r io.Reader
	switch b := body.(type) {
	case nil:
	case io.Reader:
		r = b
	default:
		data, err := json.Marshal(b)
		if err != nil {
			return nil, fmt.Errorf("encode request: %w", err)
		}
		r = bytes.NewReader(data)
		h.Set("Content-Type", "application/json")
	}
	maps.Copy(h, header)
	if c.token != "" {
		h.Set("Authorization", "Bearer "+c.token)
	}
	u := c.baseURL + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, u, r)
	if err != nil {
		return nil, err
	}
	req.Header = h
	if s, ok := r.(sizedBody); ok {
		// NopCloser keeps the transport from closing the caller's reader;
		// the transport unwraps it again, so that an *os.File can go out
		// with sendfile.
		req.Body, req.ContentLength = io.NopCloser(s.Reader), s.size
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		defer resp.Body.Close()
		return nil, errorFromResponse(resp)
	}
	return resp, nil
}

// none is the type of a response that is not wanted: do drains it.
type none struct{}

// do sends one request, as send does, and decodes the JSON body of its
// response into out, unless out is a *none or the response has no content.
func (c *Client) do(ctx context.Context, method, path string, query url.Values, header http.Header, in, out any) error {
	resp, err := c.send(ctx, method, path, query, header, in)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if _, skip := out.(*none); skip || resp.StatusCode == http.StatusNoContent {
		// Drain a little, so that the connection can be reused.
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("decode %s response: %w", path, err)
	}
	return nil
}

// Bounds on retrying calls that found the sandbox unavailable.
const (
	maxRetries   = 3                      // retries after the first attempt
	minRetryWait = 100 * time.Millisecond // doubled on each retry
	maxRetryWait = 10 * time.Second       // cap on a daemon-requested wait
)

// retryUnavailable calls call, and calls it again, up to maxRetries times,
// while it fails with SANDBOX_UNAVAILABLE. Before each retry it waits for the
// longer of the daemon's Retry-After and a short doubling backoff, capped at
// maxRetryWait. If ctx ends while waiting, the last error is returned joined
// with ctx's error.
func retryUnavailable(ctx context.Context, call func() error) error {
	for attempt := 0; ; attempt++ {
		err := call()
		var e *Error
		if attempt == maxRetries || !errors.As(err, &e) || e.Code != api.CodeSandboxUnavailable {
			return err
		}
		t := time.NewTimer(min(max(e.RetryAfter, minRetryWait<<attempt), maxRetryWait))
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%w: %w", err, ctx.Err())
		case <-t.C:
		}
	}
}
