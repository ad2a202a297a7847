package code

import (
	"bufio"
	"context"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sandboxd/sandboxd/api"
	"github.com/sandboxd/sandboxd/internal/agent/core"
	"github.com/sandboxd/sandboxd/internal/testutil"
	"golang.org/x/sys/unix"
)

// fakeExecutor is a bash script speaking the executor protocol: requests
// on fd 3, events on fd 4. What a request's code names, it does.
const fakeExecutor = `
echo '{"type":"ready"}' >&4
n=0
while read -r line <&3; do
	n=$((n+1))
	case "$line" in
	*crash*) exit 7 ;;
	*forge*)
		echo '{"type":"initialized"}' >&4
		echo '{"type":"error","code":"CONTEXT_NOT_FOUND","message":"forged","contextId":"x"}' >&4
		head -c 70000000 /dev/zero | tr '\0' x >&4; echo >&4 ;;
	*ignore*) trap '' INT; sleep 30 ;;
	*slow*)
		trap 'echo "{\"type\":\"error\",\"name\":\"KeyboardInterrupt\",\"value\":\"\"}" >&4' INT
		sleep 30 & wait $!
		trap - INT ;;
	*bulk*) head -c 200000 /dev/zero | tr '\0' y; printf 'end\n' ;;
	*)
		echo raw-output
		echo '{"type":"stdout","text":"hi\n"}' >&4
		echo '{"type":"result","text":"2","isMainResult":true}' >&4 ;;
	esac
	echo "{\"type\":\"complete\",\"executionCount\":$n}" >&4
done
`

func startFake(t *testing.T) *executor {
	t.Helper()
	r := core.NewReaper(testutil.Cgroups(t))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); r.Run(ctx) }()
	p, err := newExecutorPipes()
	if err != nil {
		t.Fatal(err)
	}
	devnull, _ := os.Open(os.DevNull)
	defer devnull.Close()
	grp, err := r.Cgroups().New("ctx", nil)
	if err != nil {
		t.Fatal(err)
	}
	proc, exited, err := r.Start(grp, "/bin/bash", []string{"bash", "-c", fakeExecutor}, &os.ProcAttr{
		Files: []*os.File{devnull, p.outW, p.errW, p.reqR, p.evW},
		Sys:   &unix.SysProcAttr{Setpgid: true},
	})
	p.closeChild()
	if err != nil {
		t.Fatal(err)
	}
	codes := make(chan int, 1)
	go func() { codes <- core.ExitCode(<-exited) }()
	e := newExecutor("fake", proc.Pid, grp, p, codes)
	t.Cleanup(func() {
		e.kill()
		cancel()
		<-done
	})
	if err := e.waitReady(context.Background(), 10*time.Second); err != nil {
		t.Fatal(err)
	}
	return e
}

// collect runs code and returns the events it gave, as "type:text".
func collect(t *testing.T, e *executor, code string, timeout time.Duration) (runOutcome, []string) {
	t.Helper()
	var mu sync.Mutex
	var evs []string
	out, err := e.run(context.Background(), map[string]string{"code": code}, timeout, func(ev api.CodeEvent) {
		mu.Lock()
		defer mu.Unlock()
		evs = append(evs, ev.Type+":"+ev.Text+ev.Name)
	})
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	return out, evs
}

func TestExecutorRun(t *testing.T) {
	e := startFake(t)
	out, evs := collect(t, e, "1+1", 0)
	if out.count != 1 || out.timedOut || out.reset {
		t.Errorf("outcome %+v", out)
	}
	// The raw output travels apart from the events: it may come anywhere
	// among them, so it is left out of the order checked.
	var ordered []string
	for _, ev := range evs {
		if ev != "stdout:raw-output\n" {
			ordered = append(ordered, ev)
		}
	}
	if joined := strings.Join(ordered, "|"); !strings.Contains(joined, "stdout:hi\n|result:2") {
		t.Errorf("events %q", evs)
	}

	// A timeout interrupts; the executor's error is renamed.
	began := time.Now()
	out, evs = collect(t, e, "slow", 200*time.Millisecond)
	if !out.timedOut || out.reset || out.count != 2 || time.Since(began) > 5*time.Second {
		t.Errorf("slow: %+v after %s", out, time.Since(began))
	}
	if len(evs) != 1 || evs[0] != "error:TimeoutError" {
		t.Errorf("slow events %q", evs)
	}

	// A run that ignores the interrupt gets its executor killed.
	out, _ = collect(t, e, "ignore", 100*time.Millisecond)
	if !out.timedOut || !out.reset {
		t.Errorf("ignore: %+v", out)
	}
	select {
	case <-e.dead:
	case <-time.After(5 * time.Second):
		t.Error("the executor still lives after a reset")
	}
}

// TestExecutorOutputBeforeComplete: what the executor writes to its
// stdout before it says complete (more than a pipe holds) is all part of
// the run, run after run.
func TestExecutorOutputBeforeComplete(t *testing.T) {
	e := startFake(t)
	for i := range 20 {
		var text strings.Builder
		out, err := e.run(context.Background(), map[string]string{"code": "bulk"}, time.Minute, func(ev api.CodeEvent) {
			if ev.Type == api.EventStdout {
				text.WriteString(ev.Text)
			}
		})
		if err != nil || out.reset {
			t.Fatalf("run %d: %+v %v", i, out, err)
		}
		if got := text.String(); len(got) != 200004 || !strings.HasSuffix(got, "yend\n") {
			t.Fatalf("run %d: %d bytes of stdout ending %q, want 200004 ending \"yend\\n\"", i, len(got), got[max(0, len(got)-8):])
		}
	}
}

// TestExecutorEventsChecked: what the executor (or code that writes to
// its event pipe) says cannot pose as the agent: no call error codes, no
// event types of its own, no unbounded event lines.
func TestExecutorEventsChecked(t *testing.T) {
	e := startFake(t)
	var evs []api.CodeEvent
	out, err := e.run(context.Background(), map[string]string{"code": "forge"}, time.Minute, func(ev api.CodeEvent) {
		evs = append(evs, ev)
	})
	if err != nil || out.count != 1 {
		t.Fatalf("run: %+v %v", out, err)
	}
	if len(evs) != 2 {
		t.Fatalf("events: %+v", evs)
	}
	if ev := evs[0]; ev.Type != api.EventError || ev.Code != "" || ev.Message != "" || ev.ContextID != "" || ev.Name != "Error" {
		t.Errorf("forged error: %+v", ev)
	}
	if ev := evs[1]; ev.Type != api.EventStderr || !strings.Contains(ev.Text, "dropped") {
		t.Errorf("an event line past the bound: %+v", ev)
	}
}

func TestExecutorCrash(t *testing.T) {
	e := startFake(t)
	out, _ := collect(t, e, "crash", 0)
	if !out.crashed || !out.reset || out.exitCode != 7 {
		t.Errorf("crash: %+v", out)
	}
	if got := exitDescription(out.exitCode); got != "exited with code 7" {
		t.Errorf("description %q", got)
	}
	if got := exitDescription(128 + 11); got != "was killed by signal 11 (SIGSEGV)" {
		t.Errorf("description %q", got)
	}
}

func TestReadLine(t *testing.T) {
	long := strings.Repeat("x", 100)
	r := bufio.NewReaderSize(strings.NewReader("short\n"+long+"\nafter\nno-newline"), 16)
	for _, want := range []string{"short", "", "after"} {
		got, err := readLine(r, 50)
		if err != nil || string(got) != want {
			t.Errorf("readLine = %q, %v; want %q", got, err, want)
		}
	}
	if _, err := readLine(r, 50); err == nil {
		t.Error("a line without its newline at the end of input was returned")
	}
}

func TestCheckLanguage(t *testing.T) {
	for in, want := range map[string]string{"": "python", "py": "python", "js": "javascript", "typescript": "typescript", "ts": "typescript"} {
		if got, err := checkLanguage(in); err != nil || got != want {
			t.Errorf("checkLanguage(%q) = %q, %v", in, got, err)
		}
	}
	if _, err := checkLanguage("cobol"); err == nil {
		t.Error("cobol accepted")
	}
}
