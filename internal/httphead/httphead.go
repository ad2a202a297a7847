// Package httphead reads the header lines of an HTTP/1.1 head from one
// string, for the daemon's fast paths (the preview loop's requests and
// services' answers): a strict subset of what net/http reads, in fewer
// steps and allocations.
package httphead

import (
	"net/http"
	"net/textproto"
	"strings"

	"golang.org/x/net/http/httpguts"
)

// Parse reads lines, header lines that each end in CRLF (a head's, up to
// its blank line), as net/textproto reads them: canonical keys, values
// trimmed of spaces and tabs, repeated keys' values in order. The keys and
// values are cut from lines, and every key's first value from one array.
// It returns false for anything net/http's checks refuse or would read
// otherwise: a line without a colon, a name that is not a token (a folded
// line's among them), a value with control bytes (a bare CR or LF).
func Parse(lines string) (http.Header, bool) {
	n := strings.Count(lines, "\r\n")
	h := make(http.Header, n)
	values := make([]string, n)
	for lines != "" {
		line, rest, ok := strings.Cut(lines, "\r\n")
		if !ok {
			return nil, false
		}
		lines = rest
		name, v, ok := strings.Cut(line, ":")
		if !ok || !httpguts.ValidHeaderFieldName(name) {
			return nil, false
		}
		v = strings.Trim(v, " \t") // not textproto.TrimString: a CR stays, and fails
		if !httpguts.ValidHeaderFieldValue(v) {
			return nil, false
		}
		key := textproto.CanonicalMIMEHeaderKey(name)
		if vv, ok := h[key]; ok {
			h[key] = append(vv, v)
			continue
		}
		values[0] = v
		h[key], values = values[:1:1], values[1:]
	}
	return h, true
}
