package e2e

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	goruntime "runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/sandboxd/sandboxd/api"
	"github.com/sandboxd/sandboxd/internal/daemon"
	"github.com/sandboxd/sandboxd/internal/runtime/runc"
	"github.com/sandboxd/sandboxd/internal/testutil"
	"github.com/sandboxd/sandboxd/sandbox"
)

// randHex returns n random bytes in hex.
func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// fakeInternet is the test's stand-in for the internet: a network
// namespace of its own, reached from the host through a veth, with an HTTP
// server inside that answers with the address it sees the client at.
type fakeInternet struct {
	server   netip.Addr // the server's address, in the namespace
	hostSide netip.Addr // the host's end of the veth
	url      string
	// linkLocalURL reaches the same server at a link-local address (as
	// a cloud's metadata service is), which sandboxes must not reach.
	linkLocalURL string
	linkLocal    [2]netip.Addr // host side, server side
}

// startFakeInternet creates the namespace, the veth (198.18.N.1 on the
// host, 198.18.N.2 inside, from the benchmarking range 198.18.0.0/15; and
// 169.254.M.1 and .2, M below 100, away from 169.254.169.254) and the
// server. All of it goes when the test ends, whatever its outcome.
func startFakeInternet(t *testing.T) *fakeInternet {
	t.Helper()
	n, _ := rand.Int(rand.Reader, big.NewInt(256))
	m, _ := rand.Int(rand.Reader, big.NewInt(99))
	fi := &fakeInternet{
		hostSide:  netip.AddrFrom4([4]byte{198, 18, byte(n.Int64()), 1}),
		server:    netip.AddrFrom4([4]byte{198, 18, byte(n.Int64()), 2}),
		linkLocal: [2]netip.Addr{netip.AddrFrom4([4]byte{169, 254, byte(m.Int64() + 1), 1}), netip.AddrFrom4([4]byte{169, 254, byte(m.Int64() + 1), 2})},
	}
	hostVeth := "sdi" + randHex(4)
	t.Cleanup(func() {
		// The peer, and with it the namespace's last interface, goes too.
		if l, err := netlink.LinkByName(hostVeth); err == nil {
			if err := netlink.LinkDel(l); err != nil {
				t.Errorf("delete %s: %v", hostVeth, err)
			}
		}
	})
	type result struct {
		ln  net.Listener
		err error
	}
	done := make(chan result, 1)
	go func() {
		// This thread moves to the new namespace and is never handed
		// back (no UnlockOSThread): it ends with the goroutine. The
		// namespace lives on through the listener's socket.
		goruntime.LockOSThread()
		ln, err := fi.setupLocked(hostVeth)
		done <- result{ln, err}
	}()
	r := <-done
	if r.err != nil {
		t.Fatalf("fake internet: %v", r.err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		host, _, _ := net.SplitHostPort(req.RemoteAddr)
		fmt.Fprintf(w, "internet sees %s", host)
	}), ReadHeaderTimeout: 5 * time.Second}
	served := make(chan struct{})
	go func() { defer close(served); _ = srv.Serve(r.ln) }()
	t.Cleanup(func() { srv.Close(); <-served })
	port := strconv.Itoa(r.ln.Addr().(*net.TCPAddr).Port)
	fi.url = "http://" + net.JoinHostPort(fi.server.String(), port) + "/"
	fi.linkLocalURL = "http://" + net.JoinHostPort(fi.linkLocal[1].String(), port) + "/"
	return fi
}

func (fi *fakeInternet) setupLocked(hostVeth string) (net.Listener, error) {
	hostH, err := netlink.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		return nil, err
	}
	defer hostH.Close()
	if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
		return nil, err
	}
	nsH, err := netlink.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		return nil, err
	}
	defer nsH.Close()
	nsFd, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	defer unix.Close(nsFd)
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: hostVeth}, PeerName: "eth0", PeerNamespace: netlink.NsFd(nsFd)}
	if err := hostH.LinkAdd(veth); err != nil {
		return nil, err
	}
	mask := net.CIDRMask(24, 32)
	for _, a := range []netip.Addr{fi.hostSide, fi.linkLocal[0]} {
		if err := hostH.AddrAdd(veth, &netlink.Addr{IPNet: &net.IPNet{IP: a.AsSlice(), Mask: mask}}); err != nil {
			return nil, err
		}
	}
	if err := hostH.LinkSetUp(veth); err != nil {
		return nil, err
	}
	for _, name := range []string{"lo", "eth0"} {
		l, err := nsH.LinkByName(name)
		if err != nil {
			return nil, err
		}
		if name == "eth0" {
			for _, a := range []netip.Addr{fi.server, fi.linkLocal[1]} {
				if err := nsH.AddrAdd(l, &netlink.Addr{IPNet: &net.IPNet{IP: a.AsSlice(), Mask: mask}}); err != nil {
					return nil, err
				}
			}
		}
		if err := nsH.LinkSetUp(l); err != nil {
			return nil, err
		}
	}
	// No default route: answers go to the host's end, on the link.
	return net.Listen("tcp4", ":0") // every address of the namespace
}

// hostServer serves HTTP on every address of the host, answering body.
func hostServer(t *testing.T, body string) int {
	t.Helper()
	ln, err := net.Listen("tcp4", "0.0.0.0:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, body) }),
		ReadHeaderTimeout: 5 * time.Second}
	served := make(chan struct{})
	go func() { defer close(served); _ = srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close(); <-served })
	return ln.Addr().(*net.TCPAddr).Port
}

// vethCount counts the veths attached to the bridge named bridge (not
// the host's veths: other tests running at the same time make some).
func vethCount(t *testing.T, bridge string) int {
	t.Helper()
	br, err := netlink.LinkByName(bridge)
	var nf netlink.LinkNotFoundError
	if errors.As(err, &nf) {
		return 0 // made when the first bridge sandbox starts
	}
	if err != nil {
		t.Fatal(err)
	}
	links, err := netlink.LinkList()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, l := range links {
		if l.Type() == "veth" && l.Attrs().MasterIndex == br.Attrs().Index {
			n++
		}
	}
	return n
}

// curl runs curl in sb (at most 3 s per try) and returns its output and
// exit code.
func curl(t *testing.T, sb *sandbox.Sandbox, url string) (string, int) {
	t.Helper()
	res, err := sb.Exec(ctxT(t, time.Minute), "curl -sS -m 3 "+url, nil)
	if err != nil {
		t.Fatalf("exec curl %s: %v", url, err)
	}
	return res.Stdout + res.Stderr, res.ExitCode
}

// TestBridgeNetwork: bridge sandboxes reach the test's "internet" through
// NAT, and reach neither each other nor the host's services (but the one
// port the daemon allows); a sandbox without a network reaches nothing; a
// bridge sandbox keeps its network across a daemon restart and a container
// restart; destroy leaves no veth behind.
func TestBridgeNetwork(t *testing.T) {
	t.Parallel()
	inet := startFakeInternet(t)
	blocked := hostServer(t, "host service")
	allowed := hostServer(t, "allowed host service")
	br := daemon.BridgeConfig{
		Name: "sdt" + randHex(3), CIDR: testutil.FreeCIDR(t),
		HostPorts: strconv.Itoa(allowed), DNS: "192.0.2.53",
	}
	// Registered before StartDaemon's cleanup, so it runs after it.
	t.Cleanup(func() {
		if err := runc.RemoveBridge(br.Name); err != nil {
			t.Errorf("remove bridge: %v", err)
		}
	})
	gateway := netip.MustParsePrefix(br.CIDR).Addr().Next()
	d := StartDaemon(t, func(c *daemon.Config) { c.Bridge = br })
	ctx := ctxT(t, 5*time.Minute)
	vethsBefore := vethCount(t, br.Name)

	create := func(id, network string) *sandbox.Sandbox {
		t.Helper()
		sb, err := d.Client.Create(ctx, id, &api.CreateSandboxRequest{Network: network})
		if err != nil {
			t.Fatalf("create %s (%s): %v", id, network, err)
		}
		info, err := sb.Info(ctx)
		if err != nil || info.Network != network {
			t.Fatalf("%s: info %+v, %v; want network %s", id, info, err, network)
		}
		return sb
	}
	a, b, none := create("net-a", api.NetworkBridge), create("net-b", api.NetworkBridge), create("net-none", api.NetworkNone)
	if got := vethCount(t, br.Name); got != vethsBefore+2 {
		t.Errorf("veths with two bridge sandboxes: %d, before %d", got, vethsBefore)
	}

	// Out through NAT: the internet sees the host's address, not the sandbox's.
	reachesInternet := func(when string) {
		t.Helper()
		if out, code := curl(t, a, inet.url); code != 0 || out != "internet sees "+inet.hostSide.String() {
			t.Errorf("%s: bridge sandbox to the internet: exit %d: %q", when, code, out)
		}
	}
	reachesInternet("after create")
	if out, code := curl(t, a, inet.linkLocalURL); code == 0 {
		t.Errorf("bridge sandbox reached a link-local address (%s): %q", inet.linkLocalURL, out)
	}
	if resp, err := (&http.Client{Timeout: 3 * time.Second}).Get(inet.linkLocalURL); err != nil {
		t.Errorf("the host cannot reach the link-local server either, so the check above proves nothing: %v", err)
	} else {
		resp.Body.Close()
	}
	if res := mustExec(t, a, "cat /etc/resolv.conf"); !strings.Contains(res.Stdout, "nameserver 192.0.2.53\n") {
		t.Errorf("bridge sandbox's resolv.conf: %q", res.Stdout)
	}

	// A server in a: the host reaches it, b does not.
	res := mustExec(t, a, fmt.Sprintf(`python3 -c "import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.connect(('%s', 9)); print(s.getsockname()[0])"`, inet.server))
	aAddr, err := netip.ParseAddr(strings.TrimSpace(res.Stdout))
	if err != nil || !netip.MustParsePrefix(br.CIDR).Contains(aAddr) {
		t.Fatalf("sandbox a's address %q (%v) not in %s", res.Stdout, err, br.CIDR)
	}
	if _, err := a.StartProcess(ctx, "python3 -m http.server 8000 --bind 0.0.0.0", nil); err != nil {
		t.Fatal(err)
	}
	aURL := "http://" + aAddr.String() + ":8000/"
	waitFor(t, 15*time.Second, "a's server", func() bool {
		resp, err := (&http.Client{Timeout: time.Second}).Get(aURL)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	if out, code := curl(t, b, aURL); code == 0 {
		t.Errorf("bridge sandbox b reached sandbox a's server: %q", out)
	}

	// The host's own services: not on the gateway, not on another host
	// address, except the allowed port.
	for _, u := range []string{
		fmt.Sprintf("http://%s:%d/", gateway, blocked),
		fmt.Sprintf("http://%s:%d/", inet.hostSide, blocked),
	} {
		if out, code := curl(t, a, u); code == 0 {
			t.Errorf("bridge sandbox reached the host's service at %s: %q", u, out)
		}
	}
	if out, code := curl(t, a, fmt.Sprintf("http://%s:%d/", gateway, allowed)); code != 0 || out != "allowed host service" {
		t.Errorf("bridge sandbox to the allowed host port: exit %d: %q", code, out)
	}
	// The test daemon listens on loopback, which no sandbox reaches in any
	// case; the blocked service above, on every address of the host,
	// stands for a daemon listening on all of them.
	if d.URL != "" {
		_, port, _ := net.SplitHostPort(strings.TrimPrefix(d.URL, "http://"))
		if out, code := curl(t, a, fmt.Sprintf("http://%s:%s/v1/health", gateway, port)); code == 0 {
			t.Errorf("bridge sandbox reached the daemon's API: %q", out)
		}
	}

	// No network: only loopback.
	if res := mustExec(t, none, "ls /sys/class/net"); res.Stdout != "lo\n" {
		t.Errorf("interfaces of a sandbox without network: %q", res.Stdout)
	}
	for _, u := range []string{inet.url, fmt.Sprintf("http://%s:%d/", gateway, allowed), aURL} {
		if out, code := curl(t, none, u); code == 0 {
			t.Errorf("sandbox without network reached %s: %q", u, out)
		}
	}

	// A daemon restart re-attaches a, its network and its server intact.
	d.Restart()
	a, b, none = d.Client.Get("net-a"), d.Client.Get("net-b"), d.Client.Get("net-none")
	reachesInternet("after daemon restart")
	if out, code := curl(t, a, "http://127.0.0.1:8000/"); code != 0 {
		t.Errorf("a's server after daemon restart: exit %d: %s", code, out)
	}

	// A container restart (its init killed; the next call starts it
	// again) gives a its network back, at the same address.
	pid, err := os.ReadFile(filepath.Join(d.DataDir, "sandboxes", "net-a", "init.pid"))
	if err != nil {
		t.Fatal(err)
	}
	p, _ := os.FindProcess(atoi(t, string(pid)))
	_ = p.Kill()
	waitFor(t, 10*time.Second, "a stopped", func() bool {
		info, err := a.Info(ctx)
		return err == nil && info.Status == api.StatusStopped
	})
	reachesInternet("after container restart")
	if res := mustExec(t, a, fmt.Sprintf(`python3 -c "import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.connect(('%s', 9)); print(s.getsockname()[0])"`, inet.server)); strings.TrimSpace(res.Stdout) != aAddr.String() {
		t.Errorf("a's address after restart: %q, before %s", res.Stdout, aAddr)
	}
	if got := vethCount(t, br.Name); got != vethsBefore+2 {
		t.Errorf("veths after a container restart: %d, want %d", got, vethsBefore+2)
	}

	for _, sb := range []*sandbox.Sandbox{a, b, none} {
		if err := sb.Destroy(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if got := vethCount(t, br.Name); got != vethsBefore {
		t.Errorf("veths after destroy: %d, before the sandboxes %d", got, vethsBefore)
	}
}
