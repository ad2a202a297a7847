package netns_test

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sandboxd/sandboxd/internal/netns"
	"github.com/sandboxd/sandboxd/internal/testutil"
)

// echoServer listens on 127.0.0.1:port inside a new network namespace
// (unshare -n) and answers each connection, once the client has ended
// writing, with "got:" and what it read.
const echoServer = `
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", 0)); s.listen(16)
print(s.getsockname()[1], flush=True)
while True:
    c, _ = s.accept()
    data = b""
    while True:
        b = c.recv(65536)
        if not b: break
        data += b
    c.sendall(b"got:" + data); c.close()
`

// startInNetns runs echoServer in a new network namespace and returns its
// pid and port.
func startInNetns(t *testing.T) (pid, port int) {
	t.Helper()
	testutil.RequiresRoot(t)
	python, err := exec.LookPath("python3")
	testutil.Requires(t, err == nil, "no python3")
	cmd := exec.Command("unshare", "-n", "sh", "-c", `ip link set lo up && exec "$0" -c "$1"`, python, echoServer)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("server: %v", err)
	}
	port, err = strconv.Atoi(strings.TrimSpace(line))
	if err != nil {
		t.Fatalf("server said %q", line)
	}
	return cmd.Process.Pid, port
}

// threadsInHostNS fails t unless every thread of this process is in the
// network namespace it started in.
func threadsInHostNS(t *testing.T, host string) {
	t.Helper()
	tasks, _ := filepath.Glob("/proc/self/task/*/ns/net")
	for _, f := range tasks {
		ns, err := os.Readlink(f)
		if err != nil {
			continue // the thread ended
		}
		if ns != host {
			t.Errorf("thread %s is in %s, not the host's %s", f, ns, host)
		}
	}
}

func TestDialPort(t *testing.T) {
	pid, port := startInNetns(t)
	host, err := os.Readlink("/proc/self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	// The port is in the namespace, not on the host's loopback.
	if c, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(port)); err == nil {
		c.Close()
		t.Skipf("port %d is also in use on the host's loopback", port)
	}

	d, err := netns.Open(pid, func() bool { return true })
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	for i := range 20 {
		c, err := d.DialPort(ctx, port)
		if err != nil {
			t.Fatal(err)
		}
		if got := c.RemoteAddr().String(); got != "127.0.0.1:"+strconv.Itoa(port) {
			t.Errorf("RemoteAddr %s", got)
		}
		msg := "hello " + strconv.Itoa(i)
		if _, err := io.WriteString(c, msg); err != nil {
			t.Fatal(err)
		}
		// Half-close: the server answers once it sees the end.
		if err := c.(interface{ CloseWrite() error }).CloseWrite(); err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(c)
		c.Close()
		if err != nil || string(b) != "got:"+msg {
			t.Fatalf("read %q, %v", b, err)
		}
	}
	threadsInHostNS(t, host)

	// Nothing listening: refused (ECONNREFUSED), on 127.0.0.1 and ::1.
	if _, err := d.DialPort(ctx, port+1); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("dial a closed port: %v, want ECONNREFUSED", err)
	}

	// Closed: no more dials.
	d.Close()
	if _, err := d.DialPort(ctx, port); !errors.Is(err, netns.ErrClosed) {
		t.Errorf("dial after Close: %v, want ErrClosed", err)
	}
	threadsInHostNS(t, host)
}

func TestOpenVerifies(t *testing.T) {
	pid, _ := startInNetns(t)
	if d, err := netns.Open(pid, func() bool { return false }); err == nil {
		d.Close()
		t.Fatal("Open with a failing check succeeded")
	}
	if d, err := netns.Open(0, func() bool { return true }); err == nil {
		d.Close()
		t.Fatal("Open(0) succeeded")
	}
}

func TestDialAfterExit(t *testing.T) {
	pid, port := startInNetns(t)
	d, err := netns.Open(pid, func() bool { return true })
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	p, _ := os.FindProcess(pid)
	_ = p.Kill()
	// The pidfd stays the dead process's: entering its namespace fails
	// (it is gone), whatever process gets its pid later.
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := d.DialPort(context.Background(), port)
		if err != nil && !errors.Is(err, syscall.ECONNREFUSED) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("dial after the process ended: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
