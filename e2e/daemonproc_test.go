package e2e

import (
	"bufio"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sandboxd/sandboxd/internal/testutil"
	"github.com/sandboxd/sandboxd/sandbox"
)

// DaemonProc is sandboxd run as a separate process (the real binary), for
// tests that kill it with SIGKILL. Everything else uses StartDaemon.
type DaemonProc struct {
	t       testing.TB
	DataDir string
	Images  string
	URL     string
	Token   string
	UIDBase uint32 // as Daemon's
	Client  *sandbox.Client
	bin     string
	agent   string
	args    []string // more flags for every Start
	cmd     *exec.Cmd
	exited  chan struct{}
}

// daemonBinary builds cmd/sandboxd once per test binary, or returns
// SANDBOXD_TEST_DAEMON, a sandboxd built beforehand (to compare two
// builds with one test binary, or to profile one).
func daemonBinary(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("SANDBOXD_TEST_DAEMON"); p != "" {
		return p
	}
	return testutil.Binary(t, "github.com/sandboxd/sandboxd/cmd/sandboxd")
}

// StartDaemonProc runs sandboxd as a child process with a fresh data
// directory and the default image. When the test ends, the daemon is
// started again if needed, every sandbox is destroyed, and it is stopped.
func StartDaemonProc(t testing.TB) *DaemonProc {
	t.Helper()
	testutil.RequiresRoot(t)
	image := testutil.DefaultImage(t)
	d := &DaemonProc{t: t, DataDir: testutil.TempDir(t), Token: "e2e-token", UIDBase: takeUIDRange(t), bin: daemonBinary(t), agent: testutil.AgentBinary(t)}
	d.Images = imagesDir(t, d.DataDir, image)
	d.Start()
	t.Cleanup(func() {
		if d.cmd == nil {
			d.Start()
		}
		destroyAll(t, d.Client)
		d.Signal(syscall.SIGTERM)
		// Warm-pool sandboxes are not listed: a start without a pool
		// destroys them (pool_test.go).
		d.args = append(d.args, "--warm-pool", "0")
		d.Start()
		d.Signal(syscall.SIGTERM)
	})
	return d
}

// Start runs the daemon on the data directory (again) and waits until it
// serves.
func (d *DaemonProc) Start() {
	t := d.t
	t.Helper()
	cmd := exec.Command(d.bin, "--listen", "127.0.0.1:0", "--data-dir", d.DataDir, "--images-dir", d.Images,
		"--token", d.Token, "--agent", d.agent, "--uid-base", strconv.FormatUint(uint64(d.UIDBase), 10))
	cmd.Args = append(cmd.Args, d.args...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	d.cmd, d.exited = cmd, make(chan struct{})
	logs := newTestWriter(t)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			_, _ = logs.Write([]byte("sandboxd[" + strconv.Itoa(cmd.Process.Pid) + "]: " + sc.Text()))
		}
	}()
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if a, ok := strings.CutPrefix(sc.Text(), "sandboxd listening on "); ok {
				addr <- a
			}
		}
	}()
	exited := d.exited
	go func() { _ = cmd.Wait(); close(exited) }()
	select {
	case a := <-addr:
		d.URL = a
	case <-exited:
		d.cmd = nil
		t.Fatal("sandboxd exited before serving")
	case <-time.After(60 * time.Second):
		t.Fatal("sandboxd did not serve within 60s")
	}
	c, err := sandbox.NewClient(sandbox.Options{URL: d.URL, Token: d.Token})
	if err != nil {
		t.Fatal(err)
	}
	d.Client = c
}

// Signal sends sig to the daemon and waits for it to exit.
func (d *DaemonProc) Signal(sig syscall.Signal) {
	if d.cmd == nil {
		return
	}
	_ = d.cmd.Process.Signal(sig)
	select {
	case <-d.exited:
	case <-time.After(30 * time.Second):
		d.t.Errorf("sandboxd did not exit within 30s of %v", sig)
		_ = d.cmd.Process.Kill()
		<-d.exited
	}
	d.cmd = nil
}

// Pid is the daemon's process ID.
func (d *DaemonProc) Pid() int { return d.cmd.Process.Pid }
