package server

import (
	"bufio"
	"net/http"
	"strings"
	"testing"
)

// TestPreviewFastURI: only simple requests take the fast path; the rest
// (bodies, upgrades, expectations, trailers, connection options, odd
// queries, targets and hosts, HTTP/1.0) go to the ReverseProxy.
func TestPreviewFastURI(t *testing.T) {
	for _, tc := range []struct {
		req string
		uri string // "" means the ReverseProxy's
	}{
		{"GET /x?a=1&b=%41 HTTP/1.1\r\nHost: h\r\n", "/x?a=1&b=%41"},
		{"HEAD / HTTP/1.1\r\nHost: h\r\nConnection: Keep-Alive\r\n", "/"},
		{"GET http://h/abs HTTP/1.1\r\nHost: h\r\n", "/abs"},
		{"GET / HTTP/1.0\r\nHost: h\r\n", ""},
		{"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n", ""},
		{"GET / HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n", ""},
		{"GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n", ""},
		{"GET / HTTP/1.1\r\nHost: h\r\nConnection: keep-alive, X-Foo\r\n", ""},
		{"GET / HTTP/1.1\r\nHost: h\r\nTE: trailers\r\n", ""},
		{"GET / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\n", ""},
		{"GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc", ""},
		{"GET / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n", ""},
		{"POST / HTTP/1.1\r\nHost: h\r\n", ""},
		{"GET /?a=1;b=2 HTTP/1.1\r\nHost: h\r\n", ""},
		{"GET /?a=%zz HTTP/1.1\r\nHost: h\r\n", ""},
		{"GET /?a=% HTTP/1.1\r\nHost: h\r\n", ""},
		{"GET /\xc3\xa9 HTTP/1.1\r\nHost: h\r\n", "/%C3%A9"},
	} {
		r, err := http.ReadRequest(bufio.NewReader(strings.NewReader(tc.req + "\r\n")))
		if err != nil {
			t.Fatalf("%q: %v", tc.req, err)
		}
		uri, ok := previewFastURI(r)
		if want := tc.uri != ""; ok != want || uri != tc.uri {
			t.Errorf("%q: %q %v, want %q", tc.req, uri, ok, tc.uri)
		}
	}
}

func TestPlainQuery(t *testing.T) {
	if !plainQuery("") || !plainQuery("a=1&b=%2F") || plainQuery("a;b") || plainQuery("%2") ||
		plainQuery(strings.Repeat("a&", 1000)) {
		t.Error("plainQuery")
	}
}
