package agentclient

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net/http"
	"reflect"
	"testing"
)

// fastRespCases are answers as services send them, and some that only
// http.ReadResponse may read (fast false).
var fastRespCases = []struct {
	name, method, raw string
	fast              bool
}{
	{"node", "GET", "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\nDate: Thu, 26 Nov 2026 02:00:00 GMT\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\n\r\nok", true},
	{"go", "GET", "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain; charset=utf-8\r\nX-Content-Type-Options: nosniff\r\nDate: Thu, 26 Nov 2026 02:00:00 GMT\r\nContent-Length: 19\r\n\r\n404 page not found\n", true},
	{"pipelined", "GET", "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabcHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", true},
	{"close", "GET", "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\nx", true},
	{"close among tokens", "GET", "HTTP/1.1 200 OK\r\nConnection: X-Foo, Close\r\nX-Foo: 1\r\nContent-Length: 0\r\n\r\n", true},
	{"no reason", "GET", "HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n", true},
	{"head", "HEAD", "HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n", true},
	{"head no length", "HEAD", "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n\r\n", true},
	{"204", "GET", "HTTP/1.1 204 No Content\r\nDate: x\r\n\r\n", true},
	{"304 with length", "GET", "HTTP/1.1 304 Not Modified\r\nContent-Length: 50\r\nEtag: \"a\"\r\n\r\n", true},
	{"pragma", "GET", "HTTP/1.1 200 OK\r\nPragma: no-cache\r\nContent-Length: 0\r\n\r\n", true},
	{"repeated", "GET", "HTTP/1.1 302 Found\r\nSet-Cookie: a=1\r\nLocation: /x\r\nset-cookie: b=2\r\nContent-Length: 0\r\n\r\n", true},
	{"spaces and obs-text", "GET", "HTTP/1.1 200 OK\r\nX-A:   v  \t\r\nX-B:\r\nX-C: caf\xc3\xa9\r\nContent-Length: 0\r\n\r\n", true},
	{"short body", "GET", "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", true},
	{"5xx", "GET", "HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nContent-Length: 4\r\n\r\nbusy", true},

	{"chunked", "GET", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n", false},
	{"to the end", "GET", "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nall of it", false},
	{"two lengths", "GET", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nok", false},
	{"bad length", "GET", "HTTP/1.1 200 OK\r\nContent-Length: +2\r\n\r\nok", false},
	{"trailer", "GET", "HTTP/1.1 200 OK\r\nTrailer: X\r\nContent-Length: 0\r\n\r\n", false},
	{"1xx", "GET", "HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", false},
	{"101", "GET", "HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\n", false},
	{"1.0", "GET", "HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n", false},
	{"folded", "GET", "HTTP/1.1 200 OK\r\nX-A: a\r\n b\r\nContent-Length: 0\r\n\r\n", false},
	{"cr in value", "GET", "HTTP/1.1 200 OK\r\nX-A: a\r\r\nContent-Length: 0\r\n\r\n", false},
	{"lf line ends", "GET", "HTTP/1.1 200 OK\nContent-Length: 0\n\n", false},
	{"space before colon", "GET", "HTTP/1.1 200 OK\r\nX-A : a\r\nContent-Length: 0\r\n\r\n", false},
	{"odd status", "GET", "HTTP/1.1 2000 OK\r\nContent-Length: 0\r\n\r\n", false},
	{"head split", "GET", "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n", false},
}

// TestReadResponseFast: each answer the fast reader takes, it reads as
// http.ReadResponse does (checkFastResponse); the others it leaves.
func TestReadResponseFast(t *testing.T) {
	for _, tc := range fastRespCases {
		t.Run(tc.name, func(t *testing.T) {
			if got := checkFastResponse(t, tc.method, []byte(tc.raw)); got != tc.fast {
				t.Errorf("fast = %v, want %v", got, tc.fast)
			}
		})
	}
}

func FuzzReadResponseFast(f *testing.F) {
	for _, tc := range fastRespCases {
		f.Add(tc.method == "HEAD", []byte(tc.raw))
	}
	f.Fuzz(func(t *testing.T, head bool, raw []byte) {
		method := "GET"
		if head {
			method = "HEAD"
		}
		checkFastResponse(t, method, raw)
	})
}

// checkFastResponse reads raw with readResponseFast and, if it takes it,
// with http.ReadResponse, and fails t where the two differ: in the
// response, its body (and the error that ends it) and what is left to
// read. If it does not take raw, it must have read nothing of it.
func checkFastResponse(t *testing.T, method string, raw []byte) bool {
	t.Helper()
	req := &http.Request{Method: method}
	br := bufio.NewReaderSize(bytes.NewReader(raw), 16<<10)
	_, _ = br.Peek(1) // fill the buffer, as exchange does
	before := br.Buffered()
	fast, ok := readResponseFast(br, req)
	if !ok {
		if br.Buffered() != before {
			t.Fatalf("not taken, but %d bytes read", before-br.Buffered())
		}
		return false
	}
	stdRest := bufio.NewReader(bytes.NewReader(raw))
	std, err := http.ReadResponse(stdRest, req)
	if err != nil {
		t.Fatalf("taken, but http.ReadResponse fails: %v", err)
	}
	type view struct {
		Status                string
		StatusCode            int
		Proto                 string
		ProtoMajor, Minor     int
		Header                http.Header
		ContentLength         int64
		Close, NoBody         bool
		TransferEncoding      []string
		Trailer               http.Header
		Body                  string
		BodyErr, RestOfStream string
	}
	see := func(r *http.Response, rest *bufio.Reader) view {
		b, err := io.ReadAll(r.Body)
		kind := "nil"
		if errors.Is(err, io.ErrUnexpectedEOF) {
			kind = "unexpected EOF"
		} else if err != nil {
			kind = err.Error()
		}
		left, _ := io.ReadAll(rest)
		return view{r.Status, r.StatusCode, r.Proto, r.ProtoMajor, r.ProtoMinor, r.Header,
			r.ContentLength, r.Close, r.Body == http.NoBody, r.TransferEncoding, r.Trailer,
			string(b), kind, string(left)}
	}
	if g, w := see(fast, br), see(std, stdRest); !reflect.DeepEqual(g, w) {
		t.Fatalf("readResponseFast:\n%+v\nhttp.ReadResponse:\n%+v", g, w)
	}
	if fast.Request != req {
		t.Fatal("Request not set")
	}
	return true
}

// BenchmarkReadResponse: node's answer through readResponseFast ("fast")
// and http.ReadResponse ("std").
func BenchmarkReadResponse(b *testing.B) {
	raw := []byte(fastRespCases[0].raw)
	req := &http.Request{Method: "GET"}
	for _, bc := range []struct {
		name string
		read func(*bufio.Reader) (*http.Response, error)
	}{
		{"fast", func(br *bufio.Reader) (*http.Response, error) {
			if r, ok := readResponseFast(br, req); ok {
				return r, nil
			}
			return nil, errors.New("not taken")
		}},
		{"std", func(br *bufio.Reader) (*http.Response, error) { return http.ReadResponse(br, req) }},
	} {
		b.Run(bc.name, func(b *testing.B) {
			r := bytes.NewReader(raw)
			br := bufio.NewReaderSize(r, 16<<10)
			b.ReportAllocs()
			for b.Loop() {
				r.Reset(raw)
				br.Reset(r)
				_, _ = br.Peek(1)
				resp, err := bc.read(br)
				if err != nil {
					b.Fatal(err)
				}
				_, _ = io.Copy(io.Discard, resp.Body)
			}
		})
	}
}
