package sandbox_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sandboxd/sandboxd/api"
	"github.com/sandboxd/sandboxd/internal/outevent"
	"github.com/sandboxd/sandboxd/sandbox"
)

// BenchmarkExecStreamDecode measures the SDK's side of an exec stream
// alone: a canned stream of output events as the agent writes them
// (events of 1 MiB, base64 for NUL and urandom-like bytes, JSON text for
// text) is served from loopback and read through ExecStream. It reports
// MB/s of decoded output and the process's CPU time per GiB of it: the
// SDK's, and the loopback server's, which only writes a prepared body.
func BenchmarkExecStreamDecode(b *testing.B) {
	const eventSize, events = 1 << 20, 64
	for _, c := range []struct {
		name string
		data []byte
	}{
		{"zero", make([]byte, eventSize)},
		{"text", []byte(strings.Repeat("abcdefghijklmnopqrstuvwxyz\n", eventSize/27+1)[:eventSize])},
		{"binary", func() []byte {
			p := make([]byte, eventSize)
			for i := range p {
				p[i] = byte(i*131 + i>>8)
			}
			return p
		}()},
	} {
		b.Run(c.name, func(b *testing.B) {
			var body strings.Builder
			for i := range events {
				fmt.Fprintf(&body, "event: stdout\nid: %d\ndata: %s\n\n", i+1, outevent.Append(nil, "stdout", c.data))
			}
			fmt.Fprintf(&body, "event: complete\nid: %d\ndata: {\"type\":\"complete\",\"exitCode\":0}\n\n", events+1)
			stream := []byte(body.String())
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "text/event-stream")
				w.Write(stream)
			}))
			defer srv.Close()
			cl, err := sandbox.NewClient(sandbox.Options{URL: srv.URL})
			if err != nil {
				b.Fatal(err)
			}
			sb := cl.Get("bench")
			b.SetBytes(eventSize * events)
			b.ReportAllocs()
			cpu0 := cpuTime()
			for b.Loop() {
				st, err := sb.ExecStream(b.Context(), "x", nil)
				if err != nil {
					b.Fatal(err)
				}
				n := 0
				for ev, err := range st.Events() {
					if err != nil {
						b.Fatal(err)
					}
					if ev.Type == api.EventStdout {
						n += len(ev.Data)
					}
				}
				if n != eventSize*events {
					b.Fatalf("read %d bytes, want %d", n, eventSize*events)
				}
			}
			gib := float64(b.N) * eventSize * events / (1 << 30)
			b.ReportMetric(float64((cpuTime()-cpu0).Milliseconds())/gib, "cpu-ms/GiB")
		})
	}
}

// cpuTime returns the CPU time the process has used, user and system.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
