package agentclient

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"strconv"
	"strings"

	"golang.org/x/net/http/httpguts"

	"github.com/sandboxd/sandboxd/internal/httphead"
)

// readResponseFast is http.ReadResponse for the plain answers most
// services give, whose head br already holds whole: it returns the same
// Response, in fewer steps and allocations (one string holds the head,
// which httphead.Parse cuts the header from). A plain answer is HTTP/1.1 with
// a final status (200 to 599), header lines without folding, and its
// body framed by at most one Content-Length or by having none (a HEAD,
// 204 or 304). For anything else it returns false and reads nothing, and
// the caller goes to http.ReadResponse, which also gives the errors.
func readResponseFast(br *bufio.Reader, req *http.Request) (*http.Response, bool) {
	buf, _ := br.Peek(br.Buffered())
	end := bytes.Index(buf, []byte("\r\n\r\n"))
	if end < 0 {
		return nil, false
	}
	head := string(buf[:end+2]) // every line with its CRLF
	line, rest, _ := strings.Cut(head, "\r\n")
	status, ok := strings.CutPrefix(line, "HTTP/1.1 ")
	if !ok || len(status) < 3 || len(status) > 3 && status[3] != ' ' || strings.ContainsAny(status, "\r\n") {
		return nil, false
	}
	code := 0
	for _, c := range []byte(status[:3]) {
		if c < '0' || c > '9' {
			return nil, false
		}
		code = code*10 + int(c-'0')
	}
	if code < 200 || code > 599 {
		return nil, false // 1xx, and codes net/http takes but no service sends
	}

	h, ok := httphead.Parse(rest)
	if !ok {
		return nil, false
	}
	if _, ok := h["Transfer-Encoding"]; ok {
		return nil, false
	}
	if _, ok := h["Trailer"]; ok {
		return nil, false
	}

	// As readTransfer frames a response (net/http/transfer.go).
	length := int64(-1) // Content-Length
	switch cl := h["Content-Length"]; len(cl) {
	case 0:
	case 1:
		n, err := strconv.ParseUint(cl[0], 10, 63)
		if err != nil {
			return nil, false
		}
		length = int64(n)
	default:
		return nil, false
	}
	body := length // what follows the head
	if req.Method == http.MethodHead || code == http.StatusNoContent || code == http.StatusNotModified {
		body = 0
	} else if length < 0 {
		return nil, false // read to the connection's end
	}
	if p, ok := h["Pragma"]; ok && p[0] == "no-cache" {
		if _, ok := h["Cache-Control"]; !ok {
			h["Cache-Control"] = []string{"no-cache"}
		}
	}
	closing := httpguts.HeaderValuesContainsToken(h["Connection"], "close")
	if closing {
		delete(h, "Connection")
	}

	resp := &http.Response{
		Status: status, StatusCode: code, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: h, Body: http.NoBody, ContentLength: body, Close: closing, Request: req,
	}
	if req.Method == http.MethodHead {
		resp.ContentLength = length
	}
	_, _ = br.Discard(end + 4)
	if body > 0 {
		resp.Body = &lengthBody{r: br, n: body}
	}
	return resp, true
}

// lengthBody is a body of n more bytes from r: io.EOF with its last
// bytes, io.ErrUnexpectedEOF if r ends before (as net/http reads one
// with a Content-Length, up to its first error; its callers stop there).
type lengthBody struct {
	r io.Reader
	n int64
}

func (b *lengthBody) Read(p []byte) (int, error) {
	if b.n <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > b.n {
		p = p[:b.n]
	}
	n, err := b.r.Read(p)
	b.n -= int64(n)
	switch {
	case b.n == 0:
		err = io.EOF
	case err == io.EOF:
		err = io.ErrUnexpectedEOF
	}
	return n, err
}

// Close does nothing: fastBody decides what becomes of the connection.
func (b *lengthBody) Close() error { return nil }
