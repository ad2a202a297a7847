package sandbox

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"

	"github.com/sandboxd/sandboxd/api"
	"github.com/sandboxd/sandboxd/internal/chunkio"
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
	if opts != nil && opts.Encoding != "" && opts.Encoding != EncodingUTF8 {
		return nil, fmt.Errorf("write file %s in %s: %w: WriteFileStream writes bytes as they are; encoding %q is for WriteFile", path, t.describe(), ErrValidation, opts.Encoding)
	}
	q := url.Values{"path": {path}}
	if opts != nil && opts.Mode != 0 {
		q.Set("mode", octalMode(opts.Mode))
	}
	h := t.sessionHeader()
	h.Set("Content-Type", "application/octet-stream")
	var res api.WriteFileResult
	p, err := t.path("/files/content")
	if err == nil {
		err = t.c.do(ctx, http.MethodPut, p, q, h, uploadBody(r), &res)
	}
	if err != nil {
		return nil, fmt.Errorf("write file stream %s in %s: %w", path, t.describe(), err)
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
	err = retryUnavailable(ctx, func() (err error) {
		resp, err = t.c.send(ctx, http.MethodGet, p, url.Values{"path": {path}}, h, nil)
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

// uploadBody returns r as a request body for [Client.send], with its
// length where it can be known without reading r: net/http finds that of
// in-memory readers, sizedBody carries that of a regular file. Other
// readers are sent chunked, in big pieces (chunkedSource). An empty regular
// file is sent chunked too: files under /proc claim to be empty and are
// not.
func uploadBody(r io.Reader) io.Reader {
	switch v := r.(type) {
	case nil, *bytes.Reader, *strings.Reader, *bytes.Buffer:
		return r
	case *os.File:
		fi, err := v.Stat()
		off, serr := v.Seek(0, io.SeekCurrent)
		switch {
		case err != nil || serr != nil || !fi.Mode().IsRegular() || fi.Size() == 0:
		case off >= fi.Size():
			return http.NoBody
		default:
			return sizedBody{v, fi.Size() - off}
		}
	}
	return chunkedSource{r}
}

// sizedBody is a request body of a known size.
type sizedBody struct {
	io.Reader
	size int64
}

// copyChunk is how much a file transfer moves per write: big pieces mean
// few system calls and, for an upload, few chunks of the chunked encoding
// on every hop to the sandbox (net/http's own copies use 32 KiB).
const copyChunk = 1 << 20

// chunkedSource is the body of an upload of unknown size. Its WriteTo,
// which net/http's transport uses to send a chunked body, sends pieces of
// copyChunk, each as full as the reader allows, so that every chunk is
// big however the caller's reader returns its bytes.
type chunkedSource struct{ r io.Reader }

func (s chunkedSource) Read(p []byte) (int, error) { return s.r.Read(p) }

func (s chunkedSource) WriteTo(w io.Writer) (int64, error) {
	return chunkio.CopyChunks(w, s.r, make([]byte, copyChunk))
}

// bigReadBody is a response body whose WriteTo, which io.Copy prefers,
// copies in pieces of copyChunk: a download read with io.Copy is then read
// from the connection and written out in big pieces, not in io.Copy's 32
// KiB (or io.Discard's 8 KiB).
type bigReadBody struct{ io.ReadCloser }

func (b bigReadBody) WriteTo(w io.Writer) (int64, error) {
	// Hide w's ReadFrom, so that the copy uses this buffer.
	return io.CopyBuffer(struct{ io.Writer }{w}, struct{ io.Reader }{b.ReadCloser}, make([]byte, copyChunk))
}
