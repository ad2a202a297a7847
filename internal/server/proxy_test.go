package server

import (
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

func guardOutput(t *testing.T, stream string) string {
	t.Helper()
	g := &terminalGuard{r: iotest.HalfReader(strings.NewReader(stream)), c: io.NopCloser(nil),
		onFail: func(err error) error { return errors.New("agent gone: " + err.Error()) }}
	b, err := io.ReadAll(g)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestTerminalGuard(t *testing.T) {
	complete := "event: start\nid: 1\ndata: {}\n\nevent: complete\nid: 2\ndata: {\"exitCode\":0}\n\n"
	if got := guardOutput(t, complete); got != complete {
		t.Errorf("a complete stream was changed: %q", got)
	}
	cut := "event: start\nid: 1\ndata: {}\n\nevent: stdout\nid: 2\ndata: {\"data\":\"par"
	got := guardOutput(t, cut)
	if !strings.HasPrefix(got, cut) || !strings.Contains(got, "\n\nevent: error\nid: 3\n") || !strings.Contains(got, "agent gone") {
		t.Errorf("a cut stream: %q", got)
	}
	// Output that reads like an event line where a read boundary falls
	// inside a long data line does not count as the terminal event.
	pad := strings.Repeat("x", 4096-len("data: "))
	spoof := "event: stdout\nid: 1\ndata: " + pad + "event: complete\n"
	if got := guardOutput(t, spoof); !strings.Contains(got, "event: error") {
		t.Errorf("spoofed completion in a data line was believed")
	}
}
