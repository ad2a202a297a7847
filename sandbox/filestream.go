package sandbox

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"

	"github.com/sandboxd/sandboxd/api"
)

// RangeOptions select part of a file for [Sandbox.ReadFileStream]. The
// zero value selects the whole file.
type RangeOptions struct {
	// Offset is the first byte to read.
	Offset int64
	// Length is how many bytes to read at most; zero means to the end of
	// the file.
	Length int64
}

// WriteFileStream writes what it reads from r, until io.EOF, to the file at
// path in the sandbox, as the body of one request: any size, in constant
// memory on both sides. The daemon writes the file atomically: it appears
// at path whole, or not at all. r is not closed. A *bytes.Reader,
// *strings.Reader, *bytes.Buffer or regular *os.File is sent with its
// length, anything else chunked. A relative path resolves against the
// session's current directory; a missing parent directory gives
// ErrFileNotFound and a path naming a directory ErrIsDirectory. An error
// reading r aborts the upload and is returned (wrapped). It is not
// retried. opts may be nil.
func (t *target) WriteFileStream(ctx context.Context, path string, r io.Reader, opts *WriteOptions) (*api.WriteFileResult, error) {
	res, err := t.writeFileStream(ctx, path, r, opts)
	if err != nil {
		return nil, fmt.Errorf("write file stream %s in %s: %w", path, t.describe(), err)
	}
	return res, nil
}

func (t *target) writeFileStream(ctx context.Context, path string, r io.Reader, opts *WriteOptions) (*api.WriteFileResult, error) {
	p, err := t.path("/files/content")
	if err != nil {
		return nil, err
	}
	q := url.Values{"path": {path}}
	if opts != nil && opts.Mode != 0 {
		q.Set("mode", octalMode(opts.Mode))
	}
	h := t.sessionHeader()
	h.Set("Content-Type", "application/octet-stream")
	body := &rawBody{r: r, size: bodySize(r)}
	if r == nil {
		body = &rawBody{r: http.NoBody}
	}
	resp, err := t.c.sendBody(ctx, http.MethodPut, p, q, h, body)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var res api.WriteFileResult
	if err := json.NewDecoder(resp.Body).Decode(&res); err != nil {
		return nil, fmt.Errorf("decode response: %w", err)
	}
	return &res, nil
}

// ReadFileStream opens the file at path in the sandbox for reading, whole
// or the part rng selects (nil for all of it), and returns its content as
// the daemon sends it: any size, in constant memory. A range starting at or
// past the end of the file reads nothing. The caller reads and
// closes it; an error breaking off the transfer is returned by Read (a
// short read gives io.ErrUnexpectedEOF). Errors the daemon reports before
// sending (ErrFileNotFound, ErrIsDirectory, ErrPermissionDenied...) are
// returned here. Opening it is retried while the sandbox is unavailable.
func (t *target) ReadFileStream(ctx context.Context, path string, rng *RangeOptions) (io.ReadCloser, error) {
	rc, err := t.readFileStream(ctx, path, rng)
	if err != nil {
		return nil, fmt.Errorf("read file stream %s in %s: %w", path, t.describe(), err)
	}
	return rc, nil
}

func (t *target) readFileStream(ctx context.Context, path string, rng *RangeOptions) (io.ReadCloser, error) {
	var r RangeOptions
	if rng != nil {
		r = *rng
	}
	if r.Offset < 0 || r.Length < 0 {
		return nil, &Error{Code: api.CodeValidationFailed, Message: fmt.Sprintf("invalid range: offset %d, length %d", r.Offset, r.Length)}
	}
	p, err := t.path("/files/content")
	if err != nil {
		return nil, err
	}
	h := t.sessionHeader()
	h.Set("Accept", "*/*")
	if v := r.header(); v != "" {
		h.Set("Range", v)
	}
	var resp *http.Response
	err = retryUnavailable(ctx, func() error {
		var err error
		resp, err = t.c.sendBody(ctx, http.MethodGet, p, url.Values{"path": {path}}, h, nil)
		return err
	})
	var e *Error
	if errors.As(err, &e) && e.HTTPStatus == http.StatusRequestedRangeNotSatisfiable {
		return http.NoBody, nil // the range starts at or past the end
	}
	if err != nil {
		return nil, err
	}
	if resp.StatusCode == http.StatusPartialContent || (r.Offset == 0 && r.Length == 0) {
		return bigReadBody{resp.Body}, nil
	}
	// The whole file came, the range ignored: cut the range out of it.
	if _, err := io.CopyN(io.Discard, resp.Body, r.Offset); err != nil && err != io.EOF {
		resp.Body.Close()
		return nil, fmt.Errorf("skip to offset %d: %w", r.Offset, err)
	}
	if r.Length == 0 {
		return resp.Body, nil
	}
	return readCloser{io.LimitReader(resp.Body, r.Length), resp.Body}, nil
}

// header returns the Range header selecting r, or "" for the whole file.
func (r RangeOptions) header() string {
	switch {
	case r.Length > 0:
		return "bytes=" + strconv.FormatInt(r.Offset, 10) + "-" + strconv.FormatInt(r.Offset+r.Length-1, 10)
	case r.Offset > 0:
		return "bytes=" + strconv.FormatInt(r.Offset, 10) + "-"
	}
	return ""
}

// readCloser reads from one reader and closes another.
type readCloser struct {
	io.Reader
	io.Closer
}

// sessionHeader returns request headers naming the target's session, for
// calls without a JSON body to carry it.
func (t *target) sessionHeader() http.Header {
	h := http.Header{}
	if t.sessionID != "" {
		h.Set(api.HeaderSessionID, t.sessionID)
	}
	return h
}

// bodySize returns how many bytes r has left to read, if r can tell
// without being read, else -1. An empty regular file says -1 too: files
// under /proc claim to be empty and are not.
func bodySize(r io.Reader) int64 {
	switch v := r.(type) {
	case *bytes.Reader:
		return int64(v.Len())
	case *strings.Reader:
		return int64(v.Len())
	case *bytes.Buffer:
		return int64(v.Len())
	case *os.File:
		fi, err := v.Stat()
		if err != nil || !fi.Mode().IsRegular() || fi.Size() == 0 {
			return -1
		}
		off, err := v.Seek(0, io.SeekCurrent)
		if err != nil {
			return -1
		}
		return max(fi.Size()-off, 0)
	}
	return -1
}
