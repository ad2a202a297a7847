package sandbox

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// maxDrain bounds how much of an unread response body is drained so that its
// connection can be reused.
const maxDrain = 4 << 10

// do sends one API request. in, if not nil, is sent as the JSON body; out, if
// not nil, receives the JSON body of a 2xx response. A non-2xx response gives
// an *Error.
func (c *Client) do(ctx context.Context, method, path string, query url.Values, in, out any) error {
	resp, err := c.send(ctx, method, path, query, nil, in)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil || resp.StatusCode == http.StatusNoContent {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxDrain))
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("decode %s response: %w", path, err)
	}
	return nil
}

// send sends one API request and returns its response if the status is 2xx;
// the caller closes the body. in, if not nil, is sent as the JSON body.
// header adds to (or replaces) the default headers, which ask for JSON. A
// non-2xx response gives an *Error, its body read and closed.
func (c *Client) send(ctx context.Context, method, path string, query url.Values, header http.Header, in any) (*http.Response, error) {
	if in == nil {
		return c.sendBody(ctx, method, path, query, header, nil)
	}
	b, err := json.Marshal(in)
	if err != nil {
		return nil, fmt.Errorf("encode request: %w", err)
	}
	h := http.Header{"Content-Type": {"application/json"}}
	for k, v := range header {
		h[k] = v
	}
	return c.sendBody(ctx, method, path, query, h, &rawBody{r: bytes.NewReader(b), size: int64(len(b))})
}

// rawBody is a request body sent as it is.
type rawBody struct {
	r    io.Reader
	size int64 // -1 if unknown: the body is then sent chunked
}

// sendBody is send with a body sent as it is (none if body is nil). The
// body's reader is not closed.
func (c *Client) sendBody(ctx context.Context, method, path string, query url.Values, header http.Header, body *rawBody) (*http.Response, error) {
	target := c.baseURL + path
	if len(query) > 0 {
		target += "?" + query.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, target, nil)
	if err != nil {
		return nil, err
	}
	if body != nil {
		// NopCloser keeps the transport from closing the caller's reader;
		// the transport unwraps it again, so an *os.File can still go out
		// with sendfile.
		req.Body, req.ContentLength = io.NopCloser(body.r), body.size
		if body.size < 0 {
			req.Body = io.NopCloser(chunkedSource{body.r}) // big chunks
		}
		req.GetBody = rewinder(body.r)
		if body.size == 0 {
			req.Body, req.GetBody = http.NoBody, nil
		}
	}
	req.Header.Set("Accept", "application/json")
	for k, v := range header {
		req.Header[k] = v
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
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

// rewinder returns a GetBody function for r if r can be read again from
// where it is now, as http.NewRequest does for in-memory readers, so that
// the transport may resend a request whose connection went stale; nil
// otherwise.
func rewinder(r io.Reader) func() (io.ReadCloser, error) {
	switch v := r.(type) {
	case *bytes.Reader:
		snapshot := *v
		return func() (io.ReadCloser, error) { r := snapshot; return io.NopCloser(&r), nil }
	case *strings.Reader:
		snapshot := *v
		return func() (io.ReadCloser, error) { r := snapshot; return io.NopCloser(&r), nil }
	}
	return nil
}
