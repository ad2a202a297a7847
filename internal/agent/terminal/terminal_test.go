package terminal

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"golang.org/x/sys/unix"

	"github.com/sandboxd/sandboxd/api"
	"github.com/sandboxd/sandboxd/internal/agent/core"
	"github.com/sandboxd/sandboxd/internal/agent/session"
	"github.com/sandboxd/sandboxd/internal/testutil"
)

// terminalAgent serves the terminal route of an agent running in this
// process (its reaper included), for tests of the terminal's lifecycle.
func terminalAgent(t testing.TB) (*Service, string) {
	t.Helper()
	reaper := core.NewReaper(testutil.Cgroups(t))
	a := New(reaper, session.New(session.Config{Reaper: reaper, Workdir: t.TempDir(), RunDir: t.TempDir()}))
	ctx, cancel := context.WithCancel(context.Background())
	reaped := make(chan struct{})
	go func() { defer close(reaped); a.reaper.Run(ctx) }()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/terminal", a.handleTerminal)
	srv := httptest.NewServer(mux)
	t.Cleanup(func() {
		srv.Close()
		a.mu.Lock()
		for _, term := range a.m {
			term.grp.Kill()
		}
		a.mu.Unlock()
		cancel()
		<-reaped
	})
	return a, "ws" + strings.TrimPrefix(srv.URL, "http") + "/v1/terminal"
}

func dialTerminal(t testing.TB, url string) (*websocket.Conn, api.TerminalMessage) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, _, err := websocket.Dial(ctx, url, nil)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	_, data, err := conn.Read(ctx)
	var ready api.TerminalMessage
	if err == nil {
		err = json.Unmarshal(data, &ready)
	}
	if err != nil || ready.Type != api.TerminalReady {
		t.Fatalf("ready: %v %s", err, data)
	}
	return conn, ready
}

func terminalCount(a *Service) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.m)
}

// waitTerminalGone waits until the terminal's shell is gone and the terminal with it.
func waitTerminalGone(t *testing.T, a *Service, pid int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for unix.Kill(pid, 0) != unix.ESRCH || terminalCount(a) != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("shell %d still there (%v), %d terminals", pid, unix.Kill(pid, 0), terminalCount(a))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestTerminalDetachedTimeout(t *testing.T) {
	a, url := terminalAgent(t)
	// Long enough that a loaded machine rejoins in time, short enough
	// for a quick test.
	const timeout = 1500 * time.Millisecond
	a.detachedTimeout = timeout
	conn, ready := dialTerminal(t, url+"?shell=/bin/sh")
	// Detach, come back before the timeout: the same shell.
	conn.Close(websocket.StatusNormalClosure, "")
	time.Sleep(100 * time.Millisecond)
	conn, again := dialTerminal(t, url)
	if !again.Reconnected || again.Pid != ready.Pid {
		t.Fatalf("rejoin within the timeout: %+v, first %+v", again, ready)
	}
	// Connected for longer than the timeout: still alive.
	time.Sleep(timeout + 500*time.Millisecond)
	if unix.Kill(ready.Pid, 0) != nil || terminalCount(a) != 1 {
		t.Fatal("a terminal with a viewer was killed")
	}
	// Detached for longer: killed and removed.
	conn.Close(websocket.StatusNormalClosure, "")
	waitTerminalGone(t, a, ready.Pid)
}

func TestTerminalExitRemoves(t *testing.T) {
	a, url := terminalAgent(t)
	conn, ready := dialTerminal(t, url+"?shell=/bin/sh&terminalId=x")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := conn.Write(ctx, websocket.MessageBinary, []byte("exit 5\n")); err != nil {
		t.Fatal(err)
	}
	var exit api.TerminalMessage
	for {
		typ, data, err := conn.Read(ctx)
		if err != nil {
			if websocket.CloseStatus(err) != websocket.StatusNormalClosure {
				t.Fatalf("connection ended with %v", err)
			}
			break
		}
		if typ == websocket.MessageText {
			if err := json.Unmarshal(data, &exit); err != nil {
				t.Fatal(err)
			}
		}
	}
	if exit.Type != api.TerminalExit || exit.ExitCode == nil || *exit.ExitCode != 5 {
		t.Errorf("exit message: %+v", exit)
	}
	waitTerminalGone(t, a, ready.Pid)
}

func TestTerminalBadClientMessage(t *testing.T) {
	_, url := terminalAgent(t)
	conn, _ := dialTerminal(t, url+"?shell=/bin/sh")
	defer conn.CloseNow()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := conn.Write(ctx, websocket.MessageText, []byte(`{"type":"resize","cols":0,"rows":5}`)); err != nil {
		t.Fatal(err)
	}
	for {
		typ, data, err := conn.Read(ctx)
		if err != nil {
			t.Fatalf("no error message: %v", err)
		}
		if typ != websocket.MessageText {
			continue
		}
		var m api.TerminalMessage
		if json.Unmarshal(data, &m) != nil || m.Type != api.TerminalError || !strings.Contains(m.Message, "1-1000") {
			t.Fatalf("answer to a bad resize: %s", data)
		}
		return
	}
}

func TestTerminalNotWebSocket(t *testing.T) {
	_, url := terminalAgent(t)
	resp, err := http.Get("http" + strings.TrimPrefix(url, "ws"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUpgradeRequired {
		t.Errorf("plain GET: %d", resp.StatusCode)
	}
}

// BenchmarkTerminalOutputAgent: output throughput of a terminal straight
// from the agent (no daemon), 8 MiB per op, with the WebSocket messages it
// took and this process's CPU time per op.
func BenchmarkTerminalOutputAgent(b *testing.B) {
	const size = 8 << 20
	_, url := terminalAgent(b)
	conn, _ := dialTerminal(b, url+"?shell=/bin/sh")
	defer conn.CloseNow()
	conn.SetReadLimit(1 << 20)
	ctx := context.Background()
	b.SetBytes(size)
	cpu0 := processCPU(b)
	i, msgs := 0, 0
	for b.Loop() {
		i++
		want := fmt.Sprintf("end-%d-%d", i, i+1)
		cmd := fmt.Sprintf("head -c %d /dev/zero | tr '\\0' x; echo; echo end-%d-$((%d+1))\n", size, i, i)
		if err := conn.Write(ctx, websocket.MessageBinary, []byte(cmd)); err != nil {
			b.Fatal(err)
		}
		var tail []byte
		for !bytes.Contains(tail, []byte(want)) {
			_, data, err := conn.Read(ctx)
			if err != nil {
				b.Fatal(err)
			}
			msgs++
			tail = append(tail[max(0, len(tail)-64):], data...)
		}
	}
	b.ReportMetric(float64(msgs)/float64(i), "msgs/op")
	b.ReportMetric(float64((processCPU(b)-cpu0).Milliseconds())/float64(i), "cpu-ms/op")
}

// processCPU is the CPU time this process used so far (the terminal's
// goroutines and the test's client; not the shell and its commands).
func processCPU(b *testing.B) time.Duration {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// TestTerminalStalledViewer: a viewer that reads nothing holds output up
// for the stall time at most, then is dropped; the viewer that reads gets
// every byte.
func TestTerminalStalledViewer(t *testing.T) {
	a, url := terminalAgent(t)
	a.stall = time.Second
	reader, _ := dialTerminal(t, url+"?shell=/bin/sh&terminalId=s")
	defer reader.CloseNow()
	reader.SetReadLimit(1 << 20)
	stalled, _ := dialTerminal(t, url+"?terminalId=s")
	defer stalled.CloseNow()
	stalled.SetReadLimit(1 << 20)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	const size = 32 << 20
	cmd := fmt.Sprintf("head -c %d /dev/zero | tr '\\0' x; echo; echo end-$((1+1))\n", size)
	if err := reader.Write(ctx, websocket.MessageBinary, []byte(cmd)); err != nil {
		t.Fatal(err)
	}
	var xs int
	var tail []byte
	for !bytes.Contains(tail, []byte("end-2")) {
		_, data, err := reader.Read(ctx)
		if err != nil {
			t.Fatalf("after %d bytes of x: %v", xs, err)
		}
		xs += bytes.Count(data, []byte("x"))
		tail = append(tail[max(0, len(tail)-64):], data...)
	}
	if xs < size { // and the echo of the command line has a few more
		t.Errorf("the reading viewer got %d x, want %d", xs, size)
	}
	// The stalled one was dropped: reading now finds the close.
	for {
		_, _, err := stalled.Read(ctx)
		if err != nil {
			if websocket.CloseStatus(err) != websocket.StatusPolicyViolation {
				t.Errorf("stalled viewer: %v, want a close with 1008", err)
			}
			break
		}
	}
}

// TestTerminalBlockedInputDetach: keys sent to a shell that reads none
// (its foreground command ignores the terminal) block in the PTY; the
// connection still ends when the client goes, so the detached timeout
// kills the shell rather than leaving it and the connection behind.
func TestTerminalBlockedInputDetach(t *testing.T) {
	a, url := terminalAgent(t)
	a.detachedTimeout = 300 * time.Millisecond
	a.stall = 500 * time.Millisecond
	conn, ready := dialTerminal(t, url+"?shell=/bin/sh&terminalId=blocked")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := conn.Write(ctx, websocket.MessageBinary, []byte("echo sle''eping; sleep 1000\n")); err != nil {
		t.Fatal(err)
	}
	var seen []byte
	for !bytes.Contains(seen, []byte("sleeping")) {
		_, data, err := conn.Read(ctx)
		if err != nil {
			t.Fatal(err)
		}
		seen = append(seen, data...)
	}
	// Far more than the PTY's input buffers hold: the write blocks.
	keys := bytes.Repeat([]byte("typed ahead\n"), 64<<10)
	for range 4 {
		if err := conn.Write(ctx, websocket.MessageBinary, keys[:512<<10]); err != nil {
			t.Fatal(err)
		}
	}
	conn.CloseNow()
	waitTerminalGone(t, a, ready.Pid)
}

// viewerOutput reads a terminal connection from a goroutine of its own
// until it ends.
type viewerOutput struct {
	mu      sync.Mutex
	data    []byte                // binary messages; guarded by mu
	texts   []api.TerminalMessage // text messages; guarded by mu
	err     error                 // why reading stopped; guarded by mu
	changed chan struct{}         // signalled (cap 1) on every message
	done    chan struct{}         // closed when reading stopped
}

func readViewer(ctx context.Context, conn *websocket.Conn) *viewerOutput {
	o := &viewerOutput{changed: make(chan struct{}, 1), done: make(chan struct{})}
	go func() {
		defer close(o.done)
		for {
			typ, data, err := conn.Read(ctx)
			o.mu.Lock()
			if err != nil {
				o.err = err
			} else if typ == websocket.MessageBinary {
				o.data = append(o.data, data...)
			} else {
				var m api.TerminalMessage
				_ = json.Unmarshal(data, &m)
				o.texts = append(o.texts, m)
			}
			o.mu.Unlock()
			select {
			case o.changed <- struct{}{}:
			default:
			}
			if err != nil {
				return
			}
		}
	}()
	return o
}

// waitFor waits until the output holds want.
func (o *viewerOutput) waitFor(t *testing.T, want string) {
	t.Helper()
	timeout := time.After(30 * time.Second)
	for {
		o.mu.Lock()
		found, err := bytes.Contains(o.data, []byte(want)), o.err
		o.mu.Unlock()
		if found {
			return
		}
		if err != nil {
			t.Fatalf("the connection ended (%v) before %q", err, want)
		}
		select {
		case <-o.changed:
		case <-timeout:
			t.Fatalf("no %q in the output", want)
		}
	}
}

// result waits until the connection ended and returns what it read.
func (o *viewerOutput) result(t *testing.T) ([]byte, []api.TerminalMessage, error) {
	t.Helper()
	select {
	case <-o.done:
	case <-time.After(60 * time.Second):
		t.Fatal("the connection did not end")
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.data, o.texts, o.err
}

// TestTerminalViewersSeeSameBytes: a viewer that joins a running terminal
// gets the replay (its last api.TerminalReplayBytes of output), then the
// same bytes as the viewer that was there all along, each once, through
// bursts larger than the output window.
func TestTerminalViewersSeeSameBytes(t *testing.T) {
	_, url := terminalAgent(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	a, _ := dialTerminal(t, url+"?shell=/bin/sh&terminalId=same")
	defer a.CloseNow()
	a.SetReadLimit(1 << 20)
	aOut := readViewer(ctx, a)
	if err := a.Write(ctx, websocket.MessageBinary, []byte("seq 1 30000; echo mark-$((1+1))\n")); err != nil {
		t.Fatal(err)
	}
	aOut.waitFor(t, "mark-2")
	b, ready := dialTerminal(t, url+"?terminalId=same")
	defer b.CloseNow()
	b.SetReadLimit(1 << 20)
	if ready.ReplayBytes != api.TerminalReplayBytes {
		t.Errorf("replay of %d bytes, want %d", ready.ReplayBytes, api.TerminalReplayBytes)
	}
	bOut := readViewer(ctx, b)
	const last = 250000 // ~1.6 MB of output: more than the window
	if err := a.Write(ctx, websocket.MessageBinary, fmt.Appendf(nil, "seq 1 %d; exit 3\n", last)); err != nil {
		t.Fatal(err)
	}
	aData, aTexts, aErr := aOut.result(t)
	bData, bTexts, bErr := bOut.result(t)
	var seq bytes.Buffer
	for i := 1; i <= last; i++ {
		fmt.Fprintf(&seq, "\r\n%d", i)
	}
	for _, v := range []struct {
		name  string
		data  []byte
		texts []api.TerminalMessage
		err   error
	}{{"first", aData, aTexts, aErr}, {"second", bData, bTexts, bErr}} {
		if websocket.CloseStatus(v.err) != websocket.StatusNormalClosure {
			t.Errorf("%s viewer: the connection ended with %v", v.name, v.err)
		}
		if len(v.texts) != 1 || v.texts[0].Type != api.TerminalExit || v.texts[0].ExitCode == nil || *v.texts[0].ExitCode != 3 {
			t.Errorf("%s viewer: text messages %+v, want the exit", v.name, v.texts)
		}
		if !bytes.Contains(v.data, seq.Bytes()) {
			t.Errorf("%s viewer: the output of seq is not all there, in order, once", v.name)
		}
	}
	if !bytes.HasSuffix(aData, bData) || len(bData) < api.TerminalReplayBytes {
		t.Errorf("the second viewer's %d bytes are not the last of the first's %d", len(bData), len(aData))
	}
}

// TestTerminalExitDrain: a background job that keeps the PTY open holds the
// exit message up for the exit drain only.
func TestTerminalExitDrain(t *testing.T) {
	a, url := terminalAgent(t)
	a.exitDrain = 50 * time.Millisecond
	conn, _ := dialTerminal(t, url+"?shell=/bin/sh&terminalId=drain")
	defer conn.CloseNow()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out := readViewer(ctx, conn)
	start := time.Now()
	if err := conn.Write(ctx, websocket.MessageBinary, []byte("sleep 5 & echo bg=$!=; exit 3\n")); err != nil {
		t.Fatal(err)
	}
	data, texts, _ := out.result(t)
	if d := time.Since(start); d > 4*time.Second {
		t.Errorf("the exit message came after %v: the background job held it", d)
	}
	var pid int
	if i := bytes.LastIndex(data, []byte("bg=")); i >= 0 {
		fmt.Sscanf(string(data[i:]), "bg=%d=", &pid)
	}
	if pid <= 0 {
		t.Fatalf("no background pid in %q", data)
	}
	unix.Kill(pid, unix.SIGKILL)
	if len(texts) != 1 || texts[0].Type != api.TerminalExit || texts[0].ExitCode == nil || *texts[0].ExitCode != 3 {
		t.Errorf("text messages %+v, want the exit", texts)
	}
}
