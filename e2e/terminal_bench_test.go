package e2e

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/sandboxd/sandboxd/sandbox"
)

// BenchmarkTerminalKeystroke: one key typed into a web terminal until its
// echo comes back (SDK -> daemon -> agent -> PTY and back), as a user feels
// typing. p50/p99 per keystroke.
func BenchmarkTerminalKeystroke(b *testing.B) {
	d := StartDaemon(b)
	ctx := ctxT(b, 10*time.Minute)
	term, err := d.Client.Get(benchID("term", 0)).Terminal(ctx, sandbox.TerminalOptions{Shell: "/bin/sh"})
	if err != nil {
		b.Fatal(err)
	}
	defer term.Close()
	buf := make([]byte, 64<<10)
	readUntil := func(marker []byte) {
		var seen []byte
		for !bytes.Contains(seen, marker) {
			n, err := term.Read(buf)
			if err != nil {
				b.Fatal(err)
			}
			seen = append(seen[max(0, len(seen)-64):], buf[:n]...)
		}
	}
	if _, err := term.Write([]byte("echo re''ady\n")); err != nil {
		b.Fatal(err)
	}
	readUntil([]byte("ready"))
	var lat []time.Duration
	i := 0
	for b.Loop() {
		if i++; i%1000 == 0 { // kill the line before the tty's line buffer fills
			if _, err := term.Write([]byte("\x15")); err != nil {
				b.Fatal(err)
			}
		}
		start := time.Now()
		if _, err := term.Write([]byte("x")); err != nil {
			b.Fatal(err)
		}
		readUntil([]byte("x"))
		lat = append(lat, time.Since(start))
	}
	reportLatencies(b, lat)
}

// BenchmarkTerminalOutput: output throughput of a web terminal, 8 MiB per
// op printed by the shell and read through the SDK.
func BenchmarkTerminalOutput(b *testing.B) {
	const size = 8 << 20
	d := StartDaemon(b)
	ctx := ctxT(b, 10*time.Minute)
	term, err := d.Client.Get(benchID("termout", 0)).Terminal(ctx, sandbox.TerminalOptions{Shell: "/bin/sh"})
	if err != nil {
		b.Fatal(err)
	}
	defer term.Close()
	buf := make([]byte, 256<<10)
	b.SetBytes(size)
	i := 0
	for b.Loop() {
		i++
		marker := fmt.Sprintf("end-%d-", i)
		cmd := fmt.Sprintf("head -c %d /dev/zero | tr '\\0' x; echo; echo %s$((%d+1))\n", size, marker, i)
		if _, err := term.Write([]byte(cmd)); err != nil {
			b.Fatal(err)
		}
		want := []byte(fmt.Sprintf("%s%d", marker, i+1))
		var tail []byte
		for !bytes.Contains(tail, want) {
			n, err := term.Read(buf)
			if err != nil {
				b.Fatal(err)
			}
			tail = append(tail[max(0, len(tail)-64):], buf[:n]...)
		}
	}
}
