package e2e

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sandboxd/sandboxd/sandbox"
)

// upgradeServer answers one HTTP request per connection with 101
// ("Upgrade: echo"), then reads until the client ends writing and only
// then answers "got:" and what it read, and closes: it works only if the
// client's half-close reaches it and its answer still reaches the client.
const upgradeServer = `
import socket, sys, threading
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(16)
def serve(c):
    head = b""
    while b"\r\n\r\n" not in head:
        b = c.recv(4096)
        if not b: c.close(); return
        head += b
    rest = head.split(b"\r\n\r\n", 1)[1]
    c.sendall(b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
    data = rest
    while True:
        b = c.recv(65536)
        if not b: break
        data += b
    c.sendall(b"got:" + data); c.close()
while True:
    c, _ = s.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
`

// TestPreviewDirect: preview traffic reaches the port without the agent
// (the daemon holds a socket of the sandbox's network namespace), and an
// upgraded connection passes each side's half-close on.
func TestPreviewDirect(t *testing.T) {
	t.Parallel()
	d := StartDaemon(t)
	ctx := ctxT(t, 3*time.Minute)
	sb := d.Client.Get("pv-direct")
	t.Cleanup(func() { _ = sb.Destroy(ctxT(t, time.Minute)) })
	const port = 8070
	marker := "pv-direct-upgrade"
	if _, err := sb.WriteFile(ctx, "/workspace/"+marker+".py", []byte(upgradeServer), nil); err != nil {
		t.Fatal(err)
	}
	p, err := sb.StartProcess(ctx, "exec python3 /workspace/"+marker+".py "+strconv.Itoa(port), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.WaitForPort(ctx, port, &sandbox.PortWaitOptions{Timeout: 30 * time.Second}); err != nil {
		t.Fatal(err)
	}
	exp, err := sb.ExposePort(ctx, port, nil)
	if err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(exp.ExposedAt)
	if err != nil {
		t.Fatal(err)
	}

	for i := range 3 {
		c, err := net.Dial("tcp", strings.TrimPrefix(d.URL, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		_ = c.SetDeadline(time.Now().Add(30 * time.Second))
		fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: %s\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n", u.Host)
		br := bufio.NewReader(c)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != http.StatusSwitchingProtocols {
			b, _ := io.ReadAll(resp.Body)
			t.Fatalf("upgrade: %s %s", resp.Status, b)
		}
		if i == 0 {
			// While the upgraded connection is open, the daemon (this
			// process) holds the connection to the port.
			checkDaemonHoldsSocket(t, hostPidOf(t, marker), port)
		}
		msg := "ping " + strconv.Itoa(i)
		if _, err := io.WriteString(c, msg); err != nil {
			t.Fatal(err)
		}
		if err := c.(*net.TCPConn).CloseWrite(); err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(br)
		c.Close()
		if err != nil || string(b) != "got:"+msg {
			t.Fatalf("after half-close: read %q, %v; want %q", b, err, "got:"+msg)
		}
	}
}

// checkDaemonHoldsSocket fails t unless a TCP socket of the network
// namespace of pid, connected to port, is open in this process (where the
// test's daemon runs): the daemon reaches the port itself, not through a
// relay in the sandbox (whose socket it would be).
func checkDaemonHoldsSocket(t *testing.T, pid, port int) {
	t.Helper()
	inodes := map[string]bool{}
	for _, f := range []string{"tcp", "tcp6"} {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/net/%s", pid, f))
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range strings.Split(string(b), "\n")[1:] {
			fs := strings.Fields(l)
			if len(fs) < 10 {
				continue
			}
			// rem_address is ADDR:PORT in hex; inode is field 10.
			// (TIME_WAIT entries have inode 0.)
			if _, rport, ok := strings.Cut(fs[2], ":"); ok && rport == fmt.Sprintf("%04X", port) && fs[9] != "0" {
				inodes["socket:["+fs[9]+"]"] = true
			}
		}
	}
	if len(inodes) == 0 {
		t.Fatalf("no connection to port %d in the sandbox", port)
	}
	fds, _ := filepath.Glob("/proc/self/fd/*")
	for _, fd := range fds {
		if l, err := os.Readlink(fd); err == nil && inodes[l] {
			return
		}
	}
	t.Errorf("no socket connected to port %d of the sandbox is open in the daemon (sockets %v)", port, inodes)
}
