package testutil

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"sync/atomic"
	"testing"
)

// StrayBytesService starts an HTTP/1.1 service on loopback that sends more
// than its answers: GET /extra is answered "ok" followed by a whole second
// answer ("JUNK"), a HEAD by an answer with its body; anything else by
// "fine". It returns its address and a count of the connections it has
// accepted. A client that reuses such a connection must drop it, never read
// the stray bytes as its next answer.
func StrayBytesService(t testing.TB) (addr string, conns *atomic.Int64) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	conns = new(atomic.Int64)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns.Add(1)
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					req, err := http.ReadRequest(br)
					if err != nil {
						return
					}
					answer := "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nfine"
					switch {
					case req.URL.Path == "/extra":
						answer = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nJUNK"
					case req.Method == "HEAD":
						answer = "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nJUNK"
					}
					if _, err := io.WriteString(c, answer); err != nil {
						return
					}
				}
			}()
		}
	}()
	return ln.Addr().String(), conns
}
