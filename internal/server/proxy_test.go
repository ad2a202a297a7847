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
	g := &terminalGuard{r: io.NopCloser(iotest.HalfReader(strings.NewReader(stream))),
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

// codeGuardOutput runs stream through a code stream's guard; end is how
// the agent's answer ends after it (io.EOF: cleanly).
func codeGuardOutput(t *testing.T, stream string, end error) (string, bool) {
	t.Helper()
	failed := false
	g := &terminalGuard{r: io.NopCloser(iotest.HalfReader(io.MultiReader(strings.NewReader(stream), iotest.ErrReader(end)))), code: true,
		onFail: func(err error) error { failed = true; return errors.New("agent gone: " + err.Error()) }}
	b, err := io.ReadAll(g)
	if err != nil {
		t.Fatal(err)
	}
	return string(b), failed
}

func TestTerminalGuardCodeStream(t *testing.T) {
	const (
		exception = "event: stdout\nid: 1\ndata: {\"type\":\"stdout\",\"text\":\"a\\n\"}\n\n" +
			"event: error\nid: 2\ndata: {\"type\":\"error\",\"name\":\"ZeroDivisionError\",\"value\":\"division by zero\"}\n\n"
		complete = "event: complete\nid: 3\ndata: {\"type\":\"complete\",\"executionCount\":1}\n\n"
		callErr  = "event: error\nid: 1\ndata: {\"type\":\"error\",\"code\":\"CONTEXT_NOT_FOUND\",\"message\":\"gone\"}\n\n"
	)
	for _, c := range []struct {
		name   string
		stream string
		end    error
		cut    bool
	}{
		{"exception then complete", exception + complete, io.EOF, false},
		// The agent died after the exception, before complete: without
		// the guard the client would take the exception for the end.
		{"cut after an exception", exception, io.ErrUnexpectedEOF, true},
		// The agent ends a failed call (an error event with a code) by
		// ending its answer cleanly.
		{"call error, clean end", callErr, io.EOF, false},
		{"cut mid-output", "event: stdout\nid: 1\ndata: {\"text\":\"pa", io.ErrUnexpectedEOF, true},
		{"output then clean end", "event: stdout\nid: 1\ndata: {}\n\n", io.EOF, true},
		{"cut after complete", exception + complete, io.ErrUnexpectedEOF, false},
	} {
		got, failed := codeGuardOutput(t, c.stream, c.end)
		appended := strings.TrimPrefix(got, c.stream)
		if !strings.HasPrefix(got, c.stream) {
			t.Errorf("%s: the stream was changed: %q", c.name, got)
		}
		if c.cut != (appended != "") || c.cut != failed {
			t.Errorf("%s: cut=%v, but appended %q (onFail called: %v)", c.name, c.cut, appended, failed)
		}
		if c.cut && (!strings.Contains(appended, "\nevent: error\n") || !strings.Contains(appended, "agent gone")) {
			t.Errorf("%s: appended %q", c.name, appended)
		}
	}
	// The same exception stream, not a code stream, ends at the error.
	if got := guardOutput(t, exception); got != exception {
		t.Errorf("a non-code stream ending in error was changed: %q", got)
	}
}
