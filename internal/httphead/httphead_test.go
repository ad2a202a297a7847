package httphead

import (
	"bufio"
	"net/http"
	"net/textproto"
	"reflect"
	"strings"
	"testing"
)

// TestParse: what Parse takes it reads as net/textproto does; the rest it
// refuses.
func TestParse(t *testing.T) {
	for _, lines := range []string{
		"",
		"Host: a\r\n",
		"content-type: text/plain\r\nX-A:   v  \t\r\nX-B:\r\nset-cookie: a=1\r\nSet-Cookie: b=2\r\n",
		"X-C: caf\xc3\xa9\r\n",
	} {
		got, ok := Parse(lines)
		if !ok {
			t.Errorf("%q: refused", lines)
			continue
		}
		want, err := textproto.NewReader(bufio.NewReader(strings.NewReader(lines + "\r\n"))).ReadMIMEHeader()
		if err != nil {
			t.Fatalf("%q: textproto: %v", lines, err)
		}
		if !reflect.DeepEqual(got, http.Header(want)) {
			t.Errorf("%q: %v, textproto %v", lines, got, want)
		}
	}
	for _, lines := range []string{
		"X-A: a\r\n b\r\n",         // folded
		" X-A: a\r\n",              // starts with a space
		"X-A : a\r\n",              // space before the colon
		"X-A a\r\n",                // no colon
		": a\r\n",                  // no name
		"X-A: a\rb\r\n",            // a bare CR
		"X-A: a\nX-B: b\r\n",       // a bare LF
		"X-A: a\x00\r\n",           // a control byte
		"X-A: a",                   // no CRLF
		"X-A: a\r\n\r\nX-B: b\r\n", // a blank line
	} {
		if h, ok := Parse(lines); ok {
			t.Errorf("%q: taken as %v", lines, h)
		}
	}
}
