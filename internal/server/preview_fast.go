package server

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"net/textproto"
	"strings"
	"sync"
)

// The preview proxy's fast path. Most preview traffic is simple: a GET or
// HEAD without a body, nothing hop-by-hop. For those, previewFast writes
// the outgoing request's head straight onto a kept connection to the
// service (agentclient.PortRequest) and copies the answer back, instead
// of going through httputil.ReverseProxy, which clones the request and
// its headers, edits the clone's header map key by key, adds a trace
// context and sorts the headers to write them: most of the daemon's own
// CPU time per request. What goes out is what the ReverseProxy would send
// (the same headers, the same X-Forwarded-* and stripping, see
// setForwarded); anything the fast path does not handle goes to the
// ReverseProxy (previewFastOK).

// previewHopHeaders are the hop-by-hop headers that a proxy never passes
// on, in either direction (httputil's list).
var previewHopHeaders = map[string]bool{
	"Connection": true, "Proxy-Connection": true, "Keep-Alive": true,
	"Proxy-Authenticate": true, "Proxy-Authorization": true, "Te": true,
	"Trailer": true, "Transfer-Encoding": true, "Upgrade": true,
}

// previewFastOK reports whether r can take the fast path: a GET or HEAD
// over HTTP/1.1 without a body, that keeps its connection, asks for no
// upgrade, expectation or trailers, names no header in Connection but
// keep-alive, and has a plain query (the ReverseProxy re-encodes one
// with ';' or bad escapes), a plain request target and an ASCII Host.
func previewFastOK(r *http.Request) bool {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return false
	}
	if r.ProtoMajor != 1 || r.ProtoMinor != 1 || r.Close || r.ContentLength != 0 ||
		len(r.TransferEncoding) > 0 || (r.Body != nil && r.Body != http.NoBody) {
		return false
	}
	h := r.Header
	if c, ok := h["Connection"]; ok && (len(c) != 1 || !strings.EqualFold(c[0], "keep-alive")) {
		return false
	}
	if _, ok := h["Te"]; ok {
		return false
	}
	if _, ok := h["Upgrade"]; ok {
		return false
	}
	if _, ok := h["Expect"]; ok {
		return false
	}
	if !plainASCII(r.Host) || !plainQuery(r.URL.RawQuery) {
		return false
	}
	for _, vv := range h {
		for _, v := range vv {
			if strings.ContainsAny(v, "\r\n") {
				return false
			}
		}
	}
	return true
}

// plainASCII reports whether s is printable ASCII without spaces.
func plainASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c >= 0x7f {
			return false
		}
	}
	return true
}

// plainQuery reports whether the ReverseProxy would pass query q as it
// is: no ';', every '%' a valid escape, not too many parameters.
func plainQuery(q string) bool {
	if strings.Count(q, "&") >= 1000 {
		return false
	}
	for i := 0; i < len(q); i++ {
		switch q[i] {
		case ';':
			return false
		case '%':
			if i+2 >= len(q) || !isHex(q[i+1]) || !isHex(q[i+2]) {
				return false
			}
		}
	}
	return true
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

// previewFastURI returns the request target that r, if it can take the
// fast path (previewFastOK), is sent with.
func previewFastURI(r *http.Request) (string, bool) {
	if !previewFastOK(r) || r.URL.Opaque != "" {
		return "", false
	}
	uri := r.URL.RequestURI()
	if !strings.HasPrefix(uri, "/") || !plainASCII(uri) {
		return "", false
	}
	return uri, true
}

// previewFast proxies r to t with request target uri (previewFastURI).
func (s *server) previewFast(w http.ResponseWriter, r *http.Request, t *previewTarget, uri string) {
	trusted := s.trustedPeer(r)
	head := func(bw *bufio.Writer) error {
		writePreviewHead(bw, r, uri, trusted)
		return nil // a write error sticks to bw: its Flush returns it
	}
	resp, err := t.agent.PortRequest(r.Context(), t.port, r, head)
	if err != nil {
		s.previewFailed(w, r, t, err)
		return
	}
	defer resp.Body.Close()

	dst := w.Header()
	var drop []string // headers the response's Connection names
	for _, v := range resp.Header["Connection"] {
		for f := range strings.SplitSeq(v, ",") {
			if f = textproto.TrimString(f); f != "" {
				drop = append(drop, http.CanonicalHeaderKey(f))
			}
		}
	}
	for k, vv := range resp.Header {
		if previewHopHeaders[k] || contains(drop, k) {
			continue
		}
		if old, ok := dst[k]; ok {
			dst[k] = append(old, vv...)
		} else {
			dst[k] = vv
		}
	}
	announced := len(resp.Trailer)
	if announced > 0 {
		keys := make([]string, 0, announced)
		for k := range resp.Trailer {
			keys = append(keys, k)
		}
		dst.Add("Trailer", strings.Join(keys, ", "))
	}
	w.WriteHeader(resp.StatusCode)

	if err := copyPreviewBody(w, resp); err != nil {
		// As the ReverseProxy does: the client must not take a cut
		// body for a whole one.
		panic(http.ErrAbortHandler)
	}
	resp.Body.Close() // now, to fill resp.Trailer
	if len(resp.Trailer) == 0 {
		return
	}
	_ = http.NewResponseController(w).Flush()
	if len(resp.Trailer) == announced {
		for k, vv := range resp.Trailer {
			dst[k] = append(dst[k], vv...)
		}
		return
	}
	for k, vv := range resp.Trailer {
		for _, v := range vv {
			dst.Add(http.TrailerPrefix+k, v)
		}
	}
}

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

// previewBuffers are copy buffers of the fast path, of the size the
// ReverseProxy's are (proxyBuffers); pooled as pointers, so that giving
// one back allocates nothing.
var previewBuffers = sync.Pool{New: func() any { b := make([]byte, 256<<10); return &b }}

// copyPreviewBody copies resp's body to w, with a pooled buffer; a body
// of unknown length or an event stream is flushed as it comes, as the
// ReverseProxy does.
func copyPreviewBody(w http.ResponseWriter, resp *http.Response) error {
	if resp.Body == http.NoBody {
		return nil
	}
	flush := resp.ContentLength < 0 || isEventStream(resp.Header.Get("Content-Type"))
	bp := previewBuffers.Get().(*[]byte)
	defer previewBuffers.Put(bp)
	buf := *bp
	var rc *http.ResponseController
	if flush {
		rc = http.NewResponseController(w)
		_ = rc.Flush() // the head goes out even if the body is slow to come
	}
	for {
		n, rerr := resp.Body.Read(buf)
		if n > 0 {
			if _, err := w.Write(buf[:n]); err != nil {
				return err
			}
			if flush {
				if err := rc.Flush(); err != nil {
					return err
				}
			}
		}
		if rerr == io.EOF {
			return nil
		}
		if rerr != nil {
			return rerr
		}
	}
}

// isEventStream reports whether content type ct is text/event-stream.
func isEventStream(ct string) bool {
	base, _, _ := strings.Cut(ct, ";")
	return strings.EqualFold(textproto.TrimString(base), "text/event-stream")
}

// previewFailed answers a request that could not be proxied, as the
// ReverseProxy's ErrorHandler does.
func (s *server) previewFailed(w http.ResponseWriter, r *http.Request, t *previewTarget, err error) {
	if r.Context().Err() != nil {
		return // the client went away: nobody to answer
	}
	s.error(w, r, previewFailure(t.id, t.port, err))
}

// writePreviewHead writes the head of r as the ReverseProxy (and
// setForwarded) would send it to the service: request line, Host as the
// client sent it, r's headers but the hop-by-hop ones, the daemon's own
// X-Sandboxd-*, names with '_' and (from an untrusted peer) any proxy
// information, then
// X-Forwarded-For, -Host and -Proto.
func writePreviewHead(bw *bufio.Writer, r *http.Request, uri string, trusted bool) {
	bw.WriteString(r.Method)
	bw.WriteByte(' ')
	bw.WriteString(uri)
	bw.WriteString(" HTTP/1.1\r\nHost: ")
	bw.WriteString(r.Host)
	bw.WriteString("\r\n")
	for k, vv := range r.Header {
		switch {
		case previewHopHeaders[k], strings.HasPrefix(k, "X-Sandboxd-"), strings.ContainsRune(k, '_'):
			continue // '_': see setForwarded
		case k == "Content-Length", k == "Host":
			continue // a GET without a body has none
		case k == "Forwarded", k == "X-Forwarded-For", k == "X-Forwarded-Host", k == "X-Forwarded-Proto":
			continue // set below
		case !trusted && contains(forwardingHeaders, k):
			continue
		case k == "User-Agent":
			if len(vv) > 0 && vv[0] != "" {
				writeHeaderLine(bw, k, vv[0]) // the first only, as Request.Write does
			}
			continue
		}
		for _, v := range vv {
			writeHeaderLine(bw, k, v)
		}
	}
	h := r.Header
	if trusted {
		for _, v := range h["Forwarded"] {
			writeHeaderLine(bw, "Forwarded", v)
		}
	}
	if ip, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		bw.WriteString("X-Forwarded-For: ")
		if trusted {
			for _, v := range h["X-Forwarded-For"] {
				bw.WriteString(v)
				bw.WriteString(", ")
			}
		}
		bw.WriteString(ip)
		bw.WriteString("\r\n")
	}
	fwdHost := r.Host
	if v := h.Get("X-Forwarded-Host"); trusted && v != "" {
		fwdHost = v
	}
	writeHeaderLine(bw, "X-Forwarded-Host", fwdHost)
	proto := "http"
	if r.TLS != nil {
		proto = "https"
	}
	if v := h.Get("X-Forwarded-Proto"); trusted && (v == "https" || v == "http") {
		proto = v
	}
	writeHeaderLine(bw, "X-Forwarded-Proto", proto)
	bw.WriteString("\r\n")
}

func writeHeaderLine(bw *bufio.Writer, k, v string) {
	bw.WriteString(k)
	bw.WriteString(": ")
	bw.WriteString(textproto.TrimString(v))
	bw.WriteString("\r\n")
}

// withTarget returns r carrying t for the ReverseProxy's hooks.
func withTarget(r *http.Request, t *previewTarget) *http.Request {
	return r.WithContext(context.WithValue(r.Context(), previewKey{}, t))
}
